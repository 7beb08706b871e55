// OCI documents, layer semantics (whiteouts, opaque folders, hard links, duplicates), digests and hostile inputs,
// on image layouts and archives written here with our own tar writer: no external tool, no root.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { encodeTar, type TarWriteEntry } from '../../test/support/tar.js';
import { compress, writeLayout } from '../../test/support/oci-layout.js';
import { parseDigest, parseManifest, selectByRef, selectPlatform, hostPlatform, type Descriptor, MEDIA_TYPES, REF_NAME } from './oci.js';
import { openDockerArchive, openOciImage, openRootfsTarball } from '../sources/oci.js';
import type { RootfsSource } from '../sources/rootfs.js';
import { MkportableError } from '../errors.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const text = (b: Uint8Array) => Buffer.from(b).toString();

/** A tar of a folder's files (for oci-archive and docker-archive), written with our own writer. */
function tarOfFolder(dir: string): Uint8Array {
  const entries: TarWriteEntry[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const full = path.join(dir, r);
      if (statSync(full).isDirectory()) {
        entries.push({ name: r + '/', type: 'dir' });
        walk(r);
      } else entries.push({ name: r, type: 'file', data: new Uint8Array(readFileSync(full)) });
    }
  };
  walk('');
  return encodeTar(entries);
}

let tmp: string;
before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'mkp-oci-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = path.join(tmp, String(n++));
  mkdirSync(d);
  return d;
};

async function listTree(src: RootfsSource, dir = '/'): Promise<string[]> {
  const out: string[] = [];
  for (const name of await src.readdir(dir)) {
    const p = dir === '/' ? `/${name}` : `${dir}/${name}`;
    const st = (await src.lstat(p))!;
    out.push(`${p} ${st.type}`);
    if (st.type === 'dir') out.push(...(await listTree(src, p)));
  }
  return out;
}

async function expectError(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof MkportableError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('documents', () => {
  test('digests: only sha256/sha512 with the right number of lower-case hex digits (never a path)', () => {
    assert.deepEqual(parseDigest('t', `sha256:${'a'.repeat(64)}`), { algorithm: 'sha256', hex: 'a'.repeat(64) });
    for (const bad of [`sha256:../../../etc/passwd`, `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`, `sha256:${'a'.repeat(63)}`, 'sha256:', 42]) {
      assert.throws(() => parseDigest('t', bad), /digest/);
    }
  });

  test('manifest: layers must be tar media types', () => {
    const d = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 1 };
    assert.equal(parseManifest('m', { config: d, layers: [{ ...d, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }] }).layers.length, 1);
    assert.throws(() => parseManifest('m', { config: d, layers: [d] }), /not a tar layer/);
  });

  test('selection by tag and by platform', () => {
    const desc = (tag: string | undefined, hex: string, arch?: string): Descriptor => ({
      mediaType: MEDIA_TYPES.ociManifest, digest: { algorithm: 'sha256', hex: hex.repeat(64) }, size: 1,
      annotations: tag ? { [REF_NAME]: tag } : {}, platform: arch ? { os: 'linux', architecture: arch } : undefined,
    });
    const two = [desc('1.0', 'a'), desc('2.0', 'b')];
    assert.equal(selectByRef('i', two, '2.0').digest.hex[0], 'b');
    assert.throws(() => selectByRef('i', two, undefined), /holds 2 images; name one with :TAG \(tags: 1.0, 2.0\)/);
    assert.throws(() => selectByRef('i', two, '3.0'), /no image tagged '3.0'/);
    assert.equal(selectByRef('i', [desc(undefined, 'c')], undefined).digest.hex[0], 'c');
    const multi = [desc(undefined, 'd', 'riscv64x'), desc(undefined, 'e', hostPlatform().architecture)];
    assert.equal(selectPlatform('i', multi).digest.hex[0], 'e');
    assert.throws(() => selectPlatform('i', [multi[0]]), /no image for linux\//);
  });
});

describe('layers', () => {
  const base: TarWriteEntry[] = [
    { name: './', type: 'dir', mode: 0o755 },
    { name: 'etc/', type: 'dir' },
    { name: 'etc/keep', type: 'file', data: 'keep', uid: 7, gid: 8, mode: 0o640 },
    { name: 'etc/gone', type: 'file', data: 'gone' },
    { name: 'opt/', type: 'dir', mode: 0o700 },
    { name: 'opt/old/', type: 'dir' },
    { name: 'opt/old/x', type: 'file', data: 'lower' },
    { name: 'opt/y', type: 'file', data: 'lower y' },
    { name: 'bin/', type: 'dir' },
    { name: 'bin/tool', type: 'file', data: 'tool v1', mode: 0o755 },
    { name: 'bin/alias', type: 'hardlink', linkname: 'bin/tool' },
    { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
    { name: 'usr/lib/', type: 'dir' },
    { name: 'big', type: 'file', data: new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff) },
    { name: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
  ];
  const upper: TarWriteEntry[] = [
    { name: 'etc/.wh.gone', type: 'file' },
    { name: 'opt/', type: 'dir', mode: 0o755, uid: 5 },
    { name: 'opt/new/', type: 'dir' },
    { name: 'opt/new/z', type: 'file', data: 'upper' },
    { name: 'opt/.wh..wh..opq', type: 'file' }, // after the new entries: still applies to lower ones only
    { name: 'bin/tool', type: 'file', data: 'tool v2', mode: 0o755 },
    { name: 'lib/libx.so', type: 'file', data: 'through the symlink' },
    { name: 'etc/keep', type: 'file', data: 'first' },
    { name: 'etc/keep', type: 'file', data: 'second (duplicates: the last wins)', uid: 7, gid: 8, mode: 0o640 },
    { name: 'etc/xattr', type: 'file', data: 'x', xattrs: { 'security.capability': new Uint8Array([1, 2, 3]), 'user.a': 'b' } },
  ];

  for (const [kind, how] of [['gzip', 'gzip'], ['zstd', 'zstd'], ['uncompressed', 'none'], ['xz', 'xz']] as const) {
    test(`OCI layout, ${kind} layers: whiteouts, opaque folders, hard links, owners, xattrs, devices`, {
      skip: how === 'xz' && spawnSync('xz', ['--version']).status !== 0 ? 'xz not installed' : false,
    }, async () => {
      const dir = fresh();
      writeLayout(dir, [{ entries: base, compress: how }, { entries: upper, compress: how }], { tag: 'v1' });
      // A small memory budget: the 300 kB file and the rest go through the spill file.
      const img = await openOciImage('oci', dir, 'v1', { memoryBudget: 16 });
      const s = img.source;
      try {
        assert.deepEqual(await listTree(s), [
          '/big file', '/bin dir', '/bin/alias file', '/bin/tool file', '/dev dir', '/dev/null char',
          '/etc dir', '/etc/keep file', '/etc/xattr file', '/lib symlink', '/opt dir', '/opt/new dir', '/opt/new/z file',
          '/usr dir', '/usr/lib dir', '/usr/lib/libx.so file',
        ]);
        assert.equal(text(await s.readFile('/etc/keep')), 'second (duplicates: the last wins)');
        const keep = (await s.lstat('/etc/keep'))!;
        assert.deepEqual([keep.uid, keep.gid, keep.mode], [7, 8, 0o640]);
        const opt = (await s.lstat('/opt'))!;
        assert.deepEqual([opt.mode, opt.uid], [0o755, 5]);
        // The replaced tool is a new file; the old hard link keeps the old content.
        assert.equal(text(await s.readFile('/bin/tool')), 'tool v2');
        assert.equal(text(await s.readFile('/bin/alias')), 'tool v1');
        assert.equal(text(await s.readFile('/lib/libx.so')), 'through the symlink');
        assert.deepEqual([...(await s.xattrs('/etc/xattr'))!['security.capability']], [1, 2, 3]);
        assert.deepEqual((await s.lstat('/dev/null'))!.rdev, { major: 1, minor: 3 });
        const big = await s.readFile('/big');
        assert.equal(big.length, 300_000);
        assert.ok(big.every((b, i) => b === ((i * 7) & 0xff)));
        assert.deepEqual([...(await s.read('/big', 299_998, 10))], [(299_998 * 7) & 0xff, (299_999 * 7) & 0xff]);
        if (how !== 'none') assert.ok(s.usage.spilled >= 300_000, JSON.stringify(s.usage));
        else assert.equal(s.usage.spilled, 0);
        assert.equal(img.config.diffIds.length, 2);
      } finally {
        await s.close();
      }
    });
  }

  test('a hard link keeps sharing its inode (lstat ino and nlink)', async () => {
    const dir = fresh();
    writeLayout(dir, [{ entries: [{ name: 'a', type: 'file', data: 'x' }, { name: 'b', type: 'hardlink', linkname: './a' }] }]);
    const { source } = await openOciImage('oci', dir, undefined);
    const [a, b] = [(await source.lstat('/a'))!, (await source.lstat('/b'))!];
    assert.equal(a.ino, b.ino);
    assert.equal(a.nlink, 2);
    await source.close();
  });

  test('a whiteout in the same layer as its file does not remove it (OCI: lower layers only)', async () => {
    const dir = fresh();
    writeLayout(dir, [{ entries: [{ name: 'f', type: 'file', data: '1' }, { name: '.wh.f', type: 'file' }] }]);
    const { source } = await openOciImage('oci', dir, undefined);
    assert.equal(text(await source.readFile('/f')), '1');
    await source.close();
  });
});

describe('digests, archives and hostile images', () => {
  const layer = [{ entries: [{ name: 'hello', type: 'file', data: 'hi' }] as TarWriteEntry[] }];

  test('a tampered layer, config or manifest is DIGEST_MISMATCH; a wrong diff_id too', async () => {
    const cases: [string, LayoutOptions, RegExp][] = [
      ['layer', { tamper: (b, d) => b.set(d.layers[0], zlib.gzipSync(encodeTar([{ name: 'evil', type: 'file' }]))) }, /layer 1.*(bytes, the manifest says|has digest)/],
      ['layer, same size', { tamper: (b, d) => { const x = Uint8Array.from(b.get(d.layers[0])!); x[x.length - 5] ^= 1; b.set(d.layers[0], x); } }, /layer 1\/1|does not decompress/],
      ['config', { tamper: (b, d) => { const x = Uint8Array.from(b.get(d.config)!); x[x.length - 2] = 0x20; b.set(d.config, x); } }, /config .* has digest/],
      ['manifest', { tamper: (b, d) => { const x = Uint8Array.from(b.get(d.manifest)!); x[x.length - 2] = 0x20; b.set(d.manifest, x); } }, /manifest .* has digest/],
      ['diff_id', { diffIds: (ids) => ids.map(() => `sha256:${'0'.repeat(64)}`) }, /diff_id/],
    ];
    for (const [what, o, pattern] of cases) {
      const dir = fresh();
      writeLayout(dir, layer, o);
      await assert.rejects(openOciImage('oci', dir, undefined), (e: unknown) => {
        assert.ok(e instanceof MkportableError, `${what}: ${String(e)}`);
        assert.ok(e.code === 'DIGEST_MISMATCH' || e.code === 'ARCHIVE_INVALID', `${what}: ${e.code} ${e.message}`);
        assert.match(e.message, pattern, what);
        return true;
      });
    }
  });

  test('a digest that is a path is refused before any file is opened', async () => {
    const dir = fresh();
    writeLayout(dir, layer);
    writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: 'sha256:../../../../etc/passwd', size: 1 }] }));
    await expectError(openOciImage('oci', dir, undefined), 'ARCHIVE_INVALID', /not sha256:<64 hex digits>/);
  });

  test('not a layout, unknown tag, missing blob', async () => {
    await expectError(openOciImage('oci', fresh(), undefined), 'ARCHIVE_INVALID', /not an OCI image layout/);
    const dir = fresh();
    writeLayout(dir, layer, { tag: 'a' });
    await expectError(openOciImage('oci', dir, 'b'), 'ARCHIVE_INVALID', /no image tagged 'b' \(tags: a\)/);
    for (const f of readdirSync(path.join(dir, 'blobs/sha256'))) rmSync(path.join(dir, 'blobs/sha256', f));
    await expectError(openOciImage('oci', dir, 'a'), 'ARCHIVE_INVALID', /is missing/);
  });

  test('oci-archive: the same layout as one tar, blobs read in place', async () => {
    const dir = fresh();
    writeLayout(dir, [{ entries: [{ name: 'a', type: 'file', data: 'in place' }], compress: 'none' }], { tag: 'x' });
    const file = path.join(fresh(), 'img.tar');
    writeFileSync(file, tarOfFolder(dir));
    const img = await openOciImage('oci-archive', file, 'x');
    assert.equal(text(await img.source.readFile('/a')), 'in place');
    await img.source.close();
    writeFileSync(file + '.gz', zlib.gzipSync(tarOfFolder(dir)));
    await expectError(openOciImage('oci-archive', file + '.gz', 'x'), 'ARCHIVE_INVALID', /gzip-compressed; decompress it first/);
  });

  test('docker-archive: manifest.json, diff_ids checked, a repeated layer as a symlink', async () => {
    const dir = fresh();
    const l1 = encodeTar([{ name: 'a', type: 'file', data: 'one' }, { name: 'gone', type: 'file', data: 'x' }]);
    const l2 = encodeTar([{ name: '.wh.gone', type: 'file' }, { name: 'b', type: 'file', data: 'two' }]);
    const config = Buffer.from(JSON.stringify({ config: { Cmd: ['/a'] }, rootfs: { type: 'layers', diff_ids: [l1, l2, l1].map((l) => `sha256:${sha256(l)}`) } }));
    const configName = `${sha256(config)}.json`;
    const entries: TarWriteEntry[] = [
      { name: 'l1/', type: 'dir' }, { name: 'l1/layer.tar', type: 'file', data: l1 },
      { name: 'l2/', type: 'dir' }, { name: 'l2/layer.tar', type: 'file', data: l2 },
      { name: 'l3/', type: 'dir' }, { name: 'l3/layer.tar', type: 'symlink', linkname: '../l1/layer.tar' },
      { name: configName, type: 'file', data: config },
      { name: 'manifest.json', type: 'file', data: JSON.stringify([{ Config: configName, RepoTags: ['demo:1'], Layers: ['l1/layer.tar', 'l2/layer.tar', 'l3/layer.tar'] }]) },
    ];
    const file = path.join(dir, 'docker.tar');
    writeFileSync(file, encodeTar(entries));
    const img = await openDockerArchive(file, 'demo:1');
    assert.deepEqual(await listTree(img.source), ['/a file', '/b file', '/gone file']);
    assert.deepEqual(img.config.config.cmd, ['/a']);
    await img.source.close();
    // A wrong diff_id.
    const bad = entries.map((e) => (e.name === 'l2/layer.tar' ? { ...e, data: encodeTar([{ name: 'c', type: 'file' }]) } : e));
    writeFileSync(file, encodeTar(bad));
    await expectError(openDockerArchive(file, undefined), 'DIGEST_MISMATCH', /layer 2\/3.*diff_id/);
  });

  test('rootfs tarballs: plain, gzip, zstd; no whiteout semantics; spill file gone after close', async () => {
    const entries: TarWriteEntry[] = [{ name: '.wh.kept', type: 'file', data: 'a literal name' }, { name: 'big', type: 'file', data: new Uint8Array(200_000).fill(1) }];
    for (const how of ['none', 'gzip', 'zstd'] as const) {
      const file = path.join(fresh(), 'rootfs.tar');
      writeFileSync(file, compress(encodeTar(entries), how));
      const spillDir = fresh();
      const s = await openRootfsTarball(file, { spillDir, memoryBudget: 0 });
      assert.equal(text(await s.readFile('/.wh.kept')), 'a literal name');
      assert.equal((await s.readFile('/big')).length, 200_000);
      assert.deepEqual(readdirSync(spillDir), [], 'the spill file has no name');
      await s.close();
    }
  });

  test('hostile entries: .. refused, absolute names kept inside, links through symlinks stay inside, bad hard links refused', async () => {
    const tar = async (entries: TarWriteEntry[], opts = {}) => {
      const file = path.join(fresh(), 'x.tar');
      writeFileSync(file, encodeTar(entries));
      return openRootfsTarball(file, opts);
    };
    await expectError(tar([{ name: '../../etc/evil', type: 'file' }]), 'ARCHIVE_INVALID', /'\.\.' component/);
    await expectError(tar([{ name: 'a/../../evil', type: 'file' }]), 'ARCHIVE_INVALID', /'\.\.' component/);
    await expectError(tar([{ name: 'h', type: 'hardlink', linkname: '../../etc/shadow' }]), 'ARCHIVE_INVALID', /'\.\.' component/);
    await expectError(tar([{ name: 'h', type: 'hardlink', linkname: 'missing' }]), 'ARCHIVE_INVALID', /not in the rootfs/);
    await expectError(tar([{ name: 'd/', type: 'dir' }, { name: 'h', type: 'hardlink', linkname: 'd' }]), 'ARCHIVE_INVALID', /points to the directory/);
    await expectError(tar([{ name: 'n', type: 'char', devmajor: 1, devminor: 3 }], { allowDevices: false }), 'DEVICE_REFUSED', /char device 1:3, and allowDevices is false/);
    await expectError(tar([{ name: 'f', type: 'file' }, { name: 'f/x', type: 'file' }]), 'ARCHIVE_INVALID', /'f' is a file, not a directory/);
    await expectError(tar([{ name: 'x'.repeat(256), type: 'file' }]), 'ARCHIVE_INVALID', /longer than 255/);
    // Absolute names are taken relative to the rootfs, as tar does.
    const abs = await tar([{ name: '/etc/abs', type: 'file', data: 'inside' }]);
    assert.equal(text(await abs.readFile('/etc/abs')), 'inside');
    await abs.close();
    // A file written "through" a symlink that points outside lands inside the rootfs, at the link's target.
    const esc = await tar([
      { name: 'up', type: 'symlink', linkname: '../../../../../tmp' },
      { name: 'abs', type: 'symlink', linkname: '/etc' },
      { name: 'up/evil', type: 'file', data: 'up' },
      { name: 'abs/evil', type: 'file', data: 'abs' },
    ]);
    assert.deepEqual(await listTree(esc), ['/abs symlink', '/etc dir', '/etc/evil file', '/tmp dir', '/tmp/evil file', '/up symlink']);
    await esc.close();
    // A symlink loop in a parent is an error, not a hang.
    await expectError(tar([{ name: 'a', type: 'symlink', linkname: 'b' }, { name: 'b', type: 'symlink', linkname: 'a' }, { name: 'a/x', type: 'file' }]), 'ARCHIVE_INVALID', /too many levels/);
    // Lookups through the Source never leave the rootfs either.
    const look = await tar([{ name: 'etc/passwd', type: 'file', data: 'inner' }, { name: 'l', type: 'symlink', linkname: '../../../../etc/passwd' }]);
    assert.equal(text(await look.readFile('/l')), 'inner');
    assert.equal(text(await look.readFile('/../../etc/passwd')), 'inner');
    await look.close();
  });
});
