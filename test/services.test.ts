// What a unit really runs and needs, beyond its Exec*= programs: the folders systemd mounts for it, programs named
// by env and sh -c, files placed at paths of the user's choosing, exclusions, and a rootfs's own units.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { portableService, type BuildResult } from '../src/index.js';
import { MkportableError } from '../src/errors.js';
import { openImage } from '../src/squashfs/read/index.js';
import { inspectPath } from '../src/inspect/index.js';
import { runCli, tempDir } from './support/env.js';

const unit = (name: string, service: string) => ({ name, text: `[Unit]\nDescription=${name}\n\n[Service]\n${service}\n` });

async function build(out: string, o: Record<string, unknown>): Promise<BuildResult> {
  return portableService({ pname: 'svc', version: '1', outDir: out, squashCompression: 'lz4', ...o } as never);
}

function writeUnit(dir: string): string {
  const p = path.join(dir, 'svc.service');
  writeFileSync(p, '[Service]\nExecStart=/usr/bin/sleep 1\n');
  return p;
}

function filesOf(r: BuildResult): Map<string, BuildResult['files'][number]> {
  return new Map(r.files.map((f) => [f.path, f]));
}

async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof MkportableError, `not a MkportableError: ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

test('StateDirectory=, CacheDirectory=, LogsDirectory= and ConfigurationDirectory= get empty root-owned mount points in the image', async (t) => {
  const out = tempDir(t);
  const r = await build(out, {
    units: [unit('svc.service', 'ExecStart=/usr/bin/sleep 1\nStateDirectory=svc svc-b/nested\nCacheDirectory=svc\nLogsDirectory=svc:svc-link\nConfigurationDirectory=svc\nStateDirectory=%n-ignored')],
  });
  const img = await openImage(r.image);
  t.after(() => img.close());
  for (const d of ['/var/lib/svc', '/var/lib/svc-b/nested', '/var/cache/svc', '/var/log/svc', '/etc/svc']) {
    const st = await img.stat(d);
    assert.equal(st.type, 'dir', d);
    assert.equal(st.uid, 0, d);
    assert.deepEqual(await img.readdir(d), [], `${d} is empty`);
  }
  await assert.rejects(img.stat('/var/log/svc-link'), 'the symlink half of NAME:LINK is systemd\'s to make');
});

test('inspect reports a StateDirectory= whose mount point the image lacks', async (t) => {
  const root = tempDir(t);
  const out = tempDir(t);
  // A tree made by hand (as another tool might): everything but /var/lib/app.
  const r = await build(out, { units: [unit('svc.service', 'ExecStart=/usr/bin/sleep 1\nStateDirectory=app')] });
  const clean = await inspectPath(r.image);
  assert.deepEqual(clean.problems.filter((p) => p.severity === 'error'), []);
  const cli = await runCli(['cat', r.image, '/etc/systemd/system/svc.service']);
  assert.equal(cli.code, 0, cli.stderr);
  // The same image's files, unpacked without the mount point, judged as a folder.
  const img = await openImage(r.image);
  t.after(() => img.close());
  const dir = path.join(root, 'svc_1');
  for (const f of r.files) {
    const dst = path.join(dir, f.path);
    if (f.path === '/var/lib/app') continue;
    if (f.type === 'dir') mkdirSync(dst, { recursive: true });
    else if (f.type === 'file') {
      writeFileSync(dst, await img.readFile(f.path));
      chmodSync(dst, parseInt(f.mode, 8));
    }
  }
  for (const f of r.files) if (f.type === 'symlink') (await import('node:fs')).symlinkSync(f.target!, path.join(dir, f.path));
  const report = await inspectPath(dir);
  const missing = report.problems.filter((p) => p.rule === 'unit-directory-missing');
  assert.equal(missing.length, 1, JSON.stringify(report.problems));
  assert.equal(missing[0].severity, 'error');
  assert.match(missing[0].message, /StateDirectory=app .*\/var\/lib\/app/);
});

test('programs in sh -c scripts and after env are put into the image with their closure', async (t) => {
  const out = tempDir(t);
  const r = await build(out, {
    units: [
      unit('svc.service', `ExecStart=/bin/sh -c 'echo "$(date) $(cat /etc/os-release | grep ID)"; $DYNAMIC x'\nExecStartPost=/usr/bin/env -i LANG=C sleep 1\nExecStop=/usr/bin/nohup /usr/bin/env -S "true --x"`),
    ],
  });
  const files = filesOf(r);
  for (const p of ['/usr/bin/date', '/usr/bin/cat', '/usr/bin/grep', '/usr/bin/sleep', '/usr/bin/env', '/usr/bin/nohup', '/usr/bin/true', realpathSync('/bin/sh')]) {
    assert.equal(files.get(p)?.type, 'file', `${p} in the image`);
  }
  // grep's own libraries came along (libpcre2 on Debian).
  const grepLibs = r.files.filter((f) => /reason/.test('reason') && f.reason === 'library of /usr/bin/grep');
  assert.ok(grepLibs.length >= 1, 'grep brought its libraries');
  assert.equal(files.get('/usr/bin/grep')!.reason, 'sh -c in ExecStart= of svc.service');
  const unresolved = r.warnings.filter((w) => w.code === 'COMMAND_UNRESOLVED');
  assert.equal(unresolved.length, 1);
  assert.match(unresolved[0].message, /'\$DYNAMIC'/);
  const report = await inspectPath(r.image);
  assert.deepEqual(report.problems.filter((p) => p.severity === 'error'), []);
  assert.ok(report.problems.some((p) => p.rule === 'command-unresolved'), 'inspect names the word too');
});

test('a program env names that does not exist fails the build in one line; a missing shell word is a warning', async (t) => {
  const out = tempDir(t);
  await rejectsWith(build(out, { units: [unit('svc.service', 'ExecStart=/usr/bin/env no-such-program-xyz')] }), 'EXEC_NOT_FOUND', /env runs 'no-such-program-xyz'/);
  const r = await build(out, { units: [unit('svc.service', "ExecStart=/bin/sh -c 'no-such-tool-xyz; sleep 1'")] });
  const w = r.warnings.filter((x) => x.code === 'COMMAND_NOT_FOUND');
  assert.equal(w.length, 1);
  assert.match(w[0].message, /no-such-tool-xyz/);
  const report = await inspectPath(r.image);
  assert.equal(report.problems.filter((p) => p.rule === 'command-missing').length, 1);
});

test('files places text, folders, links and host files at any path; executables bring their closure', async (t) => {
  const cfg = tempDir(t);
  const out = tempDir(t);
  writeFileSync(path.join(cfg, 'app.conf'), 'port = 8080\n');
  mkdirSync(path.join(cfg, 'site', 'css'), { recursive: true });
  writeFileSync(path.join(cfg, 'site', 'index.html'), '<h1>hi</h1>\n');
  writeFileSync(path.join(cfg, 'site', 'css', 'a.css'), 'h1{}\n');
  writeFileSync(path.join(cfg, 'run.sh'), '#!/usr/bin/bash\nexec sleep 1\n');
  chmodSync(path.join(cfg, 'run.sh'), 0o755);
  mkdirSync(path.join(cfg, 'bin'));
  copyFileSync('/usr/bin/xz', path.join(cfg, 'bin', 'packer'));
  chmodSync(path.join(cfg, 'bin', 'packer'), 0o755);
  const r = await build(out, {
    baseDir: cfg,
    units: [unit('svc.service', 'ExecStart=/opt/app/run.sh')],
    files: [
      { path: '/etc/app.conf', source: 'app.conf' },
      { path: '/srv/site', source: 'site' },
      { path: '/opt/app/run.sh', source: 'run.sh' },
      { path: '/opt/app/bin', source: 'bin' },
      { path: '/etc/motd', text: 'hello\n', mode: 0o600 },
      { path: '/var/lib/empty', type: 'dir', mode: 0o700 },
      { path: '/opt/app/current', symlink: 'run.sh' },
    ],
  });
  const img = await openImage(r.image);
  t.after(() => img.close());
  const text = async (p: string) => new TextDecoder().decode(await img.readFile(p));
  assert.equal(await text('/etc/app.conf'), 'port = 8080\n');
  assert.equal(await text('/srv/site/index.html'), '<h1>hi</h1>\n');
  assert.equal(await text('/srv/site/css/a.css'), 'h1{}\n');
  assert.equal(await text('/etc/motd'), 'hello\n');
  assert.equal((await img.stat('/etc/motd')).mode & 0o7777, 0o600);
  assert.equal((await img.stat('/opt/app/run.sh')).mode & 0o7777, 0o755);
  assert.equal((await img.stat('/var/lib/empty')).type, 'dir');
  assert.equal((await img.stat('/var/lib/empty')).mode & 0o7777, 0o700);
  assert.equal(await img.readlink('/opt/app/current'), 'run.sh');
  assert.equal((await img.readFile('/opt/app/bin/packer')).length, statSync('/usr/bin/xz').size);
  const files = filesOf(r);
  assert.equal(files.get(realpathSync('/usr/bin/bash'))?.type, 'file', "the script's interpreter");
  assert.ok(r.files.some((f) => /liblzma\.so/.test(f.path) && f.type === 'file'), 'the placed ELF program brought its library');
});

test('a files entry that collides with the skeleton or the closure is an error naming both', async (t) => {
  const out = tempDir(t);
  const u = [unit('svc.service', 'ExecStart=/usr/bin/sleep 1')];
  await rejectsWith(build(out, { units: u, files: [{ path: '/etc/os-release', text: 'ID=x\n' }] }), 'FILES_COLLISION', /\/etc\/os-release.*files entry \/etc\/os-release.*os-release/);
  const libc = realpathSync('/usr/lib/x86_64-linux-gnu/libc.so.6');
  await rejectsWith(build(out, { units: u, files: [{ path: libc, text: 'x' }] }), 'FILES_COLLISION', new RegExp(`${libc}: the files entry ${libc} is where library of /usr/bin/sleep needs host:${libc}`));
  const unitFile = path.join(out, 'svc.service');
  writeFileSync(unitFile, '[Service]\nExecStart=/usr/bin/sleep 1\n');
  const cli = await runCli(['build', '--pname', 'svc', '--version', '1', '--out', out, '--unit', unitFile, '--file', '/etc/x=/no/such/source']);
  assert.equal(cli.code, 1);
  assert.match(cli.stderr.trim(), /^mkportable: (error: )?files: source '\/no\/such\/source' of '\/etc\/x' does not exist$/);
});

test('exclude leaves files out with the libraries only they need, reports the bytes saved, and refuses what a unit needs', async (t) => {
  const host = tempDir(t);
  const out = tempDir(t);
  mkdirSync(path.join(host, 'lib', 'plugins'), { recursive: true });
  copyFileSync('/usr/bin/xz', path.join(host, 'lib', 'plugins', 'heavy.so'));
  copyFileSync('/usr/bin/true', path.join(host, 'lib', 'plugins', 'light.so'));
  const u = [unit('svc.service', 'ExecStart=/usr/bin/sleep 1')];
  const full = await build(out, { units: u, contents: [path.join(host, 'lib')] });
  const lzma = full.files.find((f) => /liblzma\.so\.5\.\d/.test(f.path) && f.type === 'file');
  assert.ok(lzma, 'heavy.so brings liblzma without exclude');
  const r = await build(out, { units: u, contents: [path.join(host, 'lib')], exclude: [`${host}/lib/plugins/heavy*`] });
  const files = filesOf(r);
  assert.equal(files.has(`${host}/lib/plugins/heavy.so`), false);
  assert.equal(files.get(`${host}/lib/plugins/light.so`)?.type, 'file');
  assert.equal(r.files.some((f) => /liblzma/.test(f.path)), false, 'liblzma was only needed by heavy.so');
  assert.deepEqual(r.excluded.map((e) => e.path), [`${host}/lib/plugins/heavy.so`]);
  assert.equal(r.excludedBytes, statSync('/usr/bin/xz').size + lzma.size!);
  assert.ok(r.size < full.size, `${r.size} < ${full.size}`);
  await rejectsWith(build(out, { units: u, exclude: ['/usr/lib/x86_64-linux-gnu/libc.so*'] }), 'EXCLUDED_NEEDED', /libc\.so\.6 is needed \(library of \/usr\/bin\/sleep\)/);
  await rejectsWith(build(out, { units: u, exclude: ['/usr/bin/sl*p'] }), 'EXCLUDED_NEEDED', /sleep is needed/);
});

test('with closure full, the rootfs\'s own units that match the prefix are left out with a warning, unless kept', async (t) => {
  const root = tempDir(t);
  const out = tempDir(t);
  // A small rootfs: dash and its libraries, os-release, and two units of "its packages".
  const copy = (p: string) => {
    const dst = path.join(root, p);
    mkdirSync(path.dirname(dst), { recursive: true });
    copyFileSync(realpathSync(p), dst);
    chmodSync(dst, statSync(p).mode & 0o7777);
  };
  for (const p of ['/usr/bin/dash', '/usr/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2', '/etc/os-release']) copy(p);
  writeFileSync(path.join(root, 'etc/ld.so.conf'), '/usr/lib/x86_64-linux-gnu\n');
  mkdirSync(path.join(root, 'usr/lib/systemd/system/multi-user.target.wants'), { recursive: true });
  writeFileSync(path.join(root, 'usr/lib/systemd/system/svc.service'), '[Service]\nExecReload=/bin/kill -HUP $MAINPID\nExecStart=/usr/sbin/svcd\n');
  writeFileSync(path.join(root, 'usr/lib/systemd/system/svc-extra.socket'), '[Socket]\nListenStream=1\n');
  (await import('node:fs')).symlinkSync('../svc.service', path.join(root, 'usr/lib/systemd/system/multi-user.target.wants/svc.service'));
  writeFileSync(path.join(root, 'usr/lib/systemd/system/other.service'), '[Service]\nExecStart=/x\n');
  const units = [unit('svc-main.service', 'ExecStart=/usr/bin/dash -c "exit 0"')];
  const r = await build(out, { from: `dir:${root}`, closure: 'full', units });
  const files = filesOf(r);
  assert.equal(files.has('/usr/lib/systemd/system/svc.service'), false);
  assert.equal(files.has('/usr/lib/systemd/system/svc-extra.socket'), false);
  assert.equal(files.has('/usr/lib/systemd/system/multi-user.target.wants/svc.service'), false);
  assert.equal(files.has('/usr/lib/systemd/system/other.service'), true, 'units of another prefix stay');
  const w = r.warnings.filter((x) => x.code === 'SOURCE_UNIT_LEFT_OUT');
  assert.equal(w.length, 1);
  assert.match(w[0].message, /svc-extra\.socket, svc\.service/);
  // Kept, the rootfs's svc.service is attached too and its missing programs fail the check.
  await rejectsWith(build(out, { from: `dir:${root}`, closure: 'full', units, keepSourceUnits: true }), 'CHECK_FAILED', /svc\.service/);
});

test('inspect judges units against the profile: W^X for JIT runtimes, removed address families and capabilities, templates', async (t) => {
  const out = tempDir(t);
  const r = await build(out, {
    units: [
      unit('svc.service', 'ExecStart=/opt/bin/node server.js\nRestrictAddressFamilies=AF_INET AF_PACKET\nAmbientCapabilities=CAP_NET_RAW CAP_NET_BIND_SERVICE'),
      unit('svc-nojit.service', 'ExecStart=/opt/bin/node --jitless server.js'),
      unit('svc@.service', 'ExecStart=/usr/bin/sleep 1'),
      { name: 'svc.socket', text: '[Socket]\nListenStream=/run/svc.sock\nAccept=yes\n' },
    ],
    // A program named node is a JIT runtime whatever its bytes.
    files: [{ path: '/opt/bin/node', source: '/usr/bin/true' }],
  });
  const rules = (problems: { rule: string; message: string }[], rule: string) => problems.filter((p) => p.rule === rule);
  const jit = rules(r.problems, 'jit-memory-deny-write-execute');
  assert.equal(jit.length, 1, JSON.stringify(r.problems));
  assert.match(jit[0].message, /^svc\.service: \/opt\/bin\/node is a JIT runtime .*--profile=trusted.*MemoryDenyWriteExecute=no.*--jitless/);
  assert.match(rules(r.problems, 'address-family-removed')[0].message, /svc\.service asks for AF_PACKET, which the default profile removes/);
  assert.match(rules(r.problems, 'capability-removed')[0].message, /svc\.service asks for CAP_NET_RAW, which the default profile's/);
  assert.match(rules(r.problems, 'unit-template')[0].message, /svc@\.service is a template: attach --now prints "Unit name svc@\.service is missing the instance name"/);
  const nonetwork = await inspectPath(r.image, { profile: 'nonetwork' });
  assert.match(rules(nonetwork.problems, 'address-family-removed')[0].message, /asks for AF_INET AF_PACKET, which the nonetwork profile removes/);
  assert.match(rules(nonetwork.problems, 'capability-removed')[0].message, /asks for CAP_NET_RAW CAP_NET_BIND_SERVICE/);
  const trusted = await inspectPath(r.image, { profile: 'trusted' });
  for (const rule of ['jit-memory-deny-write-execute', 'address-family-removed', 'capability-removed']) assert.deepEqual(rules(trusted.problems, rule), [], rule);
  const cli = await runCli(['inspect', r.image, '--profile', 'strict', '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.ok(rules(JSON.parse(cli.stdout).problems, 'capability-removed').some((p) => /CAP_NET_BIND_SERVICE/.test(p.message)));
  const bad = await runCli(['inspect', r.image, '--profile', 'lax']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--profile: 'lax' is not one of default, nonetwork, strict, trusted/);
});

test('dynamicUserLookup: false leaves nss-systemd, the systemd nsswitch entries and the userdb binding out', async (t) => {
  const out = tempDir(t);
  const u = [unit('svc.service', 'ExecStart=/usr/bin/sleep 1')];
  const on = await build(out, { units: u });
  const off = await build(tempDir(t), { units: u, dynamicUserLookup: false });
  const read = async (image: string, p: string) => {
    const img = await openImage(image);
    try {
      return new TextDecoder().decode(await img.readFile(p));
    } finally {
      await img.close();
    }
  };
  assert.match(await read(on.image, '/etc/systemd/system/svc.service'), /^BindReadOnlyPaths=-\/run\/systemd\/userdb$/m);
  assert.doesNotMatch(await read(off.image, '/etc/systemd/system/svc.service'), /userdb/);
  assert.match(await read(on.image, '/etc/nsswitch.conf'), /^passwd: files systemd$/m);
  assert.match(await read(off.image, '/etc/nsswitch.conf'), /^passwd: files$/m);
  assert.ok(on.files.some((f) => f.path.endsWith('/libnss_systemd.so.2')));
  assert.ok(!off.files.some((f) => f.path.endsWith('/libnss_systemd.so.2')));
});

test('packages: a Debian package of the build host puts exactly the files dpkg lists for it into the image', async (t) => {
  const out = tempDir(t);
  const listed = readFileSync('/var/lib/dpkg/info/hostname.list', 'utf8').split('\n').filter((p) => p.startsWith('/') && p !== '/.');
  const leaves = listed.filter((p) => !listed.some((q) => q.startsWith(`${p}/`)));
  // Reached through /bin → usr/bin on a merged-/usr host: the image holds them at their real folder.
  const real = new Set(leaves.map((p) => path.join(realpathSync(path.dirname(p)), path.basename(p))));
  const r = await build(out, { units: [unit('svc.service', 'ExecStart=/usr/bin/sleep 1')], packages: ['hostname'] });
  const fromPackage = r.files.filter((f) => f.reason === 'package hostname' && f.type !== 'dir').map((f) => f.path);
  const viaLink = lstatSync('/bin').isSymbolicLink() ? ['/bin'] : [];
  assert.deepEqual(new Set(fromPackage), new Set([...real, ...viaLink]));
  const img = await openImage(r.image);
  t.after(() => img.close());
  for (const p of real) {
    const st = await img.stat(p);
    const host = lstatSync(p);
    assert.equal(st.type, host.isSymbolicLink() ? 'symlink' : 'file', p);
    if (host.isFile()) assert.equal(st.size, host.size, p);
  }
  const cli = await runCli(['build', '--pname', 'svc', '--version', '1', '--unit', writeUnit(out), '--package', 'hostname', '--squash-compression', 'lz4', '--out', path.join(out, 'cli'), '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.ok((JSON.parse(cli.stdout) as BuildResult).files.some((f) => f.reason === 'package hostname' && f.path.endsWith('/bin/hostname')));
});

test('packages: an unknown package fails in one line naming it, and leaves no image', async (t) => {
  const out = tempDir(t);
  const u = [unit('svc.service', 'ExecStart=/usr/bin/sleep 1')];
  await rejectsWith(build(out, { units: u, packages: ['no-such-package-mkp'] }), 'PACKAGE_NOT_FOUND', /packages: 'no-such-package-mkp' is not installed in host/);
  await rejectsWith(build(out, { units: u, packages: ['../etc/passwd'] }), 'CONFIG_INVALID', /not a Debian package name/);
  assert.deepEqual(readdirSync(out), []);
});

test('packages from a rootfs: Multi-Arch names, folders only as parents, listed paths the rootfs lacks skipped', async (t) => {
  const root = tempDir(t);
  const out = tempDir(t);
  mkdirSync(path.join(root, 'var/lib/dpkg/info'), { recursive: true });
  mkdirSync(path.join(root, 'usr/share/tool/empty'), { recursive: true });
  writeFileSync(path.join(root, 'usr/share/tool/data.txt'), 'data\n');
  symlinkSync('data.txt', path.join(root, 'usr/share/tool/link'));
  writeFileSync(path.join(root, 'var/lib/dpkg/info/libtool-data:amd64.list'),
    ['/.', '/usr', '/usr/share', '/usr/share/tool', '/usr/share/tool/data.txt', '/usr/share/tool/link', '/usr/share/tool/diverted', '/usr/share/tool/empty', ''].join('\n'));
  writeFileSync(path.join(root, 'var/lib/dpkg/info/other.list'), '/usr/share/tool/not-wanted\n');
  writeFileSync(path.join(root, 'usr/share/tool/not-wanted'), 'x\n');
  // The rootfs has no programs: the unit runs a file placed by `files`, which needs nothing.
  const r = await build(out, {
    from: `dir:${root}`, closure: 'minimal', units: [unit('svc.service', 'ExecStart=/usr/bin/svc')],
    files: [{ path: '/usr/bin/svc', text: 'placeholder\n', mode: 0o755 }], packages: ['libtool-data'], check: false,
  });
  const fromPackage = r.files.filter((f) => f.reason === 'package libtool-data').map((f) => `${f.type}:${f.path}`).sort();
  assert.deepEqual(fromPackage, ['dir:/usr/share', 'dir:/usr/share/tool', 'dir:/usr/share/tool/empty', 'file:/usr/share/tool/data.txt', 'symlink:/usr/share/tool/link']);
  assert.equal(filesOf(r).has('/usr/share/tool/not-wanted'), false);
  assert.equal(filesOf(r).has('/var/lib/dpkg/info/other.list'), false, 'nothing of the database goes in');
});
