// Verity images on real systemd-portabled 252 and 257 in nspawn: `portablectl inspect` and `portablectl attach`
// accept a sidecar image (.verity, .roothash, .roothash.p7s) and DDIs, and list their units. (Containers have
// no device-mapper: running them on dm-verity is verity-vm.test.ts's part.)
//
// A DDI's partitions are block devices the kernel adds to the host's devtmpfs (loopNpM, major 259, minors handed
// out as they come); the container's private /dev never sees them. So the host's /dev is bound read-only at
// /run/host-dev and /dev/loopNpM are symlinks into it, made by the container harness (src/try/container.ts) before
// portabled creates the partitions.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { portabledPrerequisites, startPortabledContainer, SYSTEMD_VERSIONS, type PortabledContainer } from './support/portabled.js';
import { hasCommand, IN_CI, runCli, tempDir } from './support/env.js';
import { makeSigningPair } from './support/verity.js';
import type { BuildResult } from '../src/index.js';

async function build(out: string, version: string, args: string[]): Promise<BuildResult> {
  const r = await runCli(['build', 'examples/demo', '--out', out, '--json', '--version', version, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as BuildResult;
}


for (const systemd of SYSTEMD_VERSIONS) {
  const pre = portabledPrerequisites({ systemd });
  const ready = pre.ok && hasCommand('openssl');
  const reason = pre.reason ?? 'openssl not installed';
  if (!ready && !IN_CI) {
    test(`verity images on systemd-portabled ${systemd}`, { skip: `prerequisites missing: ${reason}` }, () => {});
    continue;
  }
  describe(`verity images on real systemd-portabled ${systemd}`, { timeout: 15 * 60_000 }, () => {
    let c: PortabledContainer;
    let dir: string | undefined;
    const images: Record<string, BuildResult> = {};
    before(async () => {
      if (!ready) throw new Error(`prerequisite missing in CI: ${reason}`);
      const out = (dir = tempDir());
      const keys = makeSigningPair(out, 'portabled-test');
      const signing = ['--signing-key', keys.key, '--signing-certificate', keys.certificate];
      images.sidecar = await build(out, '1.1', ['--verity', ...signing]);
      images.ddi = await build(out, '1.2', ['--verity', '--format', 'ddi']);
      images.signedDdi = await build(out, '1.3', ['--verity', '--format', 'ddi', ...signing]);
      images.plainDdi = await build(out, '1.4', ['--format', 'ddi']);
      c = await startPortabledContainer({ systemd });
      for (const r of Object.values(images)) {
        for (const f of r.outputs) await c.copyIn(f, `/var/lib/portables/${path.basename(f)}`);
      }
    });
    after(async () => {
      await c?.stop();
      if (dir) await fs.rm(dir, { recursive: true, force: true });
    });

    const cases: [string, string, string][] = [
      ['a sidecar image with .verity, .roothash and .roothash.p7s', 'sidecar', 'demo_1.1'],
      ['an unsigned DDI (root, root-verity) with its .roothash', 'ddi', 'demo_1.2'],
      ['a signed DDI (root, root-verity, root-verity-sig)', 'signedDdi', 'demo_1.3'],
      ['a DDI without verity', 'plainDdi', 'demo_1.4'],
    ];
    for (const [what, key, name] of cases) {
      test(`${what}: portablectl inspect lists its units; attach copies them, detach removes them`, async () => {
        assert.equal(path.basename(images[key].image), `${name}.raw`);
        const inspect = await c.exec(['portablectl', 'inspect', name], { allowFail: true });
        assert.equal(inspect.code, 0, `inspect failed:\n${inspect.stdout}${inspect.stderr}`);
        assert.match(inspect.stdout, /Demo portable service/);
        assert.match(inspect.stdout, /Unit files:[\s\S]*demo\.service[\s\S]*demo\.socket|Unit files:[\s\S]*demo\.socket[\s\S]*demo\.service/);

        const attach = await c.exec(['portablectl', 'attach', '--runtime', name], { allowFail: true });
        assert.equal(attach.code, 0, `attach failed:\n${attach.stdout}${attach.stderr}`);
        assert.match(attach.stdout + attach.stderr, /demo\.service/);
        const list = await c.exec(['portablectl', 'list', '--no-legend']);
        assert.match(list.stdout, new RegExp(`^${name.replace('.', '\\.')}\\s+raw\\s.*attached-runtime`, 'm'), list.stdout);
        const unit = await c.exec(['systemctl', 'cat', 'demo.service']);
        assert.match(unit.stdout, new RegExp(`RootImage=/var/lib/portables/${name.replace('.', '\\.')}\\.raw`));

        const detach = await c.exec(['portablectl', 'detach', '--runtime', name], { allowFail: true });
        assert.equal(detach.code, 0, `detach failed:\n${detach.stdout}${detach.stderr}`);
      });
    }
  });
}
