// A portable service that answers on a TCP port of the host's loopback with its own os-release (IMAGE_VERSION
// included), so a test can tell from outside the container which version of the image is running.
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { BuildResult } from '../../src/index.js';
import { runCli, tempDir } from './env.js';

/** A TCP port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Builds `<pname>_<version>.raw`: a socket on 127.0.0.1:port whose instances print /etc/os-release. */
export async function buildResponder(
  pname: string,
  version: string,
  port: number,
  t: Pick<TestContext, 'after'>,
  out = tempDir('mkp-responder-', t),
  extra: string[] = [],
): Promise<BuildResult> {
  const units = tempDir('mkp-responder-units-', t);
  writeFileSync(path.join(units, `${pname}.socket`), `[Socket]\nListenStream=127.0.0.1:${port}\nAccept=yes\n\n[Install]\nWantedBy=sockets.target\n`);
  writeFileSync(path.join(units, `${pname}@.service`), '[Service]\nExecStart=/usr/bin/cat /etc/os-release\nStandardInput=socket\nStandardOutput=socket\n');
  const r = await runCli([
    'build', '--pname', pname, '--version', version,
    '--unit', path.join(units, `${pname}.socket`), '--unit', path.join(units, `${pname}@.service`),
    '--out', out, '--json', ...extra,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as BuildResult;
}

/** What the responder on `port` says (its os-release), or a rejection when nothing answers. */
export function askVersion(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = '';
    sock.setTimeout(3000, () => sock.destroy(new Error(`no answer on port ${port}`)));
    sock.on('data', (d) => (got += d));
    sock.on('end', () => resolve(got));
    sock.on('error', reject);
  });
}

/** The shell check `try --check` runs: passes when the responder reports this image version. */
export function versionCheck(port: number, version: string): string {
  return `bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port} && grep -qx IMAGE_VERSION=${version} <&3'`;
}
