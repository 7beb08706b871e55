// What issue-11 services need, proven on real systemd-portabled 252 and 257: a StateDirectory= that keeps its data
// across restarts on a read-only image, programs named by env and sh -c, a script placed with `files`, and a
// timer whose sh -c command line runs date, cat and grep from the image.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { portabledPrerequisites, startPortabledContainer, SYSTEMD_VERSIONS, type PortabledContainer } from './support/portabled.js';
import { IN_CI, tempDir } from './support/env.js';
import { waitFor } from './support/wait.js';
import { portableService, type BuildResult } from '../src/index.js';

const dir = tempDir('mkportable-services-', { after });
let image: Promise<BuildResult> | undefined;

/** One image for both systemd versions. */
function buildImage(): Promise<BuildResult> {
  image ??= (async () => {
    writeFileSync(path.join(dir, 'run.sh'), '#!/bin/sh\necho "run $(cat /var/lib/svc/count)"\nexec sleep infinity\n');
    chmodSync(path.join(dir, 'run.sh'), 0o755);
    return portableService({
      pname: 'svc', version: '1', outDir: path.join(dir, 'out'), baseDir: dir, squashCompression: 'lz4',
      units: [
        { name: 'svc.service', text: [
          '[Unit]', 'Description=state kept across restarts', '', '[Service]', 'StateDirectory=svc',
          "ExecStartPre=/usr/bin/env sh -c 'n=$(cat /var/lib/svc/count 2>/dev/null || echo 0); echo $((n+1)) > /var/lib/svc/count'",
          'ExecStart=/opt/svc/run.sh', '',
        ].join('\n') },
        { name: 'svc-log.service', text: [
          '[Service]', 'Type=oneshot', "ExecStart=/bin/sh -c 'echo \"tick $(date +%%s) $(cat /etc/os-release | grep ^IMAGE_ID=)\"'", '',
        ].join('\n') },
        { name: 'svc-log.timer', text: ['[Timer]', 'OnActiveSec=1', 'OnUnitActiveSec=2', 'AccuracySec=100ms', ''].join('\n') },
      ],
      files: [{ path: '/opt/svc/run.sh', source: 'run.sh' }],
      contents: ['/usr/bin/sleep'],
    });
  })();
  return image;
}

/** A service that prints its dynamic user's name: with and without dynamicUserLookup. */
let whoami: Promise<BuildResult[]> | undefined;
function buildWhoami(): Promise<BuildResult[]> {
  whoami ??= Promise.all([true, false].map((lookup) => portableService({
    pname: lookup ? 'dyn' : 'plain', version: '1', outDir: path.join(dir, lookup ? 'dyn' : 'plain'), squashCompression: 'lz4',
    units: [{ name: `${lookup ? 'dyn' : 'plain'}.service`, text: "[Service]\nExecStart=/bin/sh -c 'echo \"user=$(id -un 2>&1)\"; exec sleep infinity'\n" }],
    dynamicUserLookup: lookup,
  })));
  return whoami;
}

for (const systemd of SYSTEMD_VERSIONS) {
  const pre = portabledPrerequisites({ systemd });
  if (!pre.ok && !IN_CI) {
    test(`services on systemd-portabled ${systemd}`, { skip: `prerequisites missing: ${pre.reason}` }, () => {});
    continue;
  }
  describe(`services on real systemd-portabled ${systemd}`, { timeout: 10 * 60_000 }, () => {
    let c: PortabledContainer;
    before(async () => {
      if (!pre.ok) throw new Error(`prerequisite missing in CI: ${pre.reason}`);
      c = await startPortabledContainer({ systemd });
    });
    after(async () => {
      await c?.stop();
    });
    const journal = async (unit: string) => (await c.exec(['journalctl', '-u', unit, '-o', 'cat', '--no-pager'], { allowFail: true })).stdout;

    test('StateDirectory= keeps data across a restart, env and sh -c programs run, a files script starts, a timer logs date/cat/grep output', async () => {
      const r = await buildImage();
      await c.copyIn(r.image, '/var/lib/portables/svc_1.raw');
      const attach = await c.exec(['portablectl', 'attach', '--now', '--runtime', 'svc_1'], { allowFail: true });
      assert.equal(attach.code, 0, `attach failed:\n${attach.stdout}${attach.stderr}`);
      await waitFor('svc.service active', async () => ((await c.exec(['systemctl', 'is-active', 'svc.service'], { allowFail: true })).stdout.trim() === 'active' ? true : undefined));
      await waitFor('first run in the journal', async () => (/^run 1$/m.test(await journal('svc.service')) ? true : undefined));
      await c.exec(['systemctl', 'restart', 'svc.service']);
      await waitFor('second run in the journal', async () => (/^run 2$/m.test(await journal('svc.service')) ? true : undefined));
      // The default profile runs it as a dynamic user: the data lives in the host's /var/lib/private/svc.
      const count = await c.exec(['cat', '/var/lib/private/svc/count']);
      assert.equal(count.stdout.trim(), '2');
      const ticks = await waitFor('two timer ticks', async () => {
        const lines = (await journal('svc-log.service')).split('\n').filter((l) => /^tick \d{9,} IMAGE_ID=svc$/.test(l));
        return lines.length >= 2 ? lines : undefined;
      });
      assert.ok(ticks.length >= 2);
      const detach = await c.exec(['portablectl', 'detach', '--now', '--runtime', 'svc_1'], { allowFail: true });
      assert.equal(detach.code, 0, `detach failed:\n${detach.stdout}${detach.stderr}`);
    });

    test('a dynamic user has a name inside the image (nss-systemd and the user database); without dynamicUserLookup it has none', async () => {
      const [dyn, plain] = await buildWhoami();
      // One at a time: systemd 257's detach of one image also took the other's units (seen with two attached).
      const userOf = async (r: BuildResult, name: string) => {
        await c.copyIn(r.image, `/var/lib/portables/${name}_1.raw`);
        const attach = await c.exec(['portablectl', 'attach', '--now', '--runtime', `${name}_1`], { allowFail: true });
        assert.equal(attach.code, 0, `attach failed:\n${attach.stdout}${attach.stderr}`);
        const user = await waitFor(`${name} prints its user`, async () => (await journal(`${name}.service`)).match(/^user=(.*)$/m)?.[1]);
        await c.exec(['portablectl', 'detach', '--now', '--runtime', `${name}_1`]);
        return user;
      };
      assert.equal(await userOf(dyn, 'dyn'), 'dyn');
      assert.match(await userOf(plain, 'plain'), /cannot find name for user ID \d+/);
    });
  });
}
