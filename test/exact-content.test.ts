// Issue 10's first list, one test each: what a host folder or a dir: rootfs holds reaches the image exactly, with
// either backend, or the build fails in one line naming the path.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { portableService, type BuildResult } from '../src/index.js';
import { openImage, type SquashfsImage } from '../src/squashfs/read/index.js';
import { fromBytes, toBytes } from '../src/formats/bytenames.js';
import { createTree } from '../src/plan/tree.js';
import { writeImage } from '../src/writers/index.js';
import { MkportableError } from '../src/errors.js';
import { hasCommand, isRoot, needs, runCli, runCommand, tempDir } from './support/env.js';

const work = tempDir('mkportable-exact-');
after(() => rmSync(work, { recursive: true, force: true }));
const raw = (s: string) => Buffer.from(s, 'latin1');
const svc = '[Service]\nExecStart=/usr/bin/true\n';
let n = 0;

function sh(cwd: string, script: string): void {
  const r = spawnSync('sh', ['-ec', script], { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${script}\n${r.stderr}`);
}

/** A fresh folder with a unit file, and the CLI arguments to build it with `contents`. */
function project(contents: string): { dir: string; args: (...extra: string[]) => string[] } {
  const dir = path.join(work, `p${++n}`);
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'exact.service'), svc);
  return {
    dir,
    args: (...extra) => ['build', '--pname', 'exact', '--version', '1', '--unit', path.join(dir, 'exact.service'), '--contents', contents, '--out', path.join(dir, 'out'), ...extra],
  };
}

async function withImage<T>(file: string, f: (img: SquashfsImage) => Promise<T>): Promise<T> {
  const img = await openImage(file);
  try {
    return await f(img);
  } finally {
    await img.close();
  }
}

test('a file whose name is not valid UTF-8 is in the image; ls, cat and --json show it as \\xff', async (t) => {
  if (!needs(t, hasCommand('unsquashfs'), 'unsquashfs not installed')) return;
  const tree = path.join(work, 'raw-names');
  mkdirSync(tree);
  writeFileSync(raw(`${tree}/raw-\xff\xfe`), 'kept\n');
  const p = project(tree);
  const r = await runCli(p.args('--json'));
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as BuildResult;
  assert.ok(result.files.some((f) => f.path === `${tree}/raw-\\xff\\xfe`), 'the JSON result shows the name escaped');
  const ls = await runCli(['ls', result.image, tree]);
  assert.match(ls.stdout, /raw-\\xff\\xfe\n/);
  const cat = await runCli(['cat', result.image, `${tree}/raw-\\xff\\xfe`]);
  assert.equal(cat.code, 0, cat.stderr);
  assert.equal(cat.stdout, 'kept\n');
  // The bytes themselves, as another reader sees them.
  const peer = spawnSync('unsquashfs', ['-l', result.image]);
  assert.ok(peer.stdout.includes(raw(`${tree}/raw-\xff\xfe\n`)), 'unsquashfs lists the raw bytes');
});

test('a symlink with a 4000-byte target is kept (no ENAMETOOLONG)', async (t) => {
  if (!needs(t, hasCommand('unsquashfs'), 'unsquashfs not installed')) return;
  const tree = path.join(work, 'long-target');
  mkdirSync(tree);
  writeFileSync(path.join(tree, 'plain'), 'plain\n');
  const long = 'a'.repeat(4000);
  const resolving = `${'./'.repeat(1995)}/plain`; // 3997 bytes that lead to ./plain
  symlinkSync(long, path.join(tree, 'long'));
  symlinkSync(resolving, path.join(tree, 'resolving'));
  const p = project(tree);
  const r = await runCli(p.args('--json'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /long: symlink to 'a+', which does not exist/, 'the dangling one is a warning');
  const result = JSON.parse(r.stdout) as BuildResult;
  await withImage(result.image, async (img) => {
    assert.equal(await img.readlink(`${tree}/long`), long);
    assert.equal(await img.readlink(`${tree}/resolving`), resolving);
    assert.equal(Buffer.from(await img.readFile(`${tree}/resolving`)).toString(), 'plain\n');
  });
  const peer = spawnSync('unsquashfs', ['-ll', result.image], { encoding: 'utf8', maxBuffer: 1 << 24 });
  assert.ok(peer.stdout.includes(`${tree}/long -> ${long}\n`));
});

test('xattrs of host files are kept: security.capability (cap_net_raw+ep) and user.*', async (t) => {
  if (!needs(t, isRoot() && hasCommand('setcap') && hasCommand('setfattr') && hasCommand('rdsquashfs'), 'needs root, setcap, setfattr, rdsquashfs')) return;
  const tree = path.join(work, 'xattrs');
  mkdirSync(tree);
  writeFileSync(path.join(tree, 'ping-like'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(raw(`${tree}/raw-\xff`), 'x');
  sh(tree, 'setcap cap_net_raw+ep ping-like && setfattr -n user.origin -v host ping-like && setfattr -n user.raw -v 0xff00 raw-*');
  const p = project(tree);
  const r = await runCli(p.args('--json'));
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as BuildResult;
  await withImage(result.image, async (img) => {
    const x = (await img.stat(`${tree}/ping-like`)).xattrs;
    assert.equal(Buffer.from(x['security.capability']).toString('hex'), '0100000200200000000000000000000000000000');
    assert.equal(Buffer.from(x['user.origin']).toString(), 'host');
    assert.deepEqual([...(await img.stat(`${tree}/${fromBytes(raw('raw-\xff'))}`)).xattrs['user.raw']], [0xff, 0x00]);
  });
  const peer = await runCommand('rdsquashfs', ['-x', `${tree}/ping-like`, result.image]);
  assert.match(peer.stdout, /^security\.capability=/m);
  assert.match(peer.stdout, /^user\.origin=/m);
});

/** Every entry of an image: type, mode, owner, link target, xattrs and a hash of the contents. */
async function entries(file: string): Promise<Map<string, string>> {
  return withImage(file, async (img) => {
    const out = new Map<string, string>();
    for await (const { path: p, stat } of img.walk('/')) {
      const x = Object.entries(stat.xattrs).map(([k, v]) => `${k}=${Buffer.from(v).toString('hex')}`).sort().join(',');
      const content = stat.type === 'file' ? createHash('sha256').update(await img.readFile(p)).digest('hex') : '';
      out.set(p, `${stat.type} ${stat.mode.toString(8)} ${stat.uid}:${stat.gid} ${stat.mtime} ${stat.target !== undefined ? toBytes(stat.target).toString('hex') : ''} [${x}] ${content} ${stat.major ?? ''}:${stat.minor ?? ''}`);
    }
    return out;
  });
}

test('the mksquashfs backend keeps owners, modes and xattrs like the native writer (dir: with closure full, and pack)', async (t) => {
  if (!needs(t, isRoot() && hasCommand('mksquashfs') && hasCommand('setcap') && hasCommand('sqfsdiff'), 'needs root, mksquashfs, setcap, sqfsdiff')) return;
  const rootfs = path.join(work, 'rootfs');
  mkdirSync(path.join(rootfs, 'srv/data'), { recursive: true });
  mkdirSync(path.join(rootfs, 'usr/bin'), { recursive: true });
  writeFileSync(path.join(work, 'static.c'), 'int main(void) { return 0; }\n');
  sh(work, `gcc -static -O2 -o ${rootfs}/usr/bin/exact static.c`);
  const data = path.join(rootfs, 'srv/data');
  writeFileSync(path.join(data, 'owned'), 'owned\n');
  writeFileSync(path.join(data, 'cap'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(raw(`${data}/raw-\xff with space`), 'raw\n');
  mkdirSync(path.join(data, 'sticky'));
  mkdirSync(path.join(data, 'sub/deeper'), { recursive: true });
  writeFileSync(path.join(data, 'sub/deeper/f'), 'deep\n');
  symlinkSync('owned', path.join(data, 'link'));
  sh(data, 'chown 1234:5678 owned && chown -h 11:12 link && chown 99:98 sticky && chmod 1770 sticky && setcap cap_net_bind_service+ep cap && setfattr -n user.a -v 1 owned && setfattr -n trusted.t -v t sticky && setfattr -n user.r -v r raw-* && chown 7:7 raw-* && chown -R 3:4 sub && touch -h -d @1000000 link sub/deeper/f && touch -d @2000000 sub/deeper sub');
  sh(data, 'mkfifo fifo && chown 5:6 fifo && mknod tty c 5 0 && chown 0:5 tty && chmod 620 tty');
  writeFileSync(path.join(work, 'exact.service'), '[Service]\nExecStart=/usr/bin/exact\n');
  const build = (backend: 'native' | 'mksquashfs') => portableService({
    pname: 'exact', version: '1', units: [path.join(work, 'exact.service')], from: `dir:${rootfs}`, closure: 'full', outDir: path.join(work, 'full', backend),
    ...(backend === 'mksquashfs' ? { squashfsTools: '/usr/bin' } : {}),
  });
  const native = await build('native');
  const peer = await build('mksquashfs');
  assert.equal(peer.backend, 'mksquashfs');
  const [a, b] = [await entries(native.image), await entries(peer.image)];
  assert.deepEqual([...b], [...a]);
  assert.match(a.get('/srv/data/owned')!, / 1234:5678 .*user\.a=31/);
  assert.match(a.get('/srv/data/cap')!, /security\.capability=/);
  assert.match(a.get('/srv/data/fifo')!, /^fifo 644 5:6 /);
  assert.equal(spawnSync('sqfsdiff', ['-a', native.image, '-b', peer.image]).status, 0);

  // pack keeps the folder's own times too (pseudo M lines); with and without --all-root.
  for (const allRoot of [[], ['--all-root']]) {
    const images = ['native', 'mksquashfs'].map((k) => path.join(work, `pack-${k}-${allRoot.length}.raw`));
    assert.equal((await runCli(['pack', data, images[0], ...allRoot])).code, 0);
    const r = await runCli(['pack', data, images[1], '--mksquashfs', ...allRoot]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...(await entries(images[1]))], [...(await entries(images[0]))], `pack ${allRoot.join(' ')}`);
  }
});

test('the mksquashfs backend refuses what it cannot stage, in one line, and writes nothing', async (t) => {
  if (!needs(t, hasCommand('mksquashfs'), 'mksquashfs not installed')) return;
  const base = { mode: 0o644, uid: 0, gid: 0, mtime: 0, reason: 'test', origin: 'test' };
  const cases: [string, (t: ReturnType<typeof createTree>) => void, RegExp][] = [
    ['a fifo with xattrs', (tr) => tr.entries.set('/fifo', { ...base, type: 'fifo', xattrs: { 'user.x': Buffer.from('1') } }), /\/fifo: a fifo with extended attributes cannot be staged with the mksquashfs backend/],
    ['a name with a line break', (tr) => tr.entries.set('/a\nb', { ...base, type: 'file', size: 0, content: { kind: 'bytes', data: new Uint8Array(0) } }), /\/a\\x0ab: a name with a line break cannot be named in a pseudo file/],
  ];
  const out = path.join(work, 'refused');
  mkdirSync(out);
  for (const [what, add, pattern] of cases) {
    const tree = createTree();
    tree.entries.set('/', { ...base, mode: 0o755, type: 'dir' });
    add(tree);
    await assert.rejects(
      writeImage(tree, path.join(out, 'img.raw'), { backend: 'mksquashfs', compression: ['gzip'], blockSize: 131072, mkfsTime: 0 }),
      (e: unknown) => e instanceof MkportableError && e.code === 'UNSTORABLE' && pattern.test(e.message) && !e.message.includes('\n'),
      what,
    );
    // The native writer stores both.
    await writeImage(tree, path.join(out, 'native.raw'), { backend: 'native', compression: ['gzip'], blockSize: 131072, mkfsTime: 0 });
  }
  assert.deepEqual(readdirSync(out), ['native.raw']);
});

test('a name over 255 bytes or a symlink target over 4095 is a one-line error naming the path, with either backend', async (t) => {
  if (!needs(t, hasCommand('mksquashfs'), 'mksquashfs not installed')) return;
  const p = project('/usr/bin/true');
  const longName = `/opt/${'n'.repeat(256)}`;
  const longTarget = `/usr/bin/true${'/.'.repeat(2100)}`; // 4213 bytes, naming /usr/bin/true
  for (const backend of [[], ['--squashfs-tools', '/usr/bin']]) {
    for (const [link, expect] of [
      [`${longName}=/usr/bin/true`, /^mkportable: error: \/opt\/n+: name of 256 bytes \(1\.\.255 allowed\) \(cannot be stored in a squashfs image\)$/],
      [`/usr/bin/t=${longTarget}`, /^mkportable: error: \/usr\/bin\/t: symlink target of 4213 bytes \(1\.\.4095 allowed\)/],
    ] as const) {
      const r = await runCli([...p.args(...backend), '--symlink', link]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr.trim(), expect);
      assert.deepEqual(readdirSync(path.join(p.dir, 'out')), []);
    }
  }
});

test('host hard links are separate files in the image; a dir: rootfs with closure full keeps them', async (t) => {
  if (!needs(t, hasCommand('gcc'), 'gcc not installed')) return;
  const tree = path.join(work, 'hard');
  mkdirSync(tree);
  writeFileSync(path.join(tree, 'a'), 'same inode\n');
  sh(tree, 'ln a b');
  const p = project(tree);
  const r = await runCli(p.args('--json'));
  assert.equal(r.code, 0, r.stderr);
  await withImage((JSON.parse(r.stdout) as BuildResult).image, async (img) => {
    const [a, b] = [await img.stat(`${tree}/a`), await img.stat(`${tree}/b`)];
    assert.notEqual(a.ino, b.ino);
    assert.equal(a.nlink, 1);
  });
  const rootfs = path.join(work, 'hard-rootfs');
  mkdirSync(path.join(rootfs, 'usr/bin'), { recursive: true });
  writeFileSync(path.join(work, 'hard.c'), 'int main(void) { return 0; }\n');
  sh(work, `gcc -static -O2 -o ${rootfs}/usr/bin/exact hard.c && mkdir -p ${rootfs}/srv && echo x > ${rootfs}/srv/a && ln ${rootfs}/srv/a ${rootfs}/srv/b`);
  writeFileSync(path.join(work, 'exact.service'), '[Service]\nExecStart=/usr/bin/exact\n');
  const full = await portableService({ pname: 'exact', version: 'hard', units: [path.join(work, 'exact.service')], from: `dir:${rootfs}`, outDir: path.join(work, 'hard-out') });
  await withImage(full.image, async (img) => {
    const [a, b] = [await img.stat('/srv/a'), await img.stat('/srv/b')];
    assert.equal(a.ino, b.ino);
    assert.equal(a.nlink, 2);
  });
});
