import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync, mkdirSync, mkdtempSync, readdirSync, chmodSync, rmSync, cpSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { hasCommand, isRoot, needs, REPO, runCli, runCommand, tempDir, type Run } from './support/env.js';

/** Each bad input: exit 1, one line on stderr that names the culprit, and nothing in the output folder. */
async function refused(t: TestContext, config: object | string, expect: RegExp, files: Record<string, string> = {}) {
  const dir = tempDir(t);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  const cfgName = typeof config === 'string' ? 'portable.config.ts' : 'portable.config.json';
  writeFileSync(path.join(dir, cfgName), typeof config === 'string' ? config : JSON.stringify(config));
  const out = path.join(dir, 'out');
  const r = await runCli(['build', dir, '--out', out]);
  assert.equal(r.code, 1, `${t.name}: expected exit 1, got ${r.code}\n${r.stdout}${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0], expect);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  let left: string[] = [];
  try {
    left = readdirSync(out);
  } catch {
    /* never created */
  }
  assert.deepEqual(left, []);
}

const svc = '[Service]\nExecStart=/usr/bin/true\n';

test('missing unit file', async (t) => {
  await refused(t, { pname: 'demo', version: '1', units: ['demo.service'] }, /demo\.service: cannot read unit file: no such file/);
});

test('unreadable unit file (a folder)', async (t) => {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'demo.service'));
  await refused(t, { pname: 'demo', version: '1', units: [path.join(dir, 'demo.service')] }, /demo\.service: cannot read unit file: is a directory/);
});

test('empty unit file', async (t) => {
  await refused(t, { pname: 'demo', version: '1', units: ['demo.service'] }, /demo\.service.*empty/, { 'demo.service': '\n' });
});

test('unit whose name does not start with the prefix', async (t) => {
  await refused(t, { pname: 'demo', version: '1', units: ['demonstration.service'] }, /demonstration\.service.*demo/, { 'demonstration.service': svc });
});

test('unit of a type portabled does not attach', async (t) => {
  await refused(t, { pname: 'demo', version: '1', units: ['demo.mount'] }, /demo\.mount/, { 'demo.mount': '[Mount]\nWhat=/x\nWhere=/y\n' });
});

test('pname with an underscore', async (t) => {
  await refused(t, { pname: 'my_app', version: '1', units: ['my_app.service'] }, /my_app.*_/, { 'my_app.service': svc });
});

test('version that is not safe in a file name', async (t) => {
  await refused(t, { pname: 'demo', version: '1/2', units: ['demo.service'] }, /1\/2/, { 'demo.service': svc });
});

test('Exec program that does not exist', async (t) => {
  await refused(t, { pname: 'demo', version: '1', units: ['demo.service'] }, /demo\.service: ExecStartPre=.*\/usr\/bin\/no-such-program/,
    { 'demo.service': '[Service]\nExecStartPre=-/usr/bin/no-such-program\nExecStart=/usr/bin/true\n' });
});

test('bare Exec name not in systemd\'s search path', async (t) => {
  await refused(t, { pname: 'demo', version: '1', units: ['demo.service'] }, /no-such-program.*not in \/usr\/local\/sbin/,
    { 'demo.service': '[Service]\nExecStart=no-such-program --flag\n' });
});

test('a library the unit\'s program needs and no search path provides', async (t) => {
  if (!needs(t, hasCommand('gcc'), 'gcc not installed')) return;
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'lib.c'), 'int answer(void) { return 42; }\n');
  writeFileSync(path.join(dir, 'main.c'), 'int answer(void); int main(void) { return answer() - 42; }\n');
  let r = await runCommand('gcc', ['-shared', '-fPIC', '-o', path.join(dir, 'libanswer.so'), path.join(dir, 'lib.c')]);
  assert.equal(r.code, 0, r.stderr);
  r = await runCommand('gcc', ['-o', path.join(dir, 'prog'), path.join(dir, 'main.c'), `-L${dir}`, '-lanswer']);
  assert.equal(r.code, 0, r.stderr);
  rmSync(path.join(dir, 'libanswer.so'));
  await refused(t, { pname: 'demo', version: '1', units: ['demo.service'] }, new RegExp(`${dir}/prog needs library libanswer\\.so`),
    { 'demo.service': `[Service]\nExecStart=${dir}/prog\n` });
});

test('a script interpreter that does not exist', async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'run.sh'), '#!/usr/bin/no-such-shell\necho hi\n');
  chmodSync(path.join(dir, 'run.sh'), 0o755);
  await refused(t, { pname: 'demo', version: '1', units: ['demo.service'] }, /run\.sh needs its interpreter \/usr\/bin\/no-such-shell/,
    { 'demo.service': `[Service]\nExecStart=${dir}/run.sh\n` });
});

test('#!/usr/bin/env NAME resolved in the service PATH, not the builder\'s', async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'run'), '#!/usr/bin/env mkportable-test-interp\n');
  chmodSync(path.join(dir, 'run'), 0o755);
  // The interpreter exists only in a folder that is neither in the service's PATH nor systemd's default.
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'mkportable-test-interp'), '#!/bin/sh\n');
  chmodSync(path.join(bin, 'mkportable-test-interp'), 0o755);
  await refused(t, { pname: 'demo', version: '1', units: ['demo.service'] }, /run needs 'mkportable-test-interp'.*PATH=\/usr\/local\/sbin/,
    { 'demo.service': `[Service]\nExecStart=${dir}/run\n` });
  // With Environment=PATH naming that folder, the same script builds.
  const ok = tempDir(t);
  writeFileSync(path.join(ok, 'demo.service'), `[Service]\nEnvironment=PATH=${bin}:/usr/bin\nExecStart=${dir}/run\n`);
  const r = await runCli(['build', '--pname', 'demo', '--version', '1', '--unit', path.join(ok, 'demo.service'), '--out', path.join(ok, 'out'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const paths = (JSON.parse(r.stdout) as { files: { path: string }[] }).files.map((f) => f.path);
  assert.ok(paths.includes(`${bin}/mkportable-test-interp`));
});

test('a symlink that collides with the skeleton', async (t) => {
  await refused(t, { pname: 'demo', version: '1', units: ['demo.service'], symlinks: [{ symlink: '/etc/os-release', object: '/usr/bin/true' }] },
    /symlinks: '\/etc\/os-release' collides/, { 'demo.service': svc });
});

test('mksquashfs missing', async (t) => {
  await refused(t, { pname: 'demo', version: '1', units: ['demo.service'], squashfsTools: '/nonexistent/squashfs-tools' },
    /mksquashfs not found in squashfsTools '\/nonexistent\/squashfs-tools'/, { 'demo.service': svc });
});

test('config with an unknown key', async (t) => {
  await refused(t, { pname: 'demo', version: '1', units: ['demo.service'], unitz: [] }, /portable\.config\.json: unknown option 'unitz'/, { 'demo.service': svc });
});

test('config with a wrong type', async (t) => {
  await refused(t, { pname: 'demo', version: 1, units: ['demo.service'] }, /portable\.config\.json: 'version' must be a string, got 1/, { 'demo.service': svc });
});

test('TypeScript config with a wrong type', async (t) => {
  await refused(t, "export default { pname: 'demo', version: '1', units: 'demo.service' };\n", /portable\.config\.ts: 'units' must be/, { 'demo.service': svc });
});

test('usage errors exit 2', async () => {
  const r = await runCli(['build', '--no-such-flag']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no-such-flag/);
  assert.equal((await runCli(['frobnicate'])).code, 2);
});

test('--help lists the commands, build --help the build options, --version the tool version', async () => {
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  for (const cmd of ['build', 'inspect', 'ls', 'cat', 'pack']) assert.match(help.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), `--help lacks ${cmd}`);
  const build = await runCli(['build', '--help']);
  assert.equal(build.code, 0);
  for (const flag of ['--pname', '--unit', '--squash-compression', '--squash-block-size', '--symlink', '--contents', '--squashfs-tools', '--json', '--out']) {
    assert.ok(build.stdout.includes(flag), `build --help lacks ${flag}`);
  }
  const v = await runCli(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
});

// ---- Every failure is one line (issue 10) ----

/** Exit `code`, exactly one line on stderr matching `expect`, and no stack frame anywhere. */
function oneLine(r: Run, code: number, expect: RegExp): void {
  const all = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  assert.equal(r.code, code, all);
  assert.doesNotMatch(r.stderr + r.stdout, /^\s+at /m, `a stack trace reached the user:\n${all}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one stderr line expected:\n${all}`);
  assert.match(lines[0], expect);
}

/** A temp folder removed when the test ends. */
function scratch(t: TestContext): string {
  return tempDir(t);
}

/** A tmpfs mounted for the test (root only), unmounted and removed when it ends. */
async function tmpfs(t: TestContext, options: string): Promise<string> {
  const mnt = tempDir();
  const m = await runCommand('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', mnt]);
  assert.equal(m.code, 0, m.stderr);
  t.after(async () => {
    await runCommand('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });
  return mnt;
}

function unitIn(dir: string): string {
  const unit = path.join(dir, 'demo.service');
  writeFileSync(unit, svc);
  return unit;
}

const buildArgs = (unit: string, out: string, ...more: string[]) => ['build', '--pname', 'demo', '--version', '1', '--unit', unit, '--out', out, ...more];

const leftIn = (dir: string): string[] => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};

test('a 300-character version is a one-line name error, not ENAMETOOLONG', async (t) => {
  const dir = scratch(t);
  const out = path.join(dir, 'out');
  const r = await runCli(['build', '--pname', 'demo', '--version', 'v'.repeat(300), '--unit', unitIn(dir), '--out', out]);
  oneLine(r, 1, /image file name 'demo_v+…v+\.raw' \(309 bytes\) is longer than 255 bytes.*shorten pname or version/);
  assert.doesNotMatch(r.stderr, /ENAMETOOLONG/);
  assert.deepEqual(leftIn(out), []);
});

test('an output folder with a file in the way fails at once, in one line', async (t) => {
  const dir = scratch(t);
  writeFileSync(path.join(dir, 'hosts'), 'x');
  const r = await runCli(buildArgs(unitIn(dir), path.join(dir, 'hosts', 'x')));
  oneLine(r, 1, new RegExp(`output folder ${dir}/hosts/x: ${dir}/hosts is a file, not a folder`));
});

test('an output folder under /sys or /proc fails at once (mkdir -p under /proc used to spin forever)', { timeout: 60_000 }, async (t) => {
  const dir = scratch(t);
  const unit = unitIn(dir);
  for (const out of ['/proc/nope', '/proc/nope/deeper', '/sys/nope']) {
    const started = Date.now();
    const r = await runCli(buildArgs(unit, out), { timeout: 20_000 });
    assert.notEqual(r.code, -1, `${out}: still running after 20 s`);
    oneLine(r, 1, new RegExp(`^mkportable: error: output folder ${out}: cannot create /(proc|sys)/nope: `));
    assert.ok(Date.now() - started < 20_000);
  }
});

test('a read-only output folder fails at once, before any work', async (t) => {
  if (!needs(t, isRoot(), 'mounting a read-only tmpfs needs root')) return;
  const dir = scratch(t);
  const mnt = await tmpfs(t, 'ro,size=1m');
  // The unit runs a program that does not exist: had the build started, that would be the error.
  const unit = path.join(dir, 'demo.service');
  writeFileSync(unit, '[Service]\nExecStart=/no/such/program\n');
  for (const out of [mnt, path.join(mnt, 'sub')]) {
    const r = await runCli(buildArgs(unit, out));
    oneLine(r, 1, /output folder .*: (cannot write there|cannot create .*): read-only file system \(EROFS\)/);
  }
});

/** Run as nobody when root (root passes every permission check); as oneself otherwise. */
const asNobody = () => (isRoot() ? { uid: 65534, gid: 65534 } : {});

/**
 * A folder nobody can reach: the suite's TMPDIR is private to its owner, so this one is made in /tmp (sticky and
 * open to all on Linux); removed when the test ends.
 */
function publicScratch(t: TestContext): string {
  const dir = mkdtempSync('/tmp/mkportable-test-');
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('an output folder without write permission fails at once', async (t) => {
  const dir = publicScratch(t);
  const locked = path.join(dir, 'locked');
  mkdirSync(locked, { mode: 0o555 });
  chmodSync(locked, 0o555);
  const unit = unitIn(dir);
  chmodSync(unit, 0o644);
  for (const out of [locked, path.join(locked, 'sub')]) {
    const r = await runCli(buildArgs(unit, out), asNobody());
    oneLine(r, 1, /output folder .*locked.*: permission denied \(EACCES\)/);
  }
});

test('a source file without read permission is one line naming it', async (t) => {
  const dir = publicScratch(t);
  const secret = path.join(dir, 'secret');
  writeFileSync(secret, 'x');
  chmodSync(secret, 0o000);
  const unit = unitIn(dir);
  chmodSync(unit, 0o644);
  const out = path.join(dir, 'out');
  mkdirSync(out, { mode: 0o777 });
  chmodSync(out, 0o777);
  const r = await runCli(buildArgs(unit, out, '--contents', secret), asNobody());
  oneLine(r, 1, new RegExp(`${secret}.*permission denied \\(EACCES\\)`));
  assert.deepEqual(leftIn(out), []);
});

test('a full disk on the output folder is one line, and the partial image is removed', async (t) => {
  if (!needs(t, isRoot(), 'mounting a small tmpfs needs root')) return;
  const dir = scratch(t);
  const mnt = await tmpfs(t, 'size=256k');
  const noise = path.join(dir, 'noise');
  writeFileSync(noise, randomBytes(2 << 20)); // incompressible, far more than the tmpfs holds
  const r = await runCli(buildArgs(unitIn(dir), mnt, '--contents', noise, '--squash-compression', 'gzip'));
  oneLine(r, 1, /no space left on device \(ENOSPC\)/);
  assert.deepEqual(leftIn(mnt), []);
});

test('a file that vanishes while the build reads it is a SOURCE_READ error naming it', async (t) => {
  const dir = scratch(t);
  const data = path.join(dir, 'data');
  mkdirSync(data);
  const doomed = path.join(data, 'doomed');
  writeFileSync(doomed, 'soon gone');
  const out = path.join(dir, 'out');
  const { portableService } = await import('../src/build.js');
  const { MkportableError } = await import('../src/errors.js');
  // The progress hook runs as each step starts: the file was planned, and goes before the writer reads it.
  const progress = (step: string) => {
    if (step.startsWith('writing')) rmSync(doomed);
  };
  await assert.rejects(portableService({ pname: 'demo', version: '1', units: [unitIn(dir)], contents: [data], outDir: out }, { progress }), (e: unknown) => {
    assert.ok(e instanceof MkportableError, String(e));
    assert.equal(e.code, 'SOURCE_READ');
    assert.equal(e.message.split('\n').length, 1);
    assert.match(e.message, new RegExp(`${doomed}: cannot (read|look up): no such file or directory \\(ENOENT\\)`));
    return true;
  });
  assert.deepEqual(leftIn(out), []);
});

test('cat, ls, inspect and build --json end quietly when the reader closes stdout (EPIPE)', async (t) => {
  const dir = scratch(t);
  const out = path.join(dir, 'out');
  const data = path.join(dir, 'data');
  mkdirSync(data);
  for (let i = 0; i < 50; i++) writeFileSync(path.join(data, `file-${i}`), randomBytes(4096));
  const built = await runCli(buildArgs(unitIn(dir), out, '--contents', data, '--squash-compression', 'gzip'));
  assert.equal(built.code, 0, built.stderr);
  const image = path.join(out, 'demo_1.raw');
  const again = buildArgs(unitIn(dir), out, '--json', '--squash-compression', 'gzip');
  for (const args of [['cat', image, `${data}/file-1`], ['ls', image], ['inspect', image], ['inspect', '--json', image], again]) {
    const r = await runCli(args, { closeStdout: true });
    assert.equal(r.code, 141, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.replace(/^warning: .*\n/gm, ''), '', `${args.join(' ')} printed on stderr`);
  }
});

test('a missing native addon is one line saying what is missing and how to fix it', async (t) => {
  // A copy of the installed package whose xz binding was never built, as after an install without liblzma-dev.
  const root = scratch(t);
  cpSync(path.join(REPO, 'dist'), path.join(root, 'dist'), { recursive: true });
  cpSync(path.join(REPO, 'bin'), path.join(root, 'bin'), { recursive: true });
  cpSync(path.join(REPO, 'package.json'), path.join(root, 'package.json'));
  mkdirSync(path.join(root, 'node_modules'));
  for (const name of readdirSync(path.join(REPO, 'node_modules'))) {
    if (name !== '.bin') symlinkSync(path.join(REPO, 'node_modules', name), path.join(root, 'node_modules', name));
  }
  // The addon's loader is there, what node-gyp builds at install (build/Release) is not.
  mkdirSync(path.join(root, 'src/native'), { recursive: true });
  cpSync(path.join(REPO, 'src/native/index.cjs'), path.join(root, 'src/native/index.cjs'));
  const dir = scratch(t);
  const out = path.join(dir, 'out');
  const r = await runCommand(process.execPath, [path.join(root, 'bin/mkportable.js'), ...buildArgs(unitIn(dir), out)]);
  oneLine(r, 1, /xz compression needs mkportable's native addon \(liblzma binding\), which is not built or not installed \(Cannot find module '\S*\/build\/Release\/mkportable_native\.node'\): install liblzma-dev .*npm rebuild mkportable`/);
  assert.deepEqual(leftIn(out), []);
  // The same addon reads the sources' extended attributes, so a gzip build stops too, in one line, rather than
  // writing an image without them.
  const gz = await runCommand(process.execPath, [path.join(root, 'bin/mkportable.js'), ...buildArgs(unitIn(dir), out, '--squash-compression', 'gzip')]);
  oneLine(gz, 1, /reading extended attributes needs mkportable's native addon, which is not built or not installed .*npm rebuild mkportable`/);
  assert.deepEqual(leftIn(out), []);
});

// ---- A CLI that helps (issues 10 and 15) ----

test('every subcommand has its own --help', async () => {
  for (const cmd of ['build', 'inspect', 'ls', 'cat', 'pack']) {
    for (const args of [[cmd, '--help'], [cmd, '-h'], ['help', cmd]]) {
      const r = await runCli(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, new RegExp(`^Usage: mkportable ${cmd} `), args.join(' '));
      assert.match(r.stdout, /^  -h, --help +this help$/m);
      assert.doesNotMatch(r.stdout, /Unknown option/);
    }
  }
});

test('an unknown flag gets a did-you-mean', async () => {
  oneLine(await runCli(['build', '--contnets', '/usr']), 2, /^mkportable: build: unknown option --contnets \(did you mean --contents\?\); see mkportable build --help$/);
  oneLine(await runCli(['inspect', '--prefx', 'a', 'x.raw']), 2, /unknown option --prefx \(did you mean --prefix\?\)/);
  oneLine(await runCli(['pack', '--all-roots', 'a', 'b']), 2, /unknown option --all-roots \(did you mean --all-root\?\)/);
  oneLine(await runCli(['biuld']), 2, /unknown command 'biuld' \(did you mean build\?\)/);
});

test('a missing required option is named, not "no portable.config.ts"', async (t) => {
  const dir = scratch(t);
  const r = await runCli(['build', '--pname', 'web', '--unit', unitIn(dir)], { cwd: dir });
  oneLine(r, 2, /^mkportable: build: missing --version \(no portable\.config\.\* in this folder to take it from\)$/);
  oneLine(await runCli(['build', '--pname', 'web'], { cwd: dir }), 2, /missing --version, --unit \(or --unit-from-config\)/);
  // A config in the folder that lacks it too.
  writeFileSync(path.join(dir, 'portable.config.json'), JSON.stringify({ pname: 'demo', units: ['demo.service'] }));
  oneLine(await runCli(['build'], { cwd: dir }), 2, /missing --version \(neither the flags nor portable\.config\.json set it\)/);
});

test('--version after build is the image version; --image-version says the same', async (t) => {
  const dir = scratch(t);
  const out = path.join(dir, 'out');
  const r = await runCli(['build', '--pname', 'demo', '--image-version', '2.5', '--unit', unitIn(dir), '--out', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { name: string }).name, 'demo_2.5');
  assert.deepEqual(readdirSync(out), ['demo_2.5.raw']);
  const help = await runCli(['build', '--help']);
  assert.match(help.stdout, /--version, --image-version VERSION +image version/);
  assert.match(help.stdout, /mkportable --version prints\s+mkportable's own/);
});

test('--json prints a JSON error object on stdout when the build fails', async (t) => {
  const dir = scratch(t);
  const missingUnit = path.join(dir, 'demo.service');
  const r = await runCli(['build', '--pname', 'demo', '--version', '1', '--unit', missingUnit, '--out', path.join(dir, 'out'), '--json']);
  oneLine(r, 1, /demo\.service: cannot read unit file/);
  const { error } = JSON.parse(r.stdout) as { error: { code: string; message: string; path: string | null } };
  assert.equal(error.code, 'UNIT_UNREADABLE');
  assert.match(error.message, /demo\.service: cannot read unit file/);
  assert.equal(error.path, missingUnit);
  // Usage errors and unreadable images too.
  const usage = await runCli(['build', '--json', '--pname']);
  assert.equal(usage.code, 2);
  assert.equal((JSON.parse(usage.stdout) as { error: { code: string } }).error.code, 'USAGE');
  const inspect = await runCli(['inspect', '--json', path.join(dir, 'nope.raw')]);
  assert.equal(inspect.code, 2);
  assert.deepEqual(JSON.parse(inspect.stdout), { error: { code: 'PATH_NOT_FOUND', message: `${path.join(dir, 'nope.raw')}: no such file or directory`, path: path.join(dir, 'nope.raw') } });
});

test('config validation reports every problem of the file at once, on one line', async (t) => {
  const dir = scratch(t);
  writeFileSync(path.join(dir, 'portable.config.json'), JSON.stringify({ pname: 'demo', version: 1, unitz: ['demo.service'], squashCompresion: 'gzip', check: 'no' }));
  const r = await runCli(['build', dir, '--out', path.join(dir, 'out'), '--json']);
  oneLine(r, 1, /portable\.config\.json: 4 problems: 'version' must be a string, got 1; unknown option 'unitz' \(did you mean 'units'\?\); unknown option 'squashCompresion' \(did you mean 'squashCompression'\?\); 'check' must be true or false, got "no"$/);
  const { error } = JSON.parse(r.stdout) as { error: { code: string; problems: string[] } };
  assert.equal(error.code, 'CONFIG_INVALID');
  assert.equal(error.problems.length, 4);
});
