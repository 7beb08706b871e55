// `mkportable try`: the image attached in a throwaway systemd (252 and 257) with real portabled, its units
// started and shown, a check run from the host, and nothing left behind; a failing check or unit fails it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { waitFor } from './support/wait.js';
import { portabledPrerequisites } from './support/portabled.js';
import { makeSigningPair } from './support/verity.js';
import { hasCommand, IN_CI, isRoot, runCli, runCommand, REPO, tempDir } from './support/env.js';
import { askVersion, buildResponder, freePort, versionCheck } from './support/responder.js';

const pre = [252, 257].map((systemd) => portabledPrerequisites({ systemd: systemd as 252 | 257 })).find((p) => !p.ok);
const ready = !pre;

/** What try left on the host: its container's cgroup, its PID 1, its state folder. */
function leftovers(stdout: string): string[] {
  const m = /container (mkp-\d+-\w+), host pid (\d+)/.exec(stdout);
  assert.ok(m, `no container line in:\n${stdout}`);
  const [, machine, pid] = m;
  const left: string[] = [];
  if (existsSync(`/sys/fs/cgroup/mkportable.${machine}`)) left.push(`cgroup mkportable.${machine}`);
  try {
    if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd') left.push(`container PID 1 (${pid}) still running`);
  } catch {
    /* gone */
  }
  return left;
}

describe('mkportable try', { timeout: 10 * 60_000 }, () => {
  test('usage errors exit 2 before anything boots', async () => {
    const r = await runCli(['try', '/nonexistent.raw', '--systemd', '250']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^mkportable: --systemd 250: choose 252 or 257\n$/);
    const none = await runCli(['try']);
    assert.equal(none.code, 2);
  });

  test('without root: one line saying what is missing and how to get it', { skip: isRoot() && !hasCommand('setpriv') ? 'setpriv not installed' : false }, async (t) => {
    const out = tempDir('mkp-try-noroot-', t);
    chmodSync(out, 0o755);
    const image = path.join(out, 'x_1.raw');
    writeFileSync(image, 'not really an image\n', { mode: 0o644 });
    const args = [path.join(REPO, 'bin/mkportable.js'), 'try', image];
    // As root, become nobody to see what an ordinary user sees.
    const r = isRoot()
      ? await runCommand('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, ...args], { cwd: '/' })
      : await runCommand(process.execPath, args, { cwd: '/' });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^mkportable: error: try needs a real systemd: needs root \(run it with sudo\)/);
  });

  if (!ready && !IN_CI) {
    test('try on real systemd', { skip: `prerequisites missing: ${pre?.reason}` }, () => {});
    return;
  }

  test('systemd 257: attach, start, check pass; exit 0; detached and stopped', async (t) => {
    if (!ready) throw new Error(`prerequisite missing in CI: ${pre?.reason}`);
    const port = await freePort();
    const img = await buildResponder('tryme', '7', port, t);
    const r = await runCli(['try', img.image, '--systemd', '257', '--check', versionCheck(port, '7')]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^systemd 257 \(Debian trixie\) up in/m);
    assert.match(r.stdout, /^attach tryme_7\.raw: ok$/m);
    assert.match(r.stdout, /^tryme\.socket: active\/listening$/m);
    assert.match(r.stdout, /Listen: 127\.0\.0\.1:\d+ \(Stream\)/, 'systemctl status of the socket is shown');
    assert.match(r.stdout, /^tryme@\.service: template/m);
    assert.match(r.stdout, /^check `.*`: passed after \d+ attempts?/m);
    assert.match(r.stdout, /^detach tryme_7: ok$/m);
    assert.match(r.stdout, /\nPASS\n$/);
    assert.deepEqual(leftovers(r.stdout), []);
    await assert.rejects(askVersion(port), 'nothing answers once try is done');
  });

  test('systemd 252: a check that never passes fails the run (exit 1), still cleaned up', async (t) => {
    if (!ready) throw new Error(`prerequisite missing in CI: ${pre?.reason}`);
    const port = await freePort();
    const img = await buildResponder('tryme', '8', port, t);
    // The service answers version 8; the check wants 9.
    const r = await runCli(['try', img.image, '--systemd', '252', '--check', versionCheck(port, '9'), '--check-timeout', '3']);
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^tryme\.socket: active\/listening$/m);
    assert.match(r.stdout, /^check `.*`: failed \(exit 1\) after \d+ attempts?/m);
    assert.match(r.stdout, /^detach tryme_8: ok$/m);
    assert.match(r.stdout, /\nFAIL\n$/);
    assert.deepEqual(leftovers(r.stdout), []);
  });

  test('a unit that fails to start fails the run, with its status and journal shown', async (t) => {
    if (!ready) throw new Error(`prerequisite missing in CI: ${pre?.reason}`);
    const dir = tempDir('mkp-try-bad-', t);
    writeFileSync(path.join(dir, 'broken.service'), '[Service]\nExecStart=/usr/bin/false\n\n[Install]\nWantedBy=multi-user.target\n');
    const b = await runCli(['build', '--pname', 'broken', '--version', '1', '--unit', path.join(dir, 'broken.service'), '--out', dir, '--json']);
    assert.equal(b.code, 0, b.stderr);
    const r = await runCli(['try', path.join(dir, 'broken_1.raw'), '--check', 'true']);
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^systemd 252 /m, '252 is the default');
    assert.match(r.stdout, /^broken\.service: failed\/failed  FAILED$/m);
    assert.match(r.stdout, /Active: failed/);
    assert.match(r.stdout, /last journal lines:\n.*broken\.service/);
    assert.match(r.stdout, /^check skipped: the units did not start$/m);
    assert.match(r.stdout, /\nFAIL\n$/);
    assert.deepEqual(leftovers(r.stdout), []);
  });

  test('--keep: the container stays up (with the service answering) until SIGINT, then detaches and stops', async (t) => {
    if (!ready) throw new Error(`prerequisite missing in CI: ${pre?.reason}`);
    const port = await freePort();
    const img = await buildResponder('tryme', '10', port, t);
    const child = spawn(process.execPath, [path.join(REPO, 'bin/mkportable.js'), 'try', img.image, '--systemd', '257', '--keep'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const closed = new Promise<number>((r) => child.on('close', (code) => r(code ?? -1)));
    try {
      const pid = await waitFor('the kept-running line', async () => /nsenter -t (\d+) -a/.exec(stdout)?.[1]);
      assert.match(await askVersion(port), /^IMAGE_VERSION=10$/m);
      const state = await runCommand('nsenter', ['-t', pid, '-a', '--', 'portablectl', 'is-attached', 'tryme_10']);
      assert.match(state.stdout, /running-runtime|attached-runtime/);
      child.kill('SIGINT');
      assert.equal(await closed, 0, stdout);
    } finally {
      child.kill('SIGKILL');
    }
    assert.match(stdout, /^detach tryme_10: ok$/m);
    assert.match(stdout, /\nPASS\n$/);
    assert.deepEqual(leftovers(stdout), []);
  });

  test('--profile must be one the container has', async (t) => {
    if (!ready) throw new Error(`prerequisite missing in CI: ${pre?.reason}`);
    const port = await freePort();
    const img = await buildResponder('tryme', '9', port, t);
    const bad = await runCli(['try', img.image, '--profile', 'nosuch']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^mkportable: error: --profile 'nosuch': systemd 252 has default, nonetwork, strict, trusted\n$/);
    const strict = await runCli(['try', img.image, '--profile', 'strict', '--check', versionCheck(port, '9')]);
    assert.equal(strict.code, 0, `${strict.stdout}\n${strict.stderr}`);
    assert.match(strict.stdout, /^attach tryme_9\.raw \(profile strict\): ok$/m);
  });
  test('verity images: a DDI runs from its partitions; sidecars stay behind, said so; a signed DDI is refused before booting', async (t) => {
    if (!ready) throw new Error(`prerequisite missing in CI: ${pre?.reason}`);
    const port = await freePort();
    const out = tempDir('mkp-try-verity-', t);
    const ddi = await buildResponder('tryme', '11', port, t, out, ['--format', 'ddi']);
    const d = await runCli(['try', ddi.image, '--systemd', '257', '--check', versionCheck(port, '11')]);
    assert.equal(d.code, 0, `${d.stdout}\n${d.stderr}`);
    assert.match(d.stdout, /^attach tryme_11\.raw: ok$/m);
    assert.deepEqual(leftovers(d.stdout), []);

    const side = await buildResponder('tryme', '12', port, t, out, ['--verity']);
    const s = await runCli(['try', side.image, '--check', versionCheck(port, '12')]);
    assert.equal(s.code, 0, `${s.stdout}\n${s.stderr}`);
    assert.match(s.stdout, /^note: tryme_12\.raw is tried without dm-verity \(its \.roothash and \.verity stay behind\)/m);

    const keys = makeSigningPair(out, 'try');
    const signed = await buildResponder('tryme', '13', port, t, out, ['--verity', '--format', 'ddi', '--signing-key', keys.key, '--signing-certificate', keys.certificate]);
    const r = await runCli(['try', signed.image]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '', 'nothing booted');
    assert.match(r.stderr, /^mkportable: error: \S+tryme_13\.raw: a signed DDI needs dm-verity, which try's container \(systemd-nspawn, no device-mapper\) cannot set up; .*\n$/);
  });
});
