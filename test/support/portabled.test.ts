// Smoke test for the portabled container harness: boots Debian 12 and 13 under systemd-nspawn and attaches
// a hand-made portable image with the real systemd-portabled.
//
// Needs root, systemd-nspawn, nsenter, /dev/loop-control, mksquashfs, and debootstrap (first run
// only). Without root it is skipped unless CI is set; in CI a missing prerequisite is a failure.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { IN_CI as inCI } from './env.js';
import { portabledPrerequisites, startPortabledContainer, SYSTEMD_VERSIONS, type PortabledContainer, type SystemdVersion } from './portabled.js';

function prerequisites(systemd: SystemdVersion): { ok: boolean; reason?: string } {
  const pre = portabledPrerequisites({ systemd });
  const missing = pre.ok ? [] : [pre.reason ?? 'unknown'];
  if (spawnSync('mksquashfs', ['-version'], { stdio: 'ignore' }).error) missing.push('mksquashfs not found (squashfs-tools)');
  if (spawnSync('ldd', ['--version'], { stdio: 'ignore' }).error) missing.push('ldd not found');
  return missing.length ? { ok: false, reason: missing.join('; ') } : { ok: true };
}

/** Maps a host path to its place in a merged-/usr image: /lib/x -> /usr/lib/x etc. */
function usrMerged(p: string): string {
  return /^\/(bin|sbin|lib|lib32|lib64|libx32)\//.test(p) ? `/usr${p}` : p;
}

/** Copies a host binary and the libraries ldd reports into the image tree (as real files). */
function copyBinaryWithLibs(tree: string, binary: string): void {
  const ldd = spawnSync('ldd', [binary], { encoding: 'utf8' });
  assert.equal(ldd.status, 0, `ldd ${binary}: ${ldd.stderr}`);
  const files = new Set<string>([binary]);
  for (const line of ldd.stdout.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m?.[1]) files.add(m[1]);
  }
  for (const f of files) {
    const dest = join(tree, usrMerged(f));
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(realpathSync(f), dest);
    chmodSync(dest, 0o755);
  }
}

function buildHelloImage(workDir: string): string {
  const tree = join(workDir, 'tree');
  for (const d of ['etc/systemd/system', 'usr/bin', 'usr/lib', 'usr/lib64', 'proc', 'sys', 'dev', 'run', 'tmp', 'var/tmp']) {
    mkdirSync(join(tree, d), { recursive: true });
  }
  chmodSync(join(tree, 'tmp'), 0o1777);
  chmodSync(join(tree, 'var/tmp'), 0o1777);
  for (const l of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${l}`, join(tree, l));
  mkdirSync(join(tree, 'usr/sbin'));
  writeFileSync(join(tree, 'etc/os-release'), 'ID=debian\nVERSION_ID=12\nPORTABLE_PREFIXES=hello\n');
  writeFileSync(join(tree, 'etc/machine-id'), '');
  writeFileSync(join(tree, 'etc/resolv.conf'), '');
  writeFileSync(
    join(tree, 'etc/systemd/system/hello.service'),
    '[Unit]\nDescription=mkportable harness smoke test\n\n[Service]\nExecStart=/usr/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n',
  );
  copyBinaryWithLibs(tree, '/usr/bin/sleep');
  const raw = join(workDir, 'hello_1.0.raw');
  const r = spawnSync('mksquashfs', [tree, raw, '-noappend', '-quiet', '-no-progress', '-all-root'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mksquashfs failed: ${r.stderr}${r.stdout}`);
  return raw;
}

for (const systemd of SYSTEMD_VERSIONS) {
  const pre = prerequisites(systemd);

  if (!pre.ok && !inCI) {
    test(`portabled container harness (systemd ${systemd})`, { skip: `prerequisites missing: ${pre.reason} (set CI=true to make this a failure)` }, () => {});
  } else if (!pre.ok) {
    test(`portabled container harness (systemd ${systemd}): prerequisites`, () => {
      assert.fail(`CI is set but prerequisites are missing: ${pre.reason}`);
    });
  } else {
    describe(`portabled container harness (systemd ${systemd})`, { timeout: 20 * 60_000 }, () => {
      let c: PortabledContainer | undefined;
      let workDir: string | undefined;

      before(async () => {
        workDir = mkdtempSync(join(tmpdir(), 'mkportable-portabled-test-'));
        const t0 = Date.now();
        c = await startPortabledContainer({ systemd });
        console.log(`# container ${c.machine} up in ${Date.now() - t0} ms (pid ${c.pid})`);
      });

      after(async () => {
        await c?.stop();
        if (workDir) rmSync(workDir, { recursive: true, force: true });
      });

      test('systemd and portablectl answer', async () => {
        const ver = await c!.exec(['portablectl', '--version']);
        assert.match(ver.stdout, new RegExp(`^systemd ${systemd}\\b`));
        const state = await c!.exec(['systemctl', 'is-system-running'], { allowFail: true });
        assert.match(state.stdout.trim(), /^(running|degraded)$/, `state: ${state.stdout}${state.stderr}`);
        const list = await c!.exec(['portablectl', 'list']);
        assert.match(list.stdout + list.stderr, /No images/);
      });

      test('attaches and detaches a portable image', async () => {
        const raw = buildHelloImage(workDir!);
        await c!.copyIn(raw, '/var/lib/portables/hello_1.0.raw');

        const attach = await c!.exec(['portablectl', 'attach', '--now', '--runtime', 'hello_1.0']);
        assert.match(attach.stdout + attach.stderr, /hello\.service/);

        const active = await c!.exec(['systemctl', 'is-active', 'hello.service'], { allowFail: true });
        assert.equal(active.stdout.trim(), 'active', `hello.service is not active:\n${active.stdout}${active.stderr}`);
        const attached = await c!.exec(['portablectl', 'is-attached', 'hello_1.0'], { allowFail: true });
        assert.match(attached.stdout.trim(), /^(attached|running)-runtime$/);
        const mainPid = await c!.exec(['systemctl', 'show', '-P', 'MainPID', 'hello.service']);
        assert.notEqual(mainPid.stdout.trim(), '0');

        await c!.exec(['portablectl', 'detach', '--now', '--runtime', 'hello_1.0']);

        const load = await c!.exec(['systemctl', 'show', '-P', 'LoadState', 'hello.service']);
        assert.equal(load.stdout.trim(), 'not-found', 'hello.service should be gone after detach');
        const afterDetach = await c!.exec(['systemctl', 'is-active', 'hello.service'], { allowFail: true });
        assert.notEqual(afterDetach.stdout.trim(), 'active');
        const detached = await c!.exec(['portablectl', 'is-attached', 'hello_1.0'], { allowFail: true });
        assert.equal(detached.stdout.trim(), 'detached');
        const leftover = await c!.exec(['test', '-e', '/run/systemd/system.attached/hello.service'], { allowFail: true });
        assert.notEqual(leftover.code, 0, 'unit file still present in /run/systemd/system.attached');
      });
    });
  }
}
