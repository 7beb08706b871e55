// The build host and its folders as sources: names are bytes, link targets any length Linux allows, xattrs read,
// holes of sparse files known, failures one line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync, openSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { directorySource } from './host.js';
import { rootedDirectorySource } from './from.js';
import { sourceXattrs } from './xattrs.js';
import { fromBytes, toBytes } from '../formats/bytenames.js';
import { MkportableError } from '../errors.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'mkportable-host-'));
after(() => rmSync(work, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
/** A shell command in `cwd` (Node cannot pass bytes that are not UTF-8 in argv: the tests name such files by glob). */
const sh = (cwd: string, script: string) => {
  const r = spawnSync('sh', ['-c', script], { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${script}: ${r.stderr}`);
};
const raw = (s: string) => Buffer.from(s, 'latin1');

test('names that are not UTF-8 are listed, stat-ed, read and followed as the bytes they are', async () => {
  const root = path.join(work, 'names');
  mkdirSync(root);
  writeFileSync(raw(`${root}/raw-\xff\xfe`), 'raw bytes\n');
  writeFileSync(path.join(root, 'é'), 'utf-8\n');
  mkdirSync(raw(`${root}/dir-\x80`));
  writeFileSync(raw(`${root}/dir-\x80/inner`), 'inner\n');
  symlinkSync(raw('raw-\xff\xfe'), raw(`${root}/link-\xfe`));
  for (const source of [directorySource(root), rootedDirectorySource(root)]) {
    const names = await source.readdir('/');
    assert.deepEqual(names.map((n) => toBytes(n).toString('latin1')), ['dir-\x80', 'link-\xfe', 'raw-\xff\xfe', '\xc3\xa9'], source.name);
    const name = fromBytes(raw('raw-\xff\xfe'));
    assert.equal((await source.lstat(`/${name}`))?.type, 'file');
    assert.equal(Buffer.from(await source.readFile(`/${name}`)).toString(), 'raw bytes\n');
    assert.equal(Buffer.from(await source.read(`/${name}`, 4, 5)).toString(), 'bytes');
    const link = `/${fromBytes(raw('link-\xfe'))}`;
    assert.equal(await source.readlink(link), name);
    assert.deepEqual(await source.readdir(`/${fromBytes(raw('dir-\x80'))}`), ['inner']);
  }
});

test('a 4000-byte symlink target is read whole; a path through it is simply not there', async () => {
  const root = path.join(work, 'long');
  mkdirSync(root);
  const target = 'a'.repeat(4000);
  symlinkSync(target, path.join(root, 'long'));
  const deep = 'd/'.repeat(2000); // 4000 bytes of short components, none of them existing
  symlinkSync(deep, path.join(root, 'deep'));
  for (const source of [directorySource(root), rootedDirectorySource(root)]) {
    assert.equal(await source.readlink('/long'), target);
    assert.equal((await source.lstat('/long'))?.size, 4000);
    assert.equal(await source.lstat(`/${target}`), null, 'a component over NAME_MAX cannot exist');
    assert.equal(await source.readlink('/deep'), deep);
    assert.equal(await source.lstat(`/${deep}`), null);
  }
});

test('a path the build host cannot open (over PATH_MAX) is a one-line SOURCE_READ error naming it', async () => {
  const source = directorySource(work);
  const long = '/x'.repeat(2100);
  await assert.rejects(source.lstat(long), (e: unknown) => {
    assert.ok(e instanceof MkportableError);
    assert.equal(e.code, 'SOURCE_READ');
    assert.match(e.message, /cannot read: the path is longer than the build host can open/);
    assert.ok(!e.message.includes('\n'));
    assert.equal(e.subject, long);
    return true;
  });
  await assert.rejects(source.readFile('/nope'), (e: unknown) => e instanceof MkportableError && /nope: cannot read: it disappeared/.test(e.message));
});

test('extended attributes are read: user.*, security.capability, trusted.* (root), on names that are not UTF-8', { skip: !has('setfattr') && 'setfattr (attr) not installed' }, async () => {
  const root = path.join(work, 'xattrs');
  mkdirSync(root);
  const file = raw(`${root}/cap-\xff`);
  writeFileSync(file, 'x');
  sh(root, 'setfattr -n user.note -v hello cap-* && setfattr -n user.bin -v 0x00ff10 cap-*');
  if (isRoot) {
    sh(root, "setfattr -n trusted.t -v 'root only' cap-*");
    if (has('setcap')) sh(root, 'setcap cap_net_raw+ep cap-*');
  }
  symlinkSync('cap', path.join(root, 'link'));
  writeFileSync(path.join(root, 'plain'), 'x');
  for (const source of [directorySource(root), rootedDirectorySource(root)]) {
    const x = await sourceXattrs(source, `/${fromBytes(raw('cap-\xff'))}`);
    assert.ok(x, source.name);
    assert.equal(Buffer.from(x['user.note']).toString(), 'hello');
    assert.deepEqual([...x['user.bin']], [0x00, 0xff, 0x10]);
    if (isRoot) {
      assert.equal(Buffer.from(x['trusted.t']).toString(), 'root only');
      // VFS_CAP_REVISION_2, permitted+effective, bit 13 (CAP_NET_RAW).
      if (has('setcap')) assert.equal(Buffer.from(x['security.capability']).toString('hex'), '0100000200200000000000000000000000000000');
    }
    assert.equal(await sourceXattrs(source, '/plain'), undefined);
    assert.equal(await sourceXattrs(source, '/link'), undefined, 'a symlink\'s own attributes, not its target\'s');
  }
});

test('the holes of a sparse file are known without reading them', async () => {
  const file = path.join(work, 'sparse');
  const fd = openSync(file, 'w');
  ftruncateSync(fd, 64 << 20);
  writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 32 << 20);
  closeSync(fd);
  const ranges = await directorySource(work).dataRanges!('/sparse', 64 << 20);
  assert.ok(ranges);
  assert.equal(ranges.length, 1);
  const [start, end] = ranges[0];
  assert.ok(start <= 32 << 20 && end >= (32 << 20) + 4096 && end - start <= 1 << 20, `${start}..${end}`);
  assert.equal(await directorySource(work).dataRanges!('/sparse', 1000), undefined, 'small files are read whole');
});
