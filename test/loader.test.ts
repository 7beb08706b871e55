// The image's own dynamic loader (issues 10 and 11): trees without /etc/ld.so.conf, laid out as Debian
// (multiarch) and Alpine (musl) lay them out, build and inspect clean and run; images made by another tool
// inspect as the loader sees them; a closure from a host-like tree leaves the host's loader clutter out and
// carries an ld.so cache of its own libraries, which the real loader uses.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { portableService, type BuildResult } from '../src/index.js';
import { inspectPath } from '../src/inspect/index.js';
import { lookupLdCache, parseLdCache } from '../src/formats/ldcache.js';
import { readLdSoConf } from '../src/closure/ldso.js';
import { realpathIn } from '../src/sources/realpath.js';
import { directorySource } from '../src/sources/host.js';
import { hasCommand, IN_CI, isRoot, runCommand, tempDir } from './support/env.js';
import { waitFor } from './support/wait.js';
import { portabledPrerequisites, startPortabledContainer, SYSTEMD_VERSIONS, type PortabledContainer } from './support/portabled.js';

const FAST = 'gzip -Xcompression-level 1';
const MULTIARCH = '/usr/lib/x86_64-linux-gnu';
const MUSL_LIBC = ['/usr/lib/x86_64-linux-musl/libc.so', '/lib/x86_64-linux-musl/libc.so'].find(existsSync);
const LDCONFIG = ['/usr/sbin/ldconfig', '/sbin/ldconfig'].find(existsSync);

const missing = [
  ...(process.arch === 'x64' && existsSync(`${MULTIARCH}/libc.so.6`) ? [] : ['an x86-64 Debian host (multiarch glibc)']),
  ...(hasCommand('gcc') ? [] : ['gcc']),
  ...(hasCommand('musl-gcc') && MUSL_LIBC ? [] : ['musl-gcc (apt-get install musl-tools)']),
  ...(hasCommand('mksquashfs') && hasCommand('unsquashfs') ? [] : ['squashfs-tools']),
  ...(LDCONFIG ? [] : ['ldconfig']),
  ...(isRoot() && existsSync('/dev/loop-control') ? [] : ['root and loop devices (mount -o loop, chroot)']),
];

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: opts.env ?? process.env, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function must(cmd: string, args: string[]): string {
  const r = run(cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const write = (root: string, p: string, text: string | Buffer) => {
  mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
  writeFileSync(path.join(root, p), text);
};

/** A library of the host copied in under its soname, as a package would install it. */
function copyHostLib(root: string, name: string, dir = MULTIARCH): void {
  copyFileSync(realpathSync(path.join(MULTIARCH, name)), path.join(root, dir, name));
}

/**
 * Debian's layout with merged /usr and no /etc/ld.so.conf nor cache: glibc and zlib in the multiarch folder,
 * a library of our own in /usr/lib (glibc's last system directory on Debian, and not a multiarch one).
 */
function glibcTree(root: string, c: string): void {
  for (const d of ['usr/bin', MULTIARCH.slice(1), 'usr/lib64', 'etc']) mkdirSync(path.join(root, d), { recursive: true });
  symlinkSync('usr/bin', path.join(root, 'bin'));
  symlinkSync('usr/lib', path.join(root, 'lib'));
  symlinkSync('usr/lib64', path.join(root, 'lib64'));
  symlinkSync('../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', path.join(root, 'usr/lib64/ld-linux-x86-64.so.2'));
  for (const lib of ['ld-linux-x86-64.so.2', 'libc.so.6', 'libz.so.1']) copyHostLib(root, lib);
  writeFileSync(path.join(c, 'greet.c'), '#include <stdio.h>\nvoid greet(const char *who){printf("hello from %s\\n", who);}\n');
  writeFileSync(path.join(c, 'hello.c'), '#include <zlib.h>\nvoid greet(const char *);\nint main(void){greet(zlibVersion()[0] ? "glibc" : "?");return 0;}\n');
  must('gcc', ['-shared', '-fPIC', '-o', path.join(root, 'usr/lib/libgreet.so.1'), '-Wl,-soname,libgreet.so.1', path.join(c, 'greet.c')]);
  must('gcc', ['-o', path.join(root, 'usr/bin/hello'), path.join(c, 'hello.c'), `-L${path.join(root, 'usr/lib')}`, '-l:libgreet.so.1', '-lz']);
  write(root, 'etc/os-release', 'ID=debian\nVERSION_ID=12\n');
}

/**
 * Alpine's layout: musl's libc is the loader at /lib/ld-musl-x86_64.so.1, libraries in /usr/lib (musl's
 * default path), and one in /opt/greet/lib that only the path file /etc/ld-musl-x86_64.path makes visible.
 */
function muslTree(root: string, c: string, pathFile: boolean): void {
  for (const d of ['lib', 'usr/bin', 'usr/lib', 'opt/greet/lib', 'etc']) mkdirSync(path.join(root, d), { recursive: true });
  copyFileSync(MUSL_LIBC!, path.join(root, 'lib/ld-musl-x86_64.so.1'));
  symlinkSync('ld-musl-x86_64.so.1', path.join(root, 'lib/libc.musl-x86_64.so.1'));
  writeFileSync(path.join(c, 'mgreet.c'), '#include <stdio.h>\nvoid greet(const char *who){printf("hello from %s\\n", who);}\n');
  writeFileSync(path.join(c, 'mhello.c'), 'void greet(const char *);\nint main(void){greet("musl");return 0;}\n');
  must('musl-gcc', ['-shared', '-fPIC', '-o', path.join(root, 'usr/lib/libgreet.so.1'), '-Wl,-soname,libgreet.so.1', path.join(c, 'mgreet.c')]);
  must('musl-gcc', ['-shared', '-fPIC', '-o', path.join(root, 'opt/greet/lib/libgreet2.so.1'), '-Wl,-soname,libgreet2.so.1', path.join(c, 'mgreet.c')]);
  must('musl-gcc', ['-o', path.join(root, 'usr/bin/mhello'), path.join(c, 'mhello.c'), `-L${path.join(root, 'usr/lib')}`, '-l:libgreet.so.1']);
  must('musl-gcc', ['-o', path.join(root, 'usr/bin/mhello2'), path.join(c, 'mhello.c'), `-L${path.join(root, 'opt/greet/lib')}`, '-l:libgreet2.so.1']);
  if (pathFile) write(root, 'etc/ld-musl-x86_64.path', '/opt/greet/lib\n/lib:/usr/lib\n');
  write(root, 'etc/os-release', 'ID=alpine\nVERSION_ID=3.20.0\n');
}

/** The same tree as a portable image made by another tool: the portable skeleton by hand, then mksquashfs. */
function foreignImage(tree: string, work: string, unit: { name: string; text: string }, image: string): void {
  const stage = path.join(work, `stage-${path.basename(image)}`);
  must('cp', ['-a', tree, stage]);
  write(stage, `etc/systemd/system/${unit.name}`, unit.text);
  for (const d of ['proc', 'sys', 'dev', 'run', 'tmp', 'var/tmp']) mkdirSync(path.join(stage, d), { recursive: true });
  for (const f of ['etc/machine-id', 'etc/resolv.conf']) write(stage, f, '');
  must('mksquashfs', [stage, image, '-all-root', '-noappend', '-quiet', '-comp', 'gzip']);
  rmSync(stage, { recursive: true, force: true });
}

async function mounted<T>(image: string, work: string, fn: (mnt: string) => Promise<T>): Promise<T> {
  const mnt = path.join(work, `mnt-${path.basename(image)}`);
  mkdirSync(mnt, { recursive: true });
  must('mount', ['-t', 'squashfs', '-o', 'loop,ro', image, mnt]);
  try {
    return await fn(mnt);
  } finally {
    must('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
}

/**
 * Runs a program in a chroot of the mounted image with LD_DEBUG=libs; returns its output and the loader's
 * trace for the program alone (chroot itself is dynamically linked and traces its own start first).
 */
function chrootRun(mnt: string, argv: string[]): { code: number; stdout: string; trace: string } {
  const r = run('chroot', [mnt, ...argv], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LD_DEBUG: 'libs' } });
  const marker = r.stderr.indexOf('transferring control: chroot');
  return { code: r.code, stdout: r.stdout, trace: marker >= 0 ? r.stderr.slice(marker) : r.stderr };
}

/** "find library=NAME" → the file the loader ended up opening (the last "trying file=" before the next search). */
function tracedLoads(trace: string): Map<string, { from: string; file: string }> {
  const out = new Map<string, { from: string; file: string }>();
  const blocks = trace.split(/find library=/).slice(1);
  for (const b of blocks) {
    const name = /^(\S+)/.exec(b)![1];
    const tries = [...b.matchAll(/trying file=(\S+)/g)].map((m) => m[1]);
    // Without a cache (or a hit in it) the loader goes on to "search path=…"; a cache hit opens one file.
    const from = /search path=/.test(b) ? 'path' : /search cache=/.test(b) && tries.length === 1 ? 'cache' : 'other';
    if (tries.length) out.set(name, { from, file: tries[tries.length - 1] });
  }
  return out;
}

const unitOf = (name: string, execs: string[]) => ({
  name: `${name}.service`,
  text: `[Unit]\nDescription=${name}\n[Service]\nType=oneshot\nRemainAfterExit=yes\n${execs.map((e) => `ExecStart=${e}\n`).join('')}`,
});

async function build(name: string, from: string, units: ReturnType<typeof unitOf>[], out: string, extra: Record<string, unknown> = {}): Promise<BuildResult> {
  return portableService({ pname: name, version: '1', units, from, outDir: out, squashCompression: FAST, ...extra });
}

if (missing.length && !IN_CI) {
  test('the image\'s own loader (glibc and musl trees, ld.so cache)', { skip: `prerequisites missing: ${missing.join('; ')}` }, () => {});
} else {
  describe('the image\'s own loader', { timeout: 15 * 60_000 }, () => {
    let work: string;
    let gtree: string, mtree: string, mtreeNoPath: string, htree: string;
    const images: Record<string, string> = {};
    before(() => {
      if (missing.length) throw new Error(`prerequisite missing in CI: ${missing.join('; ')}`);
      work = tempDir('mkp-loader-');
      const c = path.join(work, 'c');
      mkdirSync(c);
      glibcTree((gtree = path.join(work, 'glibc-root')), c);
      muslTree((mtree = path.join(work, 'musl-root')), c, true);
      muslTree((mtreeNoPath = path.join(work, 'musl-root-nopath')), c, false);
      htree = path.join(work, 'host-like-root');
    });
    after(() => {
      if (work) rmSync(work, { recursive: true, force: true });
    });

    test('glibc, Debian multiarch, no ld.so.conf: an image made by another tool inspects clean', async () => {
      const image = path.join(work, 'gforeign_1.raw');
      foreignImage(gtree, work, unitOf('gforeign', ['/usr/bin/hello']), image);
      const report = await inspectPath(image);
      assert.deepEqual(report.problems, [], JSON.stringify(report.problems));
      assert.deepEqual(report.units.gforeign, ['gforeign.service']);
    });

    for (const closure of ['minimal', 'full'] as const) {
      test(`glibc, Debian multiarch, no ld.so.conf: dir: with closure ${closure} builds, inspects clean and runs`, async () => {
        const r = await build('gt', `dir:${gtree}`, [unitOf('gt', ['/usr/bin/hello'])], path.join(work, `gt-${closure}`), { closure });
        images[`glibc-${closure}`] = r.image;
        const paths = new Set(r.files.map((f) => f.path));
        for (const p of ['/usr/bin/hello', '/usr/lib/libgreet.so.1', `${MULTIARCH}/libz.so.1`, `${MULTIARCH}/libc.so.6`, '/lib64', '/usr/lib64/ld-linux-x86-64.so.2']) assert.ok(paths.has(p), p);
        assert.ok(!paths.has('/etc/ld.so.conf'), 'the tree has no ld.so.conf and gets none');
        assert.deepEqual((await inspectPath(r.image)).problems, []);
        await mounted(r.image, work, async (mnt) => {
          // minimal: the cache mkportable writes; full: the rootfs as it is, which has none, so the loader's
          // system directories (read out of its ld.so) must do.
          const cacheFile = path.join(mnt, 'etc/ld.so.cache');
          assert.equal(existsSync(cacheFile), closure === 'minimal');
          if (closure === 'minimal') {
            const cache = parseLdCache(readFileSync(cacheFile), 'ld.so.cache');
            assert.equal(cache.generator, 'mkportable');
            assert.equal(lookupLdCache(cache, 'libgreet.so.1', 0x303), '/usr/lib/libgreet.so.1');
          }
          const got = chrootRun(mnt, ['/usr/bin/hello']);
          assert.equal(got.code, 0, got.trace);
          assert.equal(got.stdout, 'hello from glibc\n');
          const loads = tracedLoads(got.trace);
          assert.deepEqual([...loads.keys()].sort(), ['libc.so.6', 'libgreet.so.1', 'libz.so.1']);
          const via = closure === 'minimal' ? 'cache' : 'path';
          for (const [name, l] of loads) assert.equal(l.from, via, `${name} came from ${l.from}: ${got.trace}`);
        });
      });
    }

    test('musl, Alpine layout: an image made by another tool is judged by musl\'s rules', async () => {
      const unit = unitOf('mforeign', ['/usr/bin/mhello', '/usr/bin/mhello2']);
      const withPath = path.join(work, 'mforeign_1.raw');
      foreignImage(mtree, work, unit, withPath);
      assert.deepEqual((await inspectPath(withPath)).problems, []);
      // Without the path file musl searches only /lib:/usr/local/lib:/usr/lib, so libgreet2 is not found.
      const noPath = path.join(work, 'nopath', 'mforeign_1.raw');
      mkdirSync(path.dirname(noPath));
      foreignImage(mtreeNoPath, work, unit, noPath);
      const problems = (await inspectPath(noPath)).problems;
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.equal(problems[0].rule, 'library-missing');
      assert.match(problems[0].message, /libgreet2\.so\.1.*musl's built-in default \(no \/etc\/ld-musl-x86_64\.path\)/);
      await mounted(noPath, work, async (mnt) => {
        const r = run('chroot', [mnt, '/usr/bin/mhello2']);
        assert.notEqual(r.code, 0, 'the real loader agrees: libgreet2 is not found');
        assert.match(r.stderr, /libgreet2\.so\.1/);
      });
    });

    test('musl, Alpine layout: dir: builds, inspects clean, carries the path file and runs in a chroot', async () => {
      const r = await build('mt', `dir:${mtree}`, [unitOf('mt', ['/usr/bin/mhello', '/usr/bin/mhello2'])], path.join(work, 'mt'), { closure: 'minimal' });
      images.musl = r.image;
      const paths = new Set(r.files.map((f) => f.path));
      for (const p of ['/lib/ld-musl-x86_64.so.1', '/usr/lib/libgreet.so.1', '/opt/greet/lib/libgreet2.so.1', '/etc/ld-musl-x86_64.path']) assert.ok(paths.has(p), p);
      assert.ok(!paths.has('/etc/ld.so.cache'), 'no glibc program: no glibc cache');
      assert.ok(!paths.has('/lib/libc.musl-x86_64.so.1'), 'libc.so is the loader itself: nothing else is needed');
      assert.deepEqual((await inspectPath(r.image)).problems, []);
      await mounted(r.image, work, async (mnt) => {
        for (const prog of ['/usr/bin/mhello', '/usr/bin/mhello2']) {
          const got = run('chroot', [mnt, prog]);
          assert.equal(got.code, 0, got.stderr);
          assert.equal(got.stdout, 'hello from musl\n');
        }
      });
    });

    test('from a host-like tree: ld.so.conf.d pieces for folders the image lacks stay out; the cache describes the image', async () => {
      glibcTree(htree, path.join(work, 'c'));
      // What a build host has: pieces for fakeroot and CUDA, /usr/local, and a cache of all its libraries.
      write(htree, 'etc/ld.so.conf', 'include /etc/ld.so.conf.d/*.conf\n');
      write(htree, 'etc/ld.so.conf.d/fakeroot-x86_64-linux-gnu.conf', `${MULTIARCH}/libfakeroot\n`);
      write(htree, `${MULTIARCH}/libfakeroot/libfakeroot-sysv.so`, 'not needed\n');
      write(htree, 'etc/ld.so.conf.d/zz-cuda-13-0.conf', '/usr/local/cuda-13.0/targets/x86_64-linux/lib\n');
      write(htree, 'etc/ld.so.conf.d/libc.conf', '# libc default configuration\n/usr/local/lib\n');
      write(htree, 'etc/ld.so.conf.d/x86_64-linux-gnu.conf', `/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n${MULTIARCH}\n`);
      write(htree, 'etc/ld.so.conf.d/app.conf', '/opt/app/lib\n');
      write(htree, 'etc/ld.so.conf.d/app.conf.dpkg-old', '/opt/app/lib\n'); // not matched by the include glob
      if (existsSync('/etc/ld.so.cache')) copyFileSync('/etc/ld.so.cache', path.join(htree, 'etc/ld.so.cache'));
      // An app whose library only ld.so.conf (through the cache) makes visible.
      const c = path.join(work, 'c');
      mkdirSync(path.join(htree, 'opt/app/bin'), { recursive: true });
      mkdirSync(path.join(htree, 'opt/app/lib'), { recursive: true });
      must('gcc', ['-shared', '-fPIC', '-o', path.join(htree, 'opt/app/lib/libapp.so.1.0'), '-Wl,-soname,libapp.so.1', path.join(c, 'greet.c')]);
      symlinkSync('libapp.so.1.0', path.join(htree, 'opt/app/lib/libapp.so.1'));
      writeFileSync(path.join(c, 'app.c'), 'void greet(const char *);\nint main(void){greet("the app");return 0;}\n');
      must('gcc', ['-o', path.join(htree, 'opt/app/bin/app'), path.join(c, 'app.c'), `-L${path.join(htree, 'opt/app/lib')}`, '-l:libapp.so.1']);

      const r = await build('happ', `dir:${htree}`, [unitOf('happ', ['/opt/app/bin/app', '/usr/bin/hello'])], path.join(work, 'happ'), { closure: 'minimal' });
      images.host = r.image;
      const conf = r.files.map((f) => f.path).filter((p) => p.startsWith('/etc/ld.so.conf'));
      assert.deepEqual(conf, ['/etc/ld.so.conf', '/etc/ld.so.conf.d', '/etc/ld.so.conf.d/app.conf', '/etc/ld.so.conf.d/x86_64-linux-gnu.conf']);
      assert.equal(r.files.find((f) => f.path === '/etc/ld.so.cache')?.origin, 'generated');

      await mounted(r.image, work, async (mnt) => {
        const ours = parseLdCache(readFileSync(path.join(mnt, 'etc/ld.so.cache')), 'ours');
        // Every entry names a library the image has, and nothing of the host's 500-odd libraries is left.
        for (const e of ours.entries) assert.ok(existsSync(path.join(mnt, e.value)), e.value);
        assert.ok(ours.entries.length < 20, `${ours.entries.length} entries`);
        // ldconfig, run on a copy of the image, finds the same libraries for every name it lists.
        const copy = path.join(work, 'happ-copy');
        must('unsquashfs', ['-no-xattrs', '-q', '-d', copy, r.image]);
        must(LDCONFIG!, ['-X', '-r', copy, '-C', '/etc/ref.cache']);
        const theirs = parseLdCache(readFileSync(path.join(copy, 'etc/ref.cache')), 'ldconfig');
        const inCopy = directorySource(copy);
        assert.ok(theirs.entries.length >= 5);
        for (const e of theirs.entries) {
          const mine = lookupLdCache(ours, e.key, e.flags);
          assert.ok(mine, `ldconfig lists ${e.key}; we do not`);
          assert.equal(await realpathIn(inCopy, mine), await realpathIn(inCopy, lookupLdCache(theirs, e.key, e.flags)!), e.key);
        }
        assert.equal(lookupLdCache(ours, 'libapp.so.1', 0x303), '/opt/app/lib/libapp.so.1');
        // ldconfig -p reads our file as glibc's own tool.
        assert.match(must(LDCONFIG!, ['-p', '-C', path.join(mnt, 'etc/ld.so.cache')]), /libapp\.so\.1 \(libc6,x86-64\) => \/opt\/app\/lib\/libapp\.so\.1/);
        // The real loader: libapp.so.1 comes from the cache (no system directory has it), and so does the rest.
        for (const prog of ['/opt/app/bin/app', '/usr/bin/hello']) {
          const got = chrootRun(mnt, [prog]);
          assert.equal(got.code, 0, got.trace);
          for (const [name, l] of tracedLoads(got.trace)) assert.equal(l.from, 'cache', `${prog}: ${name} came from ${l.from}`);
        }
        assert.equal(tracedLoads(chrootRun(mnt, ['/opt/app/bin/app']).trace).get('libapp.so.1')?.file, '/opt/app/lib/libapp.so.1');
        rmSync(copy, { recursive: true, force: true });
      });
    });

    test('from the build host itself: every ld.so.conf.d piece in the image names a folder the image has, and the cache only its files', async () => {
      const r = await portableService({
        pname: 'hls', version: '1', units: [unitOf('hls', ['/usr/bin/ls /'])], outDir: path.join(work, 'hls'), squashCompression: FAST,
      });
      await mounted(r.image, work, async (mnt) => {
        const image = directorySource(mnt);
        const confD = path.join(mnt, 'etc/ld.so.conf.d');
        for (const piece of existsSync(confD) ? readdirSync(confD) : []) {
          const dirs = await readLdSoConf(image, `/etc/ld.so.conf.d/${piece}`);
          const withContent = dirs.filter((d) => existsSync(path.join(mnt, d)) && readdirSync(path.join(mnt, d)).length > 0);
          assert.ok(withContent.length > 0, `${piece} names only ${dirs.join(', ')}, which the image lacks`);
        }
        if (existsSync('/etc/ld.so.conf.d/fakeroot-x86_64-linux-gnu.conf')) assert.ok(!existsSync(path.join(confD, 'fakeroot-x86_64-linux-gnu.conf')));
        const cache = parseLdCache(readFileSync(path.join(mnt, 'etc/ld.so.cache')), 'cache');
        for (const e of cache.entries) assert.ok(existsSync(path.join(mnt, e.value)), e.value);
        const got = chrootRun(mnt, ['/usr/bin/ls', '/']);
        assert.equal(got.code, 0, got.trace);
      });
    });

    for (const systemd of SYSTEMD_VERSIONS) {
      const portabled = portabledPrerequisites({ systemd });
      describe(`on real systemd-portabled ${systemd}`, { skip: !portabled.ok && !IN_CI ? `portabled harness: ${portabled.reason}` : false }, () => {
        let c: PortabledContainer;
        before(async () => {
          if (!portabled.ok) throw new Error(`prerequisite missing in CI: ${portabled.reason}`);
          c = await startPortabledContainer({ systemd });
        });
        after(async () => {
          await c?.stop();
        });

        const cases = [
          ['the glibc tree without ld.so.conf', 'glibc-minimal', 'gt', ['hello from glibc']],
          ['the musl tree', 'musl', 'mt', ['hello from musl', 'hello from musl']],
        ] as const;
        for (const [what, key, name, lines] of cases) {
          test(`${what} runs`, async () => {
            const image = images[key];
            assert.ok(image, 'built by an earlier test');
            await c.copyIn(image, `/var/lib/portables/${name}_1.raw`);
            const attach = await c.exec(['portablectl', 'attach', '--now', '--runtime', `${name}_1`], { allowFail: true });
            assert.equal(attach.code, 0, `attach failed:\n${attach.stdout}${attach.stderr}`);
            await waitFor(`${name}.service done`, async () => {
              const state = (await c.exec(['systemctl', 'show', '-P', 'ActiveState', `${name}.service`], { allowFail: true })).stdout.trim();
              return state === 'active' || state === 'failed' ? state : undefined;
            });
            const result = (await c.exec(['systemctl', 'show', '-P', 'Result', `${name}.service`])).stdout.trim();
            const log = (await c.exec(['journalctl', '-u', `${name}.service`, '-o', 'cat', '--no-pager'], { allowFail: true })).stdout;
            assert.equal(result, 'success', log);
            assert.deepEqual(log.split('\n').filter((l) => l.startsWith('hello from')), [...lines]);
            const detach = await c.exec(['portablectl', 'detach', '--now', '--runtime', `${name}_1`], { allowFail: true });
            assert.equal(detach.code, 0, `detach failed:\n${detach.stdout}${detach.stderr}`);
          });
        }
      });
    }
  });
}
