// Nix store closures against real Nix (Debian's nix-bin): derivations built with nix-build, closures compared with
// `nix-store --query --requisites`, and a portable image whose ExecStart= is a store program (interpreter and
// libraries in other store paths, set with patchelf) attached, started and detached on real systemd-portabled.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { portableService, type BuildResult } from '../src/build.js';
import { nixClosure, nixStoreRequisites, type ScanStats } from '../src/closure/nix.js';
import { directorySource, hostSource } from '../src/sources/host.js';
import { portabledPrerequisites, startPortabledContainer } from './support/portabled.js';
import { hasCommand, IN_CI, isRoot, needs, REPO, runCommand, tempDir as makeTempDir } from './support/env.js';

/** Temp dirs removed after the tests; store copies are read-only (0555 dirs), hence the chmod. */
const temps: string[] = [];
function tempDir(prefix?: string): string {
  const d = makeTempDir(prefix);
  temps.push(d);
  return d;
}
after(async () => {
  if (temps.length) await runCommand('sh', ['-c', 'chmod -R u+w -- "$@"; rm -rf -- "$@"', 'sh', ...temps]);
});

// No sandbox (builders use the host's /bin/sh and tools), builds as the calling user (Debian's nix-bin has no nixbld
// group), nothing fetched.
const NIX_CONFIG = ['sandbox = false', 'build-users-group =', 'substituters ='].join('\n');

function nixMissing(): string | undefined {
  const missing = ['nix-build', 'nix-store', 'patchelf', 'ldd'].filter((c) => !hasCommand(c));
  if (missing.length) return `${missing.join(', ')} not installed (apt-get install nix-bin patchelf)`;
  let writable = isRoot();
  try {
    accessSync('/nix/store', constants.W_OK);
    writable = true;
  } catch { /* no store yet: root creates it */ }
  return writable ? undefined : 'the Nix store is not writable by this user (run as root, or a single-user Nix)';
}

/** Where bash's interpreter and libraries live on this host (ldd of /usr/bin/bash). */
function bashNeeds(): Promise<{ interp: string; libc: string; libs: string[] }> {
  return runCommand('ldd', ['/usr/bin/bash']).then((r) => {
    assert.equal(r.code, 0, r.stderr);
    let interp = '';
    let libc = '';
    const libs: string[] = [];
    for (const line of r.stdout.split('\n')) {
      const m = /^\s*(\S+) => (\/\S+)/.exec(line);
      if (m) {
        if (m[1] === 'libc.so.6') libc = m[2];
        else libs.push(m[2]);
      } else if (/^\s*\/\S+ \(0x/.test(line)) interp = line.trim().split(' ')[0];
    }
    assert.ok(interp && libc, r.stdout);
    return { interp, libc, libs };
  });
}

// Builders run the host's /bin/sh (no sandbox); `${…}` of another derivation makes it an input, and Nix records a
// reference when the output holds its hash. Strings with host paths are plain strings (no context).
const EXPR = `
{ interp, libc, libs }:
let
  sh = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-ec" script ];
    PATH = "/usr/bin:/bin";
  };
in rec {
  # The host's dynamic loader and libc, as a store path of their own.
  glibc = sh "host-glibc" ''
    mkdir -p $out/lib
    cp -L \${interp} \${libc} $out/lib/
  '';
  # bash's other libraries (libtinfo), finding libc through their RUNPATH.
  deps = sh "host-bash-deps" ''
    mkdir -p $out/lib
    for l in \${libs}; do cp -L "$l" $out/lib/; chmod u+w $out/lib/*; patchelf --set-rpath \${glibc}/lib $out/lib/$(basename "$l"); done
  '';
  # bash with its interpreter and libraries in the two store paths above.
  bash = sh "host-bash" ''
    mkdir -p $out/bin
    cp -L /usr/bin/bash $out/bin/bash
    chmod u+w $out/bin/bash
    patchelf --set-interpreter \${glibc}/lib/$(basename \${interp}) --set-rpath \${glibc}/lib:\${deps}/lib $out/bin/bash
  '';
  # A store path that is a single file.
  greeting = builtins.toFile "greeting.txt" "hello from the nix store\n";
  # A script run by the store's bash, reading the greeting; a symlink to itself makes a self-reference.
  demo = sh "demo-program" ''
    mkdir -p $out/bin $out/share
    cat > $out/bin/demo <<'EOF'
    #!\${bash}/bin/bash
    read -r line < \${greeting}
    echo "demo: $line (bash $BASH_VERSION)"
    EOF
    chmod +x $out/bin/demo
    ln -s $out/bin/demo $out/share/self
  '';
  # A reference through a symlink target only.
  links = sh "demo-links" ''
    mkdir -p $out/bin
    ln -s \${demo}/bin/demo $out/bin/demo
  '';
  # The unit file, from the store too; ExecStartPre= runs a host binary from the same image.
  unit = sh "demo-unit" ''
    mkdir -p $out/lib/systemd/system
    cat > $out/lib/systemd/system/demo.service <<'EOF'
    [Unit]
    Description=demo from the Nix store
    [Service]
    Type=oneshot
    RemainAfterExit=yes
    ExecStartPre=/usr/bin/true
    ExecStart=\${links}/bin/demo
    EOF
  '';
}
`;

const ATTRS = ['glibc', 'deps', 'bash', 'demo', 'links', 'unit'] as const;
type Attr = (typeof ATTRS)[number];

const missing = nixMissing();
if (missing && !IN_CI) {
  test('Nix store closures with real Nix', { skip: `prerequisites missing: ${missing}` }, () => {});
} else {
  describe('Nix store closures with real Nix', { timeout: 5 * 60_000 }, () => {
    const env = { ...process.env, NIX_CONFIG, HOME: process.env.HOME ?? '/root' };
    const out = {} as Record<Attr, string>;
    let greeting = '';
    let built: BuildResult;

    before(async () => {
      if (missing) throw new Error(`prerequisite missing in CI: ${missing}`);
      const dir = tempDir('mkportable-nix-');
      writeFileSync(path.join(dir, 'default.nix'), EXPR);
      const host = await bashNeeds();
      const t0 = Date.now();
      const r = await runCommand('nix-build', [
        path.join(dir, 'default.nix'), '--no-out-link', '--option', 'sandbox', 'false',
        '--argstr', 'interp', host.interp, '--argstr', 'libc', host.libc, '--argstr', 'libs', host.libs.join(' '),
        ...ATTRS.flatMap((a) => ['-A', a]),
      ], { env });
      assert.equal(r.code, 0, `nix-build failed:\n${r.stderr}`);
      const paths = r.stdout.split('\n').filter(Boolean);
      const names: Record<Attr, string> = { glibc: 'host-glibc', deps: 'host-bash-deps', bash: 'host-bash', demo: 'demo-program', links: 'demo-links', unit: 'demo-unit' };
      for (const a of ATTRS) {
        const p = paths.find((x) => x.endsWith(`-${names[a]}`));
        assert.ok(p, `no output for ${a} in:\n${r.stdout}`);
        out[a] = p;
      }
      const q = await nixStoreRequisites([out.demo], env);
      greeting = q!.find((p) => p.endsWith('-greeting.txt'))!;
      assert.ok(greeting, 'the greeting file is in the closure of demo');
      console.log(`# nix-build of ${ATTRS.length} derivations: ${Date.now() - t0} ms`);
    });

    test('mkportable\'s closure of each store path equals nix-store --query --requisites', async () => {
      const stats: ScanStats = { bytesScanned: 0 };
      for (const p of [...Object.values(out), greeting]) {
        const ours = await nixClosure(hostSource(), [p], stats);
        const theirs = await nixStoreRequisites([p], env);
        assert.deepEqual(ours, theirs, p);
      }
      // The shapes the derivations were written to have.
      const q = (p: string) => nixClosure(hostSource(), [p], { bytesScanned: 0 });
      assert.deepEqual(await q(out.glibc), [out.glibc]);
      assert.deepEqual(await q(out.bash), [out.bash, out.deps, out.glibc].sort());
      assert.deepEqual(await q(out.links), [out.links, out.demo, out.bash, out.deps, out.glibc, greeting].sort());
      // Several roots at once, as nix-store takes them.
      assert.deepEqual(await nixClosure(hostSource(), [out.deps, `${out.links}/bin/demo`], stats), await nixStoreRequisites([out.deps, out.links], env));
      // Without nix-store on PATH there is nothing to ask; the scan needs no Nix at all.
      assert.equal(await nixStoreRequisites([out.unit], { ...env, PATH: '/nonexistent' }), undefined);
    });

    test('a copy of the store without Nix\'s database gives the same closures', async () => {
      const root = tempDir('mkportable-nixcopy-');
      mkdirSync(path.join(root, 'nix/store'), { recursive: true });
      const all = (await nixStoreRequisites([out.unit], env))!;
      for (const p of all) cpSync(p, path.join(root, p), { recursive: true, verbatimSymlinks: true });
      const src = directorySource(root);
      for (const p of all) assert.deepEqual(await nixClosure(src, [p], { bytesScanned: 0 }), await nixStoreRequisites([p], env), p);
      // A store copied in part: the reference to the missing path is named with its referrer.
      const partial = tempDir('mkportable-nixpart-');
      mkdirSync(path.join(partial, 'nix/store'), { recursive: true });
      for (const p of all.filter((x) => x !== out.bash)) cpSync(p, path.join(partial, p), { recursive: true, verbatimSymlinks: true });
      await assert.rejects(nixClosure(directorySource(partial), [out.demo], { bytesScanned: 0 }),
        new RegExp(`${out.demo}/bin/demo refers to ${out.bash}, which is not in /nix/store`));
    });

    test('an image whose unit and program come from the store; the same bytes with and without Nix on PATH', async () => {
      const unitFile = `${out.unit}/lib/systemd/system/demo.service`;
      const dir1 = tempDir();
      const t0 = Date.now();
      built = await portableService({ pname: 'demo', version: '1.0', units: [unitFile], outDir: dir1 });
      console.log(`# build: ${Date.now() - t0} ms, ${built.bytesScanned} bytes scanned, ${built.nixStorePaths.length} store paths`);
      assert.deepEqual(built.nixStorePaths, await nixStoreRequisites([out.links], env));
      assert.ok(built.bytesScanned >= readFileSync(`${out.bash}/bin/bash`).length);
      const file = (p: string) => built.files.find((f) => f.path === p);
      assert.equal(file('/etc/systemd/system/demo.service')?.origin, unitFile);
      assert.equal(file(`${out.links}/bin/demo`)?.type, 'symlink');
      assert.equal(file(`${out.demo}/bin/demo`)?.mode, '0555');
      assert.equal(file(`${out.demo}/share/self`)?.target, `${out.demo}/bin/demo`);
      assert.equal(file(greeting)?.mode, '0444');
      assert.ok(file(`${out.glibc}/lib/libc.so.6`));
      assert.ok(file('/usr/bin/true') ?? file('/bin/true'), 'the host binary of ExecStartPre= shares the image');
      assert.ok(!built.files.some((f) => /\/bash$/.test(f.path) && !f.path.startsWith('/nix/store/')), 'the only bash is the store\'s');

      // The CLI, from the sources, with a PATH that holds no Nix (nor anything else): the same image.
      const dir2 = tempDir();
      const cli = await runCommand(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'build', '--pname', 'demo', '--version', '1.0',
        '--unit', unitFile, '--out', dir2, '--json'], { cwd: REPO, env: { PATH: '/nonexistent', HOME: env.HOME } });
      assert.equal(cli.code, 0, cli.stderr);
      const viaCli = JSON.parse(cli.stdout) as BuildResult;
      assert.equal(viaCli.sha256, built.sha256);
      assert.deepEqual(viaCli.nixStorePaths, built.nixStorePaths);
      assert.equal(viaCli.bytesScanned, built.bytesScanned);
    });

    test('systemd-portabled attaches, starts and detaches the store program', { timeout: 3 * 60_000 }, async (t) => {
      const pre = portabledPrerequisites();
      if (!needs(t, pre.ok, pre.reason ?? '')) return;
      assert.ok(built, 'the image test ran first');
      const t0 = Date.now();
      const c = await startPortabledContainer();
      console.log(`# container up in ${Date.now() - t0} ms`);
      try {
        await c.copyIn(built.image, '/var/lib/portables/demo_1.0.raw');
        const attach = await c.exec(['portablectl', 'attach', '--now', '--runtime', 'demo_1.0'], { allowFail: true });
        assert.equal(attach.code, 0, `attach failed:\n${attach.stdout}${attach.stderr}\n${c.logTail()}`);
        const active = await c.exec(['systemctl', 'is-active', 'demo.service'], { allowFail: true });
        const log = await c.exec(['journalctl', '-u', 'demo.service', '-o', 'cat', '--no-pager'], { allowFail: true });
        assert.equal(active.stdout.trim(), 'active', log.stdout);
        assert.match(log.stdout, /demo: hello from the nix store \(bash \d+\.\d+/);
        console.log(`# demo.service said: ${log.stdout.split('\n').find((l) => l.startsWith('demo:'))}`);
        const detach = await c.exec(['portablectl', 'detach', '--now', '--runtime', 'demo_1.0'], { allowFail: true });
        assert.equal(detach.code, 0, `detach failed:\n${detach.stdout}${detach.stderr}`);
        const status = await c.exec(['systemctl', 'status', 'demo.service'], { allowFail: true });
        assert.notEqual(status.code, 0, 'demo.service is gone after detach');
      } finally {
        await c.stop();
      }
    });
  });
}
