// The update loop on real systemd 257: a release folder from `mkportable publish`, served on loopback by a real
// HTTP server, consumed by systemd-sysupdate in a Debian 13 container; portabled attaches and reattaches what it
// installs. A tampered image and a folder signed by an unknown key are refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { portabledPrerequisites, startPortabledContainer, type PortabledContainer } from './support/portabled.js';
import { hasCommand, IN_CI, runCli, tempDir } from './support/env.js';
import { askVersion, buildResponder, freePort } from './support/responder.js';
import { stopAgent, throwawayGpg, type Gpg } from './support/gpg.js';
import { waitFor } from './support/wait.js';
import { makeSigningPair } from './support/verity.js';
import type { BuildResult } from '../src/index.js';

const pre = portabledPrerequisites({ systemd: 257 });
const missing = [...(pre.ok ? [] : [pre.reason!]), ...['python3', 'gpg', 'xz'].filter((c) => !hasCommand(c)).map((c) => `${c} not installed`)];
const SYSUPDATE = '/usr/lib/systemd/systemd-sysupdate';

if (missing.length && !IN_CI) {
  test('systemd-sysupdate consumes published folders', { skip: `prerequisites missing: ${missing.join('; ')}` }, () => {});
} else {
  describe('systemd-sysupdate consumes published folders (systemd 257)', { timeout: 15 * 60_000 }, () => {
    let c: PortabledContainer;
    let server: ChildProcess | undefined;
    let gpg: Gpg | undefined;
    let root: string;
    let url: string;
    let port: number;
    const images: Record<string, string> = {};
    const verity: Record<string, BuildResult> = {};
    const ends: (() => void)[] = [];
    const suite = { after: (fn: () => void) => void ends.push(fn) };

    const publish = async (args: string[], env?: NodeJS.ProcessEnv) => {
      const r = await runCli(['publish', ...args], env ? { env } : {});
      assert.equal(r.code, 0, r.stderr);
      return r;
    };
    const sysupdate = (component: string, verb = 'update') =>
      c.exec([SYSUPDATE, `--component=${component}`, '--no-pager', verb], { allowFail: true, timeoutMs: 120_000 });
    const ls = async () => (await c.exec(['ls', '-1A', '/var/lib/portables'])).stdout.split('\n').filter(Boolean);
    const link = async (name: string) => (await c.exec(['readlink', `/var/lib/portables/${name}`], { allowFail: true })).stdout.trim();
    const installTransfer = async (folder: string, pname: string) => {
      await c.copyIn(path.join(root, folder, `sysupdate.${pname}.d`, `${pname}.transfer`), `/etc/sysupdate.${pname}.d/${pname}.transfer`);
    };

    before(async () => {
      if (missing.length) throw new Error(`prerequisite missing in CI: ${missing.join('; ')}`);
      root = tempDir('mkp-sysupdate-');
      port = await freePort();
      const servePort = await freePort();
      url = `http://127.0.0.1:${servePort}`;
      server = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', '--directory', root, String(servePort)], { stdio: 'ignore' });
      await waitFor('the HTTP server', async () => ((await fetch(`${url}/`)).ok ? true : undefined));
      const out = tempDir('mkp-sysupdate-images-', suite);
      for (const v of ['1', '2', '3']) images[`web_${v}`] = (await buildResponder('web', v, port, suite, out)).image;
      const sport = await freePort();
      for (const v of ['1', '2']) images[`sig_${v}`] = (await buildResponder('sig', v, sport, suite, out)).image;
      const keys = makeSigningPair(out, 'release');
      const signing = ['--verity', '--signing-key', keys.key, '--signing-certificate', keys.certificate];
      const vport = await freePort();
      for (const v of ['1', '2']) verity[`side_${v}`] = await buildResponder('side', v, vport, suite, out, signing);
      verity.ddi_1 = await buildResponder('ddi', '1', vport, suite, out, [...signing, '--format', 'ddi']);
      verity.uddi_1 = await buildResponder('uddi', '1', vport, suite, out, ['--verity', '--format', 'ddi']);
      c = await startPortabledContainer({ systemd: 257 });
    });
    after(async () => {
      await c?.stop();
      server?.kill();
      if (gpg) {
        stopAgent(gpg);
        rmSync(gpg.home, { recursive: true, force: true });
      }
      if (root) rmSync(root, { recursive: true, force: true });
      ends.forEach((fn) => fn());
    });

    test('v1 installs and runs; v2 installs beside it and runs after portablectl reattach', async () => {
      await publish([images.web_1, '--to', path.join(root, 'web'), '--compress', 'xz', '--url', `${url}/web`]);
      await installTransfer('web', 'web');
      const u1 = await sysupdate('web');
      assert.equal(u1.code, 0, u1.stdout + u1.stderr);
      assert.deepEqual(await ls(), ['web.raw', 'web_1.raw']);
      assert.equal(await link('web.raw'), 'web_1.raw');
      assert.equal(
        (await c.exec(['sha256sum', '/var/lib/portables/web_1.raw'])).stdout.split(' ')[0],
        sha256Of(images.web_1),
        'the installed image is the published one, decompressed',
      );
      const attach = await c.exec(['portablectl', 'attach', '--now', '--runtime', 'web'], { allowFail: true });
      assert.match(attach.stdout + attach.stderr, /web\.socket/);
      assert.equal((await c.exec(['systemctl', 'is-active', 'web.socket'], { allowFail: true })).stdout.trim(), 'active');
      assert.match(await waitFor('v1 answering', () => askVersion(port)), /^IMAGE_VERSION=1$/m);

      await publish([images.web_2, '--to', path.join(root, 'web'), '--compress', 'xz', '--url', `${url}/web`]);
      assert.match(readFileSync(path.join(root, 'web/SHA256SUMS'), 'utf8'), /web_1\.raw\.xz\n.*web_2\.raw\.xz\n$/);
      const u2 = await sysupdate('web');
      assert.equal(u2.code, 0, u2.stdout + u2.stderr);
      assert.deepEqual(await ls(), ['web.raw', 'web_1.raw', 'web_2.raw']);
      assert.equal(await link('web.raw'), 'web_2.raw');
      // Unit files were copied at attach: the running service is still v1 until reattach.
      assert.match(await askVersion(port), /^IMAGE_VERSION=1$/m);
      const re = await c.exec(['portablectl', 'reattach', '--now', '--runtime', 'web'], { allowFail: true });
      assert.equal(re.code, 0, re.stdout + re.stderr);
      assert.match(await waitFor('v2 answering', async () => {
        const a = await askVersion(port);
        return /^IMAGE_VERSION=2$/m.test(a) ? a : undefined;
      }), /^IMAGE_VERSION=2$/m);
      assert.match((await c.exec(['portablectl', 'is-attached', 'web_2'], { allowFail: true })).stdout, /running-runtime|attached-runtime/);
    });

    test('a tampered image fails verification and is not installed', async () => {
      await publish([images.web_3, '--to', path.join(root, 'web'), '--compress', 'xz', '--url', `${url}/web`]);
      const file = path.join(root, 'web/web_3.raw.xz');
      // A valid .xz of a changed image: only the SHA256SUMS check can catch it (a corrupt stream would fail to decompress).
      const raw = readFileSync(images.web_3);
      raw[Math.floor(raw.length / 2)] ^= 0x55;
      const xz = spawnSync('xz', ['-c', '-6'], { input: raw, maxBuffer: 1 << 30 });
      assert.equal(xz.status, 0);
      writeFileSync(file, xz.stdout);
      const u = await sysupdate('web');
      assert.notEqual(u.code, 0, `sysupdate accepted a tampered file:\n${u.stdout}${u.stderr}`);
      assert.match(u.stdout + u.stderr, /Checksum of \S+\/web_3\.raw\.xz file did not check out/);
      // sysupdate makes room (InstancesMax=2) before it downloads, so v1 is gone; v3 never arrives, not even in part.
      assert.deepEqual(await ls(), ['web.raw', 'web_2.raw'], 'nothing new, no partial file');
      assert.equal(await link('web.raw'), 'web_2.raw');
      assert.match(await askVersion(port), /^IMAGE_VERSION=2$/m);
      await c.exec(['portablectl', 'detach', '--now', '--runtime', 'web']);
    });

    test('verity releases: sidecars and DDIs install with the image, under the same version; portabled finds their verity', async () => {
      const installAll = async (pname: string) => {
        const dir = path.join(root, pname, `sysupdate.${pname}.d`);
        for (const f of readdirSync(dir).filter((n) => n.endsWith('.transfer'))) await c.copyIn(path.join(dir, f), `/etc/sysupdate.${pname}.d/${f}`);
      };
      const sums = async (names: string[]) =>
        (await c.exec(['sha256sum', ...names.map((n) => `/var/lib/portables/${n}`)])).stdout.split('\n').filter(Boolean).map((l) => l.split(' ')[0]);
      const dissect = async (name: string) => {
        const d = await c.exec(['systemd-dissect', `/var/lib/portables/${name}`], { allowFail: true });
        assert.equal(d.code, 0, d.stdout + d.stderr);
        assert.match(d.stdout, /✓ portable service/);
        return d.stdout;
      };

      // A signed sidecar image: .raw (compressed), .verity (compressed), .roothash and .roothash.p7s (as they are).
      await publish([verity.side_1.image, '--to', path.join(root, 'side'), '--compress', 'xz', '--url', `${url}/side`]);
      assert.deepEqual(
        readdirSync(path.join(root, 'side/sysupdate.side.d')).filter((n) => n.endsWith('.transfer')).sort(),
        ['side-roothash-p7s.transfer', 'side-roothash.transfer', 'side-verity.transfer', 'side.transfer'],
      );
      await installAll('side');
      const u1 = await sysupdate('side');
      assert.equal(u1.code, 0, u1.stdout + u1.stderr);
      const v1 = ['side_1.raw', 'side_1.verity', 'side_1.roothash', 'side_1.roothash.p7s'];
      assert.deepEqual((await ls()).filter((n) => n.startsWith('side')).sort(), [...v1, 'side.raw', 'side.roothash', 'side.roothash.p7s', 'side.verity'].sort());
      const built = (r: BuildResult, suffix: string) => sha256Of(r.outputs.find((f) => path.basename(f) === `${r.name}${suffix}`)!);
      assert.deepEqual(await sums(v1), ['.raw', '.verity', '.roothash', '.roothash.p7s'].map((x) => built(verity.side_1, x)), 'each installed file is the built one');
      for (const s of ['.raw', '.verity', '.roothash', '.roothash.p7s']) assert.equal(await link(`side${s}`), `side_1${s}`);
      assert.match(await dissect('side.raw'), /^ro\s+root\s+-\s+-\s+squashfs\s+-\s+(external|signed)\b/m);

      // Version 2: every kind moves on together.
      await publish([verity.side_2.image, '--to', path.join(root, 'side'), '--compress', 'xz', '--url', `${url}/side`]);
      const u2 = await sysupdate('side');
      assert.equal(u2.code, 0, u2.stdout + u2.stderr);
      for (const s of ['.raw', '.verity', '.roothash', '.roothash.p7s']) assert.equal(await link(`side${s}`), `side_2${s}`);
      assert.deepEqual(await sums(['side_2.roothash']), [built(verity.side_2, '.roothash')]);
      const attach = await c.exec(['portablectl', 'attach', '--runtime', 'side'], { allowFail: true });
      assert.equal(attach.code, 0, attach.stdout + attach.stderr);
      assert.match(attach.stdout + attach.stderr, /side\.socket/);
      await c.exec(['portablectl', 'detach', '--runtime', 'side']);

      // A signed DDI is one file; an unsigned one brings its .roothash along.
      await publish([verity.ddi_1.image, '--to', path.join(root, 'ddi'), '--compress', 'xz', '--url', `${url}/ddi`]);
      await installAll('ddi');
      const d1 = await sysupdate('ddi');
      assert.equal(d1.code, 0, d1.stdout + d1.stderr);
      assert.deepEqual((await ls()).filter((n) => n.startsWith('ddi')).sort(), ['ddi.raw', 'ddi_1.raw']);
      assert.deepEqual(await sums(['ddi_1.raw']), [sha256Of(verity.ddi_1.image)]);
      assert.match(await dissect('ddi.raw'), /^ro\s+root\s+\S+\s+root-x86-64\s+squashfs\s+x86-64\s+signed\b/m);

      await publish([verity.uddi_1.image, '--to', path.join(root, 'uddi'), '--url', `${url}/uddi`]);
      await installAll('uddi');
      const d2 = await sysupdate('uddi');
      assert.equal(d2.code, 0, d2.stdout + d2.stderr);
      assert.deepEqual((await ls()).filter((n) => n.startsWith('uddi')).sort(), ['uddi.raw', 'uddi.roothash', 'uddi_1.raw', 'uddi_1.roothash']);
      const inspect = await c.exec(['portablectl', 'inspect', 'uddi'], { allowFail: true });
      assert.equal(inspect.code, 0, inspect.stdout + inspect.stderr);
      assert.match(inspect.stdout, /uddi\.socket/);
    });

    test('--gpg-key: a folder signed by the trusted key installs; signed by an unknown key, it is refused', async () => {
      gpg = throwawayGpg();
      const trusted = gpg.newKey('mkportable release <release@example.invalid>');
      const stranger = gpg.newKey('someone else <stranger@example.invalid>');
      const keyring = path.join(root, 'pubring.gpg');
      gpg.exportKey(trusted, keyring);
      // sysupdate has systemd-pull check SHA256SUMS.gpg with gpg against this keyring (or /usr/lib/systemd/import-pubring.gpg).
      await c.copyIn(keyring, '/etc/systemd/import-pubring.gpg', { mode: 0o644 });
      const folder = path.join(root, 'sig');
      await publish([images.sig_1, '--to', folder, '--compress', 'xz', '--gpg-key', trusted, '--url', `${url}/sig`], gpg.env);
      await installTransfer('sig', 'sig');
      assert.match(readFileSync(path.join(folder, 'sysupdate.sig.d/sig.transfer'), 'utf8'), /^Verify=yes$/m);
      const ok = await sysupdate('sig');
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.ok((await ls()).includes('sig_1.raw'));

      await publish([images.sig_2, '--to', folder, '--compress', 'xz', '--gpg-key', stranger, '--url', `${url}/sig`], gpg.env);
      const refused = await sysupdate('sig');
      assert.notEqual(refused.code, 0, `sysupdate accepted a folder signed by an unknown key:\n${refused.stdout}${refused.stderr}`);
      assert.match(refused.stdout + refused.stderr, /Signature verification failed/);
      assert.ok(!(await ls()).includes('sig_2.raw'));
      assert.equal(await link('sig.raw'), 'sig_1.raw');

      // And with no signature at all, a Verify=yes client refuses too.
      rmSync(path.join(folder, 'SHA256SUMS.gpg'));
      const unsigned = await sysupdate('sig');
      assert.notEqual(unsigned.code, 0, `sysupdate accepted an unsigned folder:\n${unsigned.stdout}${unsigned.stderr}`);
      assert.ok(!(await ls()).includes('sig_2.raw'));
    });
  });
}

function sha256Of(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}


