import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, symlinkSync, linkSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ByteReader, TarReader, parseNumeric, type TarEntry } from './tar.js';
import { encodeTar, type TarWriteEntry } from '../../test/support/tar.js';
import { MkportableError } from '../errors.js';
import { escapeName, toBytes } from './bytenames.js';

/** Feed `bytes` in chunks of `chunk` bytes (odd sizes exercise the reader's boundaries). */
async function* chunks(bytes: Uint8Array, chunk = 1000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk);
}

async function readAll(bytes: Uint8Array, chunk = 1000): Promise<{ entry: TarEntry; data: Buffer }[]> {
  const r = new TarReader(new ByteReader(chunks(bytes, chunk)), { where: 'test.tar' });
  const out: { entry: TarEntry; data: Buffer }[] = [];
  for (;;) {
    const entry = await r.next();
    if (!entry) break;
    const parts: Uint8Array[] = [];
    // Read every other file's data, skip the rest: both paths must keep the stream aligned.
    if (out.length % 2 === 0) for await (const c of r.data()) parts.push(Uint8Array.from(c));
    out.push({ entry, data: Buffer.concat(parts) });
  }
  await r.drain();
  return out;
}

async function refused(bytes: Uint8Array, pattern: RegExp): Promise<void> {
  await assert.rejects(readAll(bytes), (e: unknown) => {
    assert.ok(e instanceof MkportableError, `expected MkportableError, got ${String(e)}`);
    assert.equal(e.code, 'ARCHIVE_INVALID');
    assert.match(e.message, pattern);
    return true;
  });
}

test('round trip: types, owners, modes, devices, links, xattrs, long names (pax and GNU)', async () => {
  const long = 'd/' + 'x'.repeat(150) + '/file';
  const entries: TarWriteEntry[] = [
    { name: 'd/a', type: 'file', data: 'hello\n', mode: 0o4755, uid: 12345, gid: 54321, mtime: 1700000000 },
    { name: 'd/', type: 'dir', mode: 0o750, uid: 1000, gid: 100 },
    { name: 'd/big', type: 'file', data: new Uint8Array(70000).fill(7) },
    { name: 'd/h', type: 'hardlink', linkname: 'd/a' },
    { name: 'd/s', type: 'symlink', linkname: '../etc/passwd' },
    { name: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 },
    { name: 'dev/sda', type: 'block', mode: 0o660, devmajor: 8, devminor: 0 },
    { name: 'fifo', type: 'fifo', mode: 0o600 },
    { name: long, type: 'file', data: 'pax name' },
    { name: long + '2', type: 'file', data: 'gnu name', longNames: 'gnu' },
    { name: 'l', type: 'symlink', linkname: '/' + 'y'.repeat(200), longNames: 'gnu' },
    { name: 'cap', type: 'file', data: 'x', xattrs: { 'security.capability': new Uint8Array([1, 0, 0, 2, 0, 0x20]), 'user.note': 'hi' } },
    { name: 'bigid', type: 'file', uid: 3_000_000, gid: 4_000_000 },
  ];
  for (const chunk of [1, 511, 512, 4096, 1 << 20]) {
    const got = await readAll(encodeTar(entries), chunk);
    assert.equal(got.length, entries.length);
    const by = new Map(got.map((g) => [g.entry.name, g]));
    assert.deepEqual(got.map((g) => g.entry.type), entries.map((e) => e.type));
    const a = by.get('d/a')!;
    assert.equal(a.entry.mode, 0o4755);
    assert.equal(a.entry.uid, 12345);
    assert.equal(a.entry.gid, 54321);
    assert.equal(a.entry.mtime, 1700000000);
    assert.equal(a.data.toString(), 'hello\n');
    assert.equal(by.get('d/')!.entry.mode, 0o750);
    assert.equal(by.get('d/h')!.entry.linkname, 'd/a');
    assert.equal(by.get('d/s')!.entry.linkname, '../etc/passwd');
    assert.deepEqual([by.get('dev/null')!.entry.devmajor, by.get('dev/null')!.entry.devminor], [1, 3]);
    assert.deepEqual([by.get('dev/sda')!.entry.devmajor, by.get('dev/sda')!.entry.devminor], [8, 0]);
    assert.equal(by.get(long)!.data.toString(), 'pax name');
    assert.ok(by.has(long + '2'));
    assert.equal(by.get('l')!.entry.linkname, '/' + 'y'.repeat(200));
    const cap = by.get('cap')!.entry;
    assert.deepEqual([...cap.xattrs['security.capability']], [1, 0, 0, 2, 0, 0x20]);
    assert.equal(Buffer.from(cap.xattrs['user.note']).toString(), 'hi');
    assert.deepEqual([by.get('bigid')!.entry.uid, by.get('bigid')!.entry.gid], [3_000_000, 4_000_000]);
    // Data offsets point at the bytes in the stream.
    const bytes = encodeTar(entries);
    assert.equal(Buffer.from(bytes.subarray(a.entry.dataOffset, a.entry.dataOffset + 6)).toString(), 'hello\n');
  }
});

test('numeric fields: octal with padding, base-256, negatives refused', () => {
  const f = (s: string) => new TextEncoder().encode(s);
  assert.equal(parseNumeric(f('0000644\0')), 0o644);
  assert.equal(parseNumeric(f('   644 \0')), 0o644);
  assert.equal(parseNumeric(f('\0\0\0\0')), 0);
  assert.equal(parseNumeric(new Uint8Array([0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])), 2 ** 32);
  assert.equal(parseNumeric(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])), null);
  assert.equal(parseNumeric(f('0009\0')), null);
});

test('ends: two zero blocks, one zero block, or the end of the stream at an entry boundary', async () => {
  const body = encodeTar([{ name: 'a', type: 'file', data: 'x' }], { end: false });
  assert.equal((await readAll(encodeTar([{ name: 'a', type: 'file', data: 'x' }]))).length, 1);
  assert.equal((await readAll(Uint8Array.from([...body, ...new Uint8Array(512)]))).length, 1);
  assert.equal((await readAll(body)).length, 1);
  assert.equal((await readAll(new Uint8Array(0))).length, 0);
});

test('hostile and malformed archives are ARCHIVE_INVALID errors, never hangs or crashes', async () => {
  const good = encodeTar([{ name: 'a', type: 'file', data: 'x'.repeat(1000) }]);
  // Bad checksum.
  const bad = Uint8Array.from(good);
  bad[0] ^= 1;
  await refused(bad, /bad header checksum at byte 0/);
  // Truncated in the data.
  await refused(good.subarray(0, 700), /truncated/);
  // Truncated in a header.
  await refused(good.subarray(0, 300), /truncated/);
  // Unknown type.
  const t = encodeTar([{ name: 'v', type: 'file' }]);
  t[156] = 'V'.charCodeAt(0);
  fixChecksum(t);
  await refused(t, /type 'V'/);
  // GNU sparse (type S and pax GNU.sparse.*).
  const s = encodeTar([{ name: 's', type: 'file' }]);
  s[156] = 'S'.charCodeAt(0);
  fixChecksum(s);
  await refused(s, /sparse/);
  await refused(encodeTar([{ name: 's', type: 'file', pax: { 'GNU.sparse.major': '1' } }]), /sparse/);
  // A pax header bigger than the cap, and malformed pax records.
  await refused(encodeTar([{ name: 'p', type: 'file', pax: { comment: 'z'.repeat(2 << 20) } }]), /pax header .*more than/);
  const p = encodeTar([{ name: 'p', type: 'file', pax: { comment: 'ok' } }]);
  p.set(new TextEncoder().encode('99'), 512); // record length now runs past the header
  await refused(p, /malformed pax record/);
  // A pax header with nothing after it.
  const lone = encodeTar([{ name: 'p', type: 'file', pax: { comment: 'ok' } }]);
  await refused(lone.subarray(0, 1024), /not followed by an entry|truncated/);
  // Negative size (base-256 0xff).
  const n = encodeTar([{ name: 'n', type: 'file' }]);
  n.fill(0xff, 124, 136);
  fixChecksum(n);
  await refused(n, /bad size/);
});

function fixChecksum(b: Uint8Array): void {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i];
  b.set(new TextEncoder().encode(sum.toString(8).padStart(6, '0') + '\0 '), 148);
}

test('reads what GNU tar writes (pax format with xattrs, hard links, long names, names that are not UTF-8)', { skip: spawnSync('tar', ['--version']).status !== 0 ? 'tar not installed' : false }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mkp-tar-'));
  try {
    const root = path.join(dir, 'root');
    mkdirSync(path.join(root, 'sub', 'x'.repeat(120)), { recursive: true });
    writeFileSync(path.join(root, 'sub', 'f'), 'data');
    linkSync(path.join(root, 'sub', 'f'), path.join(root, 'sub', 'hard'));
    symlinkSync('f', path.join(root, 'sub', 'link'));
    writeFileSync(path.join(root, 'sub', 'x'.repeat(120), 'deep'), 'deep');
    writeFileSync(Buffer.from(`${root}/sub/raw-\xff\xfe`, 'latin1'), 'raw');
    symlinkSync(Buffer.from('to-\xff', 'latin1'), path.join(root, 'sub', 'rawlink'));
    for (const format of ['posix', 'gnu']) {
      const out = path.join(dir, `${format}.tar`);
      const r = spawnSync('tar', ['--format', format, '--sort=name', '-C', root, '-cf', out, '.'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const got = await readAll(readFileSync(out));
      const names = got.map((g) => g.entry.name.replace(/^\.\//, ''));
      assert.ok(names.includes(`sub/${'x'.repeat(120)}/deep`), names.join(','));
      const hard = got.find((g) => g.entry.name.endsWith('sub/hard') || g.entry.name.endsWith('sub/f'))!;
      assert.ok(hard);
      assert.equal(got.filter((g) => g.entry.type === 'hardlink').length, 1);
      assert.equal(got.find((g) => g.entry.name.endsWith('sub/link'))!.entry.linkname, 'f');
      // Bytes that are not UTF-8 are kept, in the lossless string form (formats/bytenames.ts).
      const raw = got.find((g) => toBytes(g.entry.name).toString('latin1').endsWith('sub/raw-\xff\xfe'));
      assert.ok(raw, `${format}: ${names.map((n) => escapeName(n)).join(',')}`);
      assert.equal(toBytes(got.find((g) => g.entry.name.endsWith('sub/rawlink'))!.entry.linkname).toString('latin1'), 'to-\xff');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
