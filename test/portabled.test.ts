// The NixOS portable-service test, replayed on real systemd-portabled 252 and 257 (Debian 12 and 13 booted
// with systemd-nspawn), plus a real network daemon from the host's Debian packages answering from inside its
// portable image.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { portabledPrerequisites, startPortabledContainer, SYSTEMD_VERSIONS, type PortabledContainer } from './support/portabled.js';
import { hasCommand, IN_CI, runCli, tempDir } from './support/env.js';
import { ask, waitFor } from './support/wait.js';
import type { BuildResult } from '../src/index.js';

/** Every build's output folder, removed when the file's tests end. */
const outs = tempDir('mkportable-portabled-out-', { after });
let builds = 0;

async function build(example: string): Promise<BuildResult> {
  const r = await runCli(['build', example, '--out', path.join(outs, String(builds++)), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as BuildResult;
}

for (const systemd of SYSTEMD_VERSIONS) {
  const pre = portabledPrerequisites({ systemd });
  const ready = pre.ok && hasCommand('mksquashfs');
  const reason = pre.reason ?? 'mksquashfs not installed';

  if (!ready && !IN_CI) {
    test(`systemd-portabled ${systemd} tests`, { skip: `prerequisites missing: ${reason}` }, () => {});
  } else {
    describe(`images on real systemd-portabled ${systemd}`, { timeout: 15 * 60_000 }, () => {
      let c: PortabledContainer;
      before(async () => {
        if (!ready) throw new Error(`prerequisite missing in CI: ${reason}`);
        c = await startPortabledContainer({ systemd });
        const version = await c.exec(['portablectl', '--version']);
        assert.match(version.stdout, new RegExp(`^systemd ${systemd}\\b`));
      });
      after(async () => {
        await c?.stop();
      });

      const active = async (unit: string) => (await c.exec(['systemctl', 'is-active', unit], { allowFail: true })).stdout.trim();

      test('demo: attach --now --runtime starts demo.service; detach removes it', async () => {
        const demo = await build('examples/demo');
        await c.copyIn(demo.image, '/var/lib/portables/demo_1.0.raw');
        const inspect = await c.exec(['portablectl', 'inspect', 'demo_1.0']);
        assert.match(inspect.stdout, /PORTABLE_PRETTY_NAME=.*Demo portable service|Demo portable service/);

        const attach = await c.exec(['portablectl', 'attach', '--now', '--runtime', 'demo_1.0'], { allowFail: true });
        assert.equal(attach.code, 0, `attach failed:\n${attach.stdout}${attach.stderr}`);
        await waitFor('demo.service active', async () => ((await active('demo.service')) === 'active' ? true : undefined));
        assert.equal(await active('demo.socket'), 'active');
        const sock = await c.exec(['stat', '-c', '%a %F', '/run/demo.sock']);
        assert.equal(sock.stdout.trim(), '666 socket');
        // The loop prints the date from inside the image: date, sleep and the shell all resolved.
        await waitFor('demo output in the journal', async () => {
          const log = await c.exec(['journalctl', '-u', 'demo.service', '-o', 'cat', '--no-pager'], { allowFail: true });
          return /\b20\d\d\b/.test(log.stdout) ? true : undefined;
        });
        const restarts = await c.exec(['systemctl', 'show', '-P', 'NRestarts', 'demo.service']);
        assert.equal(restarts.stdout.trim(), '0', 'demo.service should not be crash-looping');

        const detach = await c.exec(['portablectl', 'detach', '--now', '--runtime', 'demo_1.0'], { allowFail: true });
        assert.equal(detach.code, 0, `detach failed:\n${detach.stdout}${detach.stderr}`);
        const status = await c.exec(['systemctl', 'status', 'demo.service'], { allowFail: true });
        assert.notEqual(status.code, 0, `systemctl status demo.service should fail after detach:\n${status.stdout}`);
      });

      // The daemon test once is enough: the images are the same, only systemd differs.
      if (systemd === 252) test('memcached from the host\'s Debian package answers from its portable image', { skip: !hasCommand('memcached') && !IN_CI ? 'memcached not installed on the build host' : false }, async () => {
        const mc = await build('examples/memcached');
        assert.ok(mc.files.some((f) => f.path.endsWith('/libevent-2.1.so.7') || f.path.includes('libevent')), 'libevent should be in the closure');
        await c.copyIn(mc.image, '/var/lib/portables/memcached_1.6.raw');
        const attach = await c.exec(['portablectl', 'attach', '--now', '--runtime', 'memcached_1.6'], { allowFail: true });
        assert.equal(attach.code, 0, `attach failed:\n${attach.stdout}${attach.stderr}`);
        await waitFor('memcached.service active', async () => ((await active('memcached.service')) === 'active' ? true : undefined));
        const version = await waitFor('memcached answering', () => ask(11311, 'version\r\n', /\r\n$/));
        assert.match(version, /^VERSION \d+\.\d+\.\d+/);
        const stored = await ask(11311, 'set greeting 0 0 5\r\nhello\r\nget greeting\r\n', /END\r\n$/);
        assert.match(stored, /STORED\r\nVALUE greeting 0 5\r\nhello\r\nEND\r\n/);
        // It runs as portabled's profile says: a dynamic user, not root.
        const user = await c.exec(['systemctl', 'show', '-P', 'DynamicUser', 'memcached.service']);
        assert.equal(user.stdout.trim(), 'yes');

        const detach = await c.exec(['portablectl', 'detach', '--now', '--runtime', 'memcached_1.6'], { allowFail: true });
        assert.equal(detach.code, 0, `detach failed:\n${detach.stdout}${detach.stderr}`);
        await assert.rejects(ask(11311, 'version\r\n', /\r\n$/), 'memcached must be gone after detach');
      });
    });
  }
}
