// A file capability carried by the image works on real systemd-portabled: a small server with
// cap_net_bind_service+ep binds a privileged port as User=nobody under --profile=trusted; the same image without
// the capability cannot. Under portabled's default profile the capability is ignored: its sandboxing options
// (SystemCallFilter=, RestrictAddressFamilies=, …) imply NoNewPrivileges=yes for a service that is not root, and
// execve under no_new_privs grants no file capabilities (its PrivateUsers=yes would also keep the capability out
// of the host's network namespace).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { portableService, type BuildResult } from '../src/index.js';
import { portabledPrerequisites, startPortabledContainer, SYSTEMD_VERSIONS, type PortabledContainer } from './support/portabled.js';
import { hasCommand, IN_CI, isRoot, tempDir } from './support/env.js';
import { ask, waitFor } from './support/wait.js';

const SERVER_C = `
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Binds 127.0.0.1:PORT and answers every connection with its uid: a privileged PORT needs CAP_NET_BIND_SERVICE. */
int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 80;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
    int err = errno;
    /* Why: the capability sets, no_new_privs and the user namespace's uid map, for the journal. */
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
      if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10)) fprintf(stderr, "capserver: %s", line);
    if (f) fclose(f);
    f = fopen("/proc/self/uid_map", "r");
    while (f && fgets(line, sizeof line, f)) fprintf(stderr, "capserver: uid_map %s", line);
    if (f) fclose(f);
    fprintf(stderr, "capserver: bind port %d as uid %d: %s\\n", port, (int)getuid(), strerror(err));
    return 1;
  }
  listen(s, 8);
  fprintf(stderr, "capserver: listening on port %d as uid %d\\n", port, (int)getuid());
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    char msg[32];
    int n = snprintf(msg, sizeof msg, "uid %d\\n", (int)getuid());
    if (write(c, msg, n) < 0) perror("write");
    close(c);
  }
}
`;

/** A privileged port nothing on the host listens on (the container shares the host's network). */
async function freePrivilegedPort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = 600 + Math.floor(Math.random() * 400);
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port in 600..999');
}

const tools = ['gcc', 'setcap'].filter((t) => !hasCommand(t));

for (const systemd of SYSTEMD_VERSIONS) {
  const pre = portabledPrerequisites({ systemd });
  const ready = pre.ok && isRoot() && tools.length === 0;
  const reason = pre.reason ?? (isRoot() ? `missing: ${tools.join(', ')}` : 'needs root (setcap)');

  if (!ready && !IN_CI) {
    test(`file capabilities on systemd-portabled ${systemd}`, { skip: `prerequisites missing: ${reason}` }, () => {});
    continue;
  }
  describe(`a file capability from the image, on real systemd-portabled ${systemd}`, { timeout: 10 * 60_000 }, () => {
    let c: PortabledContainer;
    let bin: string;
    let work: string;
    let port: number;
    const images: Record<'cap' | 'nocap', BuildResult> = {} as never;
    before(async () => {
      if (!ready) throw new Error(`prerequisite missing in CI: ${reason}`);
      port = await freePrivilegedPort();
      // Outside /tmp: portabled gives the service a private /tmp, which would hide a program kept there.
      bin = mkdtempSync('/opt/mkportable-capserver-');
      chmodSync(bin, 0o755); // nobody must reach the program: the folder is in the image as it is on the host
      work = tempDir('mkportable-caps-');
      const server = path.join(bin, 'capserver');
      writeFileSync(path.join(work, 'capserver.c'), SERVER_C);
      const cc = spawnSync('gcc', ['-O2', '-Wall', '-o', server, path.join(work, 'capserver.c')], { encoding: 'utf8' });
      assert.equal(cc.status, 0, cc.stderr);
      writeFileSync(path.join(work, 'capsrv.service'), `[Unit]\nDescription=binds port ${port} with its file capability\n\n[Service]\nExecStart=${server} ${port}\nUser=nobody\n`);
      const build = (version: 'cap' | 'nocap') => portableService({ pname: 'capsrv', version, units: [path.join(work, 'capsrv.service')], outDir: path.join(work, 'out') });
      assert.equal(spawnSync('setcap', ['cap_net_bind_service+ep', server]).status, 0);
      images.cap = await build('cap');
      assert.equal(spawnSync('setcap', ['-r', server]).status, 0);
      images.nocap = await build('nocap');
      c = await startPortabledContainer({ systemd });
      // With the trusted profile (BindPaths=/run) systemd 257 stages the host's os-release as /run/host/os-release
      // inside the service. In an nspawn container /run/host is nspawn's read-only folder that already holds an
      // os-release, and the start fails (226/NAMESPACE, "File exists"); on a real host there is no /run/host.
      // Make the container's /run look like a host's.
      if (systemd >= 257) await c.exec(['sh', '-c', 'mount -o remount,rw /run/host && umount /run/host/os-release && rm /run/host/os-release']);
      for (const v of ['cap', 'nocap'] as const) await c.copyIn(images[v].image, `/var/lib/portables/capsrv_${v}.raw`);
    });
    after(async () => {
      await c?.stop();
      if (bin) rmSync(bin, { recursive: true, force: true });
      if (work) rmSync(work, { recursive: true, force: true });
    });

    const state = async () => (await c.exec(['systemctl', 'is-active', 'capsrv.service'], { allowFail: true })).stdout.trim();
    /** A journal position to read on from: the log lines after it are this start's only. */
    const cursor = async () => {
      const out = (await c.exec(['journalctl', '--show-cursor', '-n', '1', '-o', 'cat', '--no-pager'], { allowFail: true })).stdout;
      const at = /-- cursor: (\S+)/.exec(out)?.[1];
      assert.ok(at, `journalctl printed no cursor:\n${out}`);
      return at;
    };
    // By the server's identifier, not by _SYSTEMD_INVOCATION_ID: journald reads that from the service's cgroup,
    // which may be gone already when a server that failed at once is logged, and its lines then carry none.
    const journal = async (from: string) =>
      (await c.exec(['journalctl', `--after-cursor=${from}`, '-t', 'capserver', '-o', 'cat', '--no-pager'], { allowFail: true })).stdout;
    /** Until the service answers on the port, or has failed. */
    const outcome = (what: string) => waitFor(what, async () => {
      if ((await state()) === 'failed') return { failed: true, answer: undefined };
      try {
        return { answer: await ask(port, 'hi\n', /\n$/), failed: false };
      } catch {
        return undefined;
      }
    }, 30_000);

    /** Attach with a profile and start, then `during` (its result is returned), then detach. */
    async function attached<T>(image: string, profile: string | undefined, during: () => Promise<T>): Promise<T> {
      const args = ['portablectl', 'attach', '--now', '--runtime', ...(profile ? [`--profile=${profile}`] : []), image];
      const attach = await c.exec(args, { allowFail: true });
      assert.equal(attach.code, 0, `attach failed:\n${attach.stdout}${attach.stderr}`);
      try {
        return await during();
      } finally {
        const detach = await c.exec(['portablectl', 'detach', '--now', '--runtime', image], { allowFail: true });
        assert.equal(detach.code, 0, `detach failed:\n${detach.stdout}${detach.stderr}`);
        await c.exec(['systemctl', 'reset-failed', 'capsrv.service'], { allowFail: true });
      }
    }
    /** The journal of this start, once the server's own last line (bind failed, or listening) has reached it. */
    const serverLog = (from: string) => waitFor('the server\'s lines in the journal', async () => {
      const j = await journal(from);
      return /bind port \d+ as uid|listening/.test(j) ? j : undefined;
    }, 20_000).catch(() => journal(from));
    const run = async (image: string, profile: string | undefined) => {
      const from = await cursor();
      return attached(image, profile, async () => ({ ...(await outcome(`${image} (${profile ?? 'default'}) to answer or fail`)), log: await serverLog(from) }));
    };

    test('the image carries security.capability on the program', async () => {
      const { openImage } = await import('../src/squashfs/read/index.js');
      for (const v of ['cap', 'nocap'] as const) {
        const img = await openImage(images[v].image);
        try {
          const st = await img.stat(path.join(bin, 'capserver'));
          assert.equal('security.capability' in st.xattrs, v === 'cap', v);
        } finally {
          await img.close();
        }
      }
    });

    test('with --profile=trusted the capability lets User=nobody bind a privileged port', async () => {
      const r = await run('capsrv_cap', 'trusted');
      assert.equal(r.failed, false, r.log);
      assert.equal(r.answer, 'uid 65534\n', 'the server runs as nobody');
    });

    test('the same image without the capability fails to bind', async () => {
      const r = await run('capsrv_nocap', 'trusted');
      assert.equal(r.failed, true, `expected a failure, got ${r.answer}`);
      assert.match(r.log, new RegExp(`bind port ${port} as uid 65534: Permission denied`));
    });

    test('under the default profile the capability is ignored: its sandboxing implies NoNewPrivileges=yes', async () => {
      const r = await run('capsrv_cap', undefined);
      assert.equal(r.failed, true, `the default profile let the capability bind port ${port}: README says it does not; got ${r.answer}`);
      assert.match(r.log, new RegExp(`bind port ${port} as uid \\d+: Permission denied`));
      // SystemCallFilter=, RestrictAddressFamilies=, … imply no_new_privs for a service that is not root, and the
      // kernel does not grant file capabilities to an execve under no_new_privs.
      assert.match(r.log, /NoNewPrivs:\s+1/);
      assert.match(r.log, /CapEff:\s+0+\n/);
    });

    test('inspect warns of it under the default profile (the build too), not under trusted, not without the capability', async () => {
      const rule = (problems: { rule: string; message: string }[]) => problems.filter((p) => p.rule === 'file-capabilities-ignored');
      const [warned] = rule(images.cap.problems);
      assert.ok(warned, JSON.stringify(images.cap.problems));
      assert.match(warned.message, new RegExp(`^capsrv\\.service: ${path.join(bin, 'capserver').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} carries file capabilities .* the default profile .*--profile=trusted$`));
      assert.deepEqual(rule(images.nocap.problems), []);
      const { inspectPath } = await import('../src/inspect/index.js');
      assert.deepEqual(rule((await inspectPath(images.cap.image, { profile: 'trusted' })).problems), []);
      assert.equal(rule((await inspectPath(images.cap.image, { profile: 'strict' })).problems).length, 1);
    });
  });
}
