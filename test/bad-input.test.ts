import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync, readdirSync, chmodSync, rmSync } from 'node:fs';
import path from 'node:path';
import { hasCommand, needs, runCli, runCommand, tempDir } from './support/env.js';

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

test('--help and --version', async () => {
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  for (const flag of ['--pname', '--unit', '--squash-compression', '--squash-block-size', '--symlink', '--contents', '--squashfs-tools', '--json', '--out']) {
    assert.ok(help.stdout.includes(flag), `--help lacks ${flag}`);
  }
  const v = await runCli(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
});
