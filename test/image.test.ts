import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, existsSync, mkdirSync, writeFileSync, linkSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { hasCommand, isRoot, needs, runCli, runCommand, tempDir, REPO } from './support/env.js';
import type { BuildResult } from '../src/index.js';

async function buildDemo(out: string, env?: NodeJS.ProcessEnv): Promise<BuildResult> {
  const r = await runCli(['build', 'examples/demo', '--out', out, '--json'], { env: env ?? process.env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as BuildResult;
}

/** unsquashfs -lls lines as path → { perms, target } (path without the squashfs-root prefix). */
async function listImage(image: string): Promise<Map<string, { perms: string; size: string; rest: string }>> {
  const r = await runCommand('unsquashfs', ['-lls', '-d', '', image]);
  assert.equal(r.code, 0, r.stderr);
  const entries = new Map<string, { perms: string; size: string; rest: string }>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([-dlcbps][-rwxsStT]{9})\s+(\S+)\s+(\S+)\s+\S+\s+\S+\s+(.*)$/.exec(line);
    if (!m) continue;
    const rest = m[4];
    const p = rest.split(' -> ')[0];
    entries.set(p === '' ? '/' : p, { perms: m[1], size: m[3], rest });
  }
  return entries;
}

test('the demo image has the portable layout, units and the closure of its programs', async (t) => {
  if (!needs(t, hasCommand('unsquashfs') && hasCommand('mksquashfs'), 'squashfs-tools (mksquashfs, unsquashfs) not installed')) return;
  const out = tempDir(t);
  const result = await buildDemo(out);
  assert.equal(result.image, path.join(out, 'demo_1.0.raw'));
  assert.equal(result.name, 'demo_1.0');
  const ls = await listImage(result.image);
  const is = (p: string, kind: string) => {
    const e = ls.get(p);
    assert.ok(e, `${p} missing from image; have ${[...ls.keys()].slice(0, 50).join(' ')}`);
    assert.equal(e.perms[0], kind, `${p} is ${e.perms}`);
    return e;
  };
  is('/etc/systemd/system/demo.service', '-');
  is('/etc/systemd/system/demo.socket', '-');
  is('/etc/os-release', '-');
  assert.equal(is('/etc/machine-id', '-').size, '0');
  assert.equal(is('/etc/resolv.conf', '-').size, '0');
  for (const d of ['/proc', '/sys', '/dev', '/run', '/tmp', '/var/tmp', '/var/lib', '/var/cache', '/var/log']) is(d, 'd');
  for (const f of ['/etc/passwd', '/etc/group', '/etc/nsswitch.conf']) is(f, '-');
  // The host's top folders keep their form (merged-/usr links stay links, with their targets); /bin/sh is the
  // ExecStart program, date and sleep come from contents.
  const tops = ['/bin', '/lib', '/lib64'].filter((p) => existsSync(p));
  assert.ok(tops.length >= 2, `host has only ${tops.join(' ')}`);
  for (const p of tops) {
    if ((await fs.lstat(p)).isSymbolicLink()) assert.match(is(p, 'l').rest, new RegExp(` -> ${await fs.readlink(p)}$`));
    else is(p, 'd');
  }
  is('/usr/bin/date', '-');
  is('/usr/bin/sleep', '-');
  const sh = await fs.realpath('/bin/sh');
  is(sh, '-');
  const unitText = await runCommand('unsquashfs', ['-cat', result.image, 'etc/systemd/system/demo.service']);
  // The unit as written, with the line that lets its dynamic user be looked up (dynamicUserLookup, on by default).
  const written = await fs.readFile(path.join(REPO, 'examples/demo/demo.service'), 'utf8');
  assert.ok(unitText.stdout.startsWith(written), unitText.stdout);
  assert.match(unitText.stdout.slice(written.length), /^\n# Added by mkportable: .*\n\[Service\]\nBindReadOnlyPaths=-\/run\/systemd\/userdb\n$/);
  const nss = await runCommand('unsquashfs', ['-cat', result.image, 'etc/nsswitch.conf']);
  assert.match(nss.stdout, /^passwd: files systemd$/m);
  assert.match(nss.stdout, /^group: files systemd$/m);
  is('/usr/lib/x86_64-linux-gnu/libnss_systemd.so.2', '-');
  const osRelease = (await runCommand('unsquashfs', ['-cat', result.image, 'etc/os-release'])).stdout;
  assert.match(osRelease, /^PORTABLE_PREFIXES=demo$/m);
  assert.match(osRelease, /^IMAGE_VERSION=1\.0$/m);
  assert.match(osRelease, /^PORTABLE_PRETTY_NAME="Demo portable service"$/m);
  assert.match(osRelease, /^ID=debian$/m);
  // Every file the result lists is in the image, and the other way round.
  assert.deepEqual(new Set(result.files.map((f) => f.path)), new Set(ls.keys()));
  assert.match(result.sha256, /^[0-9a-f]{64}$/);
  assert.equal(result.size, (await fs.stat(result.image)).size);
});

test('the demo program runs from the loop-mounted image with chroot (the closure is complete)', async (t) => {
  if (!needs(t, isRoot(), 'loop mount and chroot need root')) return;
  if (!needs(t, hasCommand('mksquashfs'), 'mksquashfs not installed')) return;
  const out = tempDir(t);
  const { image } = await buildDemo(out);
  const mnt = path.join(out, 'mnt');
  mkdirSync(mnt);
  const m = await runCommand('mount', ['-t', 'squashfs', '-o', 'loop,ro', image, mnt]);
  assert.equal(m.code, 0, `mount failed: ${m.stderr}`);
  try {
    // The unit's own ExecStart loop, bounded: the shell, date and sleep all come from the image.
    const r = await runCommand('chroot', [mnt, '/bin/sh', '-c', 'for i in 1 2; do date -u +%Y; sleep 0.1; done; echo done'], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\d{4}\n\d{4}\ndone\n$/);
    const absent = await runCommand('chroot', [mnt, '/usr/bin/ls']);
    assert.notEqual(absent.code, 0, 'ls was not asked for and must not be in the image');
  } finally {
    await runCommand('umount', [mnt]);
  }
});

test('two builds are byte-identical whatever the host files\' mtimes and hard links; SOURCE_DATE_EPOCH is honoured', async (t) => {
  if (!needs(t, hasCommand('mksquashfs'), 'mksquashfs not installed')) return;
  const work = tempDir(t);
  const tree = path.join(work, 'tree');
  mkdirSync(path.join(tree, 'data'), { recursive: true });
  writeFileSync(path.join(tree, 'data/a.txt'), 'hello\n');
  linkSync(path.join(tree, 'data/a.txt'), path.join(tree, 'data/b.txt'));
  writeFileSync(path.join(work, 'repro.service'), '[Service]\nExecStart=/usr/bin/true\n');
  const args = (out: string) => ['build', '--pname', 'repro', '--version', '1', '--unit', path.join(work, 'repro.service'), '--contents', tree, '--out', out, '--json'];
  const env = { ...process.env };
  delete env.SOURCE_DATE_EPOCH;
  const first = await runCli(args(path.join(work, 'o1')), { env });
  assert.equal(first.code, 0, first.stderr);
  // Break the hard link and change every mtime; the image must not change.
  await fs.rm(path.join(tree, 'data/b.txt'));
  writeFileSync(path.join(tree, 'data/b.txt'), 'hello\n');
  utimesSync(path.join(tree, 'data/a.txt'), 1e9, 1e9);
  utimesSync(path.join(tree, 'data'), 2e9, 2e9);
  const second = await runCli(args(path.join(work, 'o2')), { env });
  assert.equal(second.code, 0, second.stderr);
  const r1 = JSON.parse(first.stdout) as BuildResult;
  const r2 = JSON.parse(second.stdout) as BuildResult;
  assert.equal(r1.sha256, r2.sha256);
  assert.deepEqual(await fs.readFile(r1.image), await fs.readFile(r2.image));

  const dated = await runCli(args(path.join(work, 'o3')), { env: { ...env, SOURCE_DATE_EPOCH: '1700000000' } });
  assert.equal(dated.code, 0, dated.stderr);
  const r3 = JSON.parse(dated.stdout) as BuildResult;
  assert.notEqual(r3.sha256, r1.sha256);
  const ls = await runCommand('unsquashfs', ['-lls', '-UTC', r3.image]);
  assert.match(ls.stdout, /2023-11-14 22:13 squashfs-root\/etc\/os-release/);
});

test('a failed build leaves an older image in place and no temporary files', async (t) => {
  if (!needs(t, hasCommand('mksquashfs'), 'mksquashfs not installed')) return;
  const out = tempDir(t);
  const image = path.join(out, 'demo_1.0.raw');
  writeFileSync(image, 'older image');
  const r = await runCli(['build', 'examples/demo', '--out', out, '--unit', '/nonexistent/demo.service']);
  assert.equal(r.code, 1);
  assert.equal(await fs.readFile(image, 'utf8'), 'older image');
  assert.deepEqual(await fs.readdir(out), ['demo_1.0.raw']);
  // mksquashfs failing half-way also leaves nothing behind.
  const bad = await runCli(['build', 'examples/demo', '--out', out, '--squashfs-tools', '/usr/bin/mksquashfs', '--squash-compression', 'xz -Xno-such-option']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /mksquashfs.*failed/);
  assert.deepEqual(await fs.readdir(out), ['demo_1.0.raw']);
  assert.ok(existsSync(image));
});

test('the native writer (default) and the mksquashfs backend build the same demo image contents', async (t) => {
  if (!needs(t, hasCommand('mksquashfs') && hasCommand('sqfsdiff'), 'squashfs-tools and squashfs-tools-ng not installed')) return;
  const out = tempDir(t);
  const native = await buildDemo(path.join(out, 'native'));
  assert.equal(native.backend, 'native');
  const r = await runCli(['build', 'examples/demo', '--out', path.join(out, 'peer'), '--squashfs-tools', '/usr/bin', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const peer = JSON.parse(r.stdout) as BuildResult;
  assert.equal(peer.backend, 'mksquashfs');
  // Contents, owners, permissions and (-T) timestamps; exit 0 means no difference.
  const diff = await runCommand('sqfsdiff', ['-a', native.image, '-b', peer.image, '-T']);
  assert.equal(diff.code, 0, diff.stdout + diff.stderr);
});

test('mkportable ls and cat read our images and mksquashfs\'s alike', async (t) => {
  if (!needs(t, hasCommand('mksquashfs') && hasCommand('unsquashfs'), 'squashfs-tools not installed')) return;
  const out = tempDir(t);
  const ours = await buildDemo(path.join(out, 'native'));
  const r = await runCli(['build', 'examples/demo', '--out', path.join(out, 'peer'), '--squashfs-tools', '/usr/bin/mksquashfs', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const theirs = JSON.parse(r.stdout) as BuildResult;
  for (const image of [ours.image, theirs.image]) {
    const ls = await runCli(['ls', image, '/etc']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^-rw-r--r-- 0\/0 +0 1970-01-01T00:00:00Z \/etc\/machine-id$/m);
    assert.match(ls.stdout, /^drwxr-xr-x 0\/0 .* \/etc\/systemd\/system$/m);
    const all = await runCli(['ls', image]);
    assert.match(all.stdout, /^lrwxrwxrwx .* \/usr\/bin\/sh -> dash$/m);
    const cat = await runCli(['cat', image, '/etc/os-release']);
    assert.equal(cat.code, 0, cat.stderr);
    assert.equal(cat.stdout, (await runCommand('unsquashfs', ['-cat', image, 'etc/os-release'])).stdout);
    const missing = await runCli(['cat', image, '/etc/nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /\/etc\/nope/);
  }
});

test('the summary line names the image as the user would type it: relative below the working folder, else absolute', async (t) => {
  const out = tempDir('mkp-summary-', t);
  const away = await runCli(['build', 'examples/demo', '--out', out]);
  assert.equal(away.code, 0, away.stderr);
  assert.match(away.stdout, new RegExp(`^${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/demo_1\\.0\\.raw  \\d+ bytes  sha256 [0-9a-f]{64}  \\d+ entries\\n`));
  const below = await runCli(['build', path.join(REPO, 'examples/demo'), '--out', path.join(out, 'sub')], { cwd: out });
  assert.equal(below.code, 0, below.stderr);
  assert.match(below.stdout, /^sub\/demo_1\.0\.raw  \d+ bytes/);
});
