// Building from container images and rootfs tarballs (issue 6).
//
// 1. Hostile rootfs tarballs, written with our own tar writer, through whole builds: each is refused with its
//    error code or handled as documented, and nothing is written anywhere but the output folder.
// 2. Real images: umoci builds an OCI layout from a Debian rootfs in three layers (deleted files, a replaced folder,
//    an opaque folder, hard links across layers, owners, setuid, xattrs, a fifo, devices, memcached from the host);
//    skopeo converts it to docker-archive and oci-archive. mkportable's image, loop-mounted, matches `umoci unpack`
//    (content, owners, modes, links, devices, xattrs); all three sources give the same bytes; the minimal closure
//    holds only what memcached needs. Both images run memcached on real systemd-portabled.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, copyFileSync, appendFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { portableService, MkportableError, type BuildResult } from '../src/index.js';
import { encodeTar, type TarWriteEntry } from './support/tar.js';
import { openImage } from '../src/squashfs/read/index.js';
import { hasCommand, IN_CI, isRoot, tempDir } from './support/env.js';
import { ask, waitFor } from './support/wait.js';
import { ensurePortabledRootfs, portabledPrerequisites, startPortabledContainer, type PortabledContainer } from './support/portabled.js';

const FAST = 'gzip -Xcompression-level 1';

describe('hostile rootfs tarballs through whole builds', () => {
  let dir: string;
  before(() => {
    dir = tempDir('mkp-hostile-');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const unit = { name: 'h.service', text: '[Service]\nExecStart=/bin/true\n' };
  const base: TarWriteEntry[] = [{ name: 'bin/', type: 'dir' }, { name: 'bin/true', type: 'file', mode: 0o755, data: '#!/bin/true\n' }];
  let n = 0;
  async function build(entries: TarWriteEntry[], extra: Record<string, unknown> = {}, gzip = false): Promise<{ result?: BuildResult; error?: MkportableError; out: string }> {
    const file = path.join(dir, `t${n++}.tar${gzip ? '.gz' : ''}`);
    const tar = encodeTar([...base, ...entries]);
    writeFileSync(file, gzip ? zlib.gzipSync(tar) : tar);
    const out = path.join(dir, `out${n}`);
    try {
      const result = await portableService({ pname: 'h', version: '1', units: [unit], from: `tar:${file}`, outDir: out, squashCompression: FAST, ...extra });
      return { result, out };
    } catch (e) {
      if (!(e instanceof MkportableError)) throw e;
      // A refused build leaves nothing behind: no image, no temporary file.
      assert.deepEqual(existsSync(out) ? readdirSync(out) : [], [], 'a failed build writes nothing');
      return { error: e, out };
    }
  }

  test('each hostile entry is refused with a clear error, or kept inside the rootfs', async () => {
    const marker = path.join(dir, 'escaped');
    const refusals: [string, TarWriteEntry[], string, RegExp, Record<string, unknown>?][] = [
      ['.. in a name', [{ name: `../../../../${marker}`, type: 'file' }], 'ARCHIVE_INVALID', /'\.\.' component/],
      ['.. in the middle', [{ name: 'a/b/../../../x', type: 'file' }], 'ARCHIVE_INVALID', /'\.\.' component/],
      ['hard link out of the rootfs', [{ name: 'h', type: 'hardlink', linkname: '../../../../etc/shadow' }], 'ARCHIVE_INVALID', /'\.\.' component/],
      ['hard link to nothing', [{ name: 'h', type: 'hardlink', linkname: 'etc/shadow' }], 'ARCHIVE_INVALID', /not in the rootfs/],
      ['device refused', [{ name: 'dev/sda', type: 'block', devmajor: 8, devminor: 0 }], 'DEVICE_REFUSED', /block device 8:0, and allowDevices is false/, { allowDevices: false }],
      ['file used as a folder', [{ name: 'bin/true/x', type: 'file' }], 'ARCHIVE_INVALID', /is a file, not a directory/],
      ['sparse file', [{ name: 's', type: 'file', pax: { 'GNU.sparse.size': '10' } }], 'ARCHIVE_INVALID', /sparse/],
      ['symlink loop as a parent', [{ name: 'a', type: 'symlink', linkname: 'b' }, { name: 'b', type: 'symlink', linkname: 'a' }, { name: 'a/x', type: 'file' }], 'ARCHIVE_INVALID', /too many levels/],
    ];
    for (const [what, entries, code, pattern, extra] of refusals) {
      const { error } = await build(entries, extra);
      assert.ok(error, `${what}: the build should fail`);
      assert.equal(error.code, code, `${what}: ${error.message}`);
      assert.match(error.message, pattern, what);
      assert.match(error.message, /^tar:/, `${what}: the message names the archive`);
    }
    // Truncated and corrupt archives (plain and gzip).
    const good = encodeTar([...base, { name: 'big', type: 'file', data: 'x'.repeat(5000) }]);
    const trunc = path.join(dir, 'trunc.tar');
    writeFileSync(trunc, good.subarray(0, 3000));
    await assert.rejects(portableService({ pname: 'h', version: '1', units: [unit], from: `tar:${trunc}`, outDir: path.join(dir, 'o1') }), /truncated/);
    const gz = zlib.gzipSync(good);
    writeFileSync(trunc, gz.subarray(0, gz.length - 10));
    await assert.rejects(portableService({ pname: 'h', version: '1', units: [unit], from: `tar:${trunc}`, outDir: path.join(dir, 'o2') }), /does not decompress|truncated|unexpected end/);
    assert.equal(existsSync(marker), false, 'nothing was written outside the output folder');
  });

  test('documented handling: absolute names, escaping symlinks, duplicates, devices kept by default', async () => {
    const { result, out } = await build([
      { name: '/etc/abs', type: 'file', data: 'absolute names are taken inside the rootfs' },
      { name: 'up', type: 'symlink', linkname: '../../../../../..' + dir },
      { name: 'up/escaped', type: 'file', data: 'lands inside, under the link target' },
      { name: 'etc/dup', type: 'file', data: 'first' },
      { name: 'etc/dup', type: 'file', data: 'last wins', mode: 0o600 },
      { name: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
    ], {}, true);
    assert.ok(result, 'the build succeeds');
    assert.equal(existsSync(path.join(dir, 'escaped')), false, 'nothing was written through the symlink on the build host');
    const img = await openImage(result.image);
    try {
      const text = async (p: string) => Buffer.from(await img.readFile(p)).toString();
      assert.equal(await text('/etc/abs'), 'absolute names are taken inside the rootfs');
      assert.equal(await text(`${dir}/escaped`), 'lands inside, under the link target');
      assert.equal(await text('/etc/dup'), 'last wins');
      assert.equal((await img.stat('/etc/dup')).mode & 0o7777, 0o600);
      const dev = await img.stat('/dev/null');
      assert.equal(dev.type, 'char');
      assert.deepEqual([dev.major, dev.minor], [1, 3]);
    } finally {
      await img.close();
    }
    assert.deepEqual(readdirSync(out), ['h_1.raw']);
  });
});

test('dir: absolute symlinks resolve inside the folder, never on the build host', async () => {
  const root = tempDir('mkp-dir-');
  try {
    mkdirSync(path.join(root, 'usr/lib'), { recursive: true });
    mkdirSync(path.join(root, 'etc'));
    mkdirSync(path.join(root, 'bin'));
    writeFileSync(path.join(root, 'usr/lib/os-release'), 'ID=inside\nVERSION_ID=7\n');
    symlinkSync('/usr/lib/os-release', path.join(root, 'etc/os-release')); // on the host this is the host's file
    writeFileSync(path.join(root, 'bin/true'), '#!/bin/true\n', { mode: 0o755 });
    const r = await portableService({
      pname: 'd', version: '1', units: [{ name: 'd.service', text: '[Service]\nExecStart=/bin/true\n' }],
      from: `dir:${root}`, closure: 'minimal', outDir: path.join(root, 'out'), squashCompression: FAST,
    });
    assert.equal(r.osRelease.ID, 'inside');
    assert.equal(r.osRelease.VERSION_ID, '7');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------------------

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** One line per path: type, mode, owner, content hash or link target or device, hard-link siblings, xattrs. */
function dumpTree(root: string, skip: Set<string>, withXattrs = true): Map<string, string> {
  const out = new Map<string, string>();
  const inodes = new Map<number, string[]>();
  const xattrs = new Map<string, string>();
  // getfattr: "# file: PATH" then "name=0xHEX" lines (no dereferencing, every namespace).
  let current = '';
  for (const line of withXattrs ? sh('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root]).split('\n') : []) {
    if (line.startsWith('# file: ')) current = '/' + path.relative(root, line.slice(8));
    // squashfs stores user., trusted. and security. only: POSIX ACLs (system.posix_acl_*) are left out, as documented.
    else if (line.includes('=') && !line.startsWith('system.')) xattrs.set(current, [xattrs.get(current), line].filter(Boolean).sort().join(' '));
  }
  const walk = (rel: string) => {
    const full = path.join(root, rel);
    const st = lstatSync(full);
    const p = rel === '' ? '/' : rel;
    if (!skip.has(p)) {
      const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'socket';
      let what = '';
      if (type === 'file') what = createHash('sha256').update(readFileSync(full)).digest('hex').slice(0, 16);
      if (type === 'symlink') what = '-> ' + readlinkSync(full);
      if (type === 'char' || type === 'block') what = `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`;
      if (type !== 'dir' && st.nlink > 1) {
        const list = inodes.get(st.ino) ?? [];
        list.push(p);
        inodes.set(st.ino, list);
      }
      out.set(p, `${type} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${what} ${xattrs.get(p) ?? ''}`.trim());
    }
    if (st.isDirectory()) for (const name of readdirSync(full).sort()) walk(`${rel}/${name}`);
  };
  walk('');
  for (const names of inodes.values()) for (const p of names) out.set(p, `${out.get(p)} links=${names.sort().join(',')}`);
  return out;
}

function diffTrees(want: Map<string, string>, got: Map<string, string>): string[] {
  const problems: string[] = [];
  for (const [p, w] of want) if (got.get(p) !== w) problems.push(`${p}: want ${w}, got ${got.get(p) ?? 'nothing'}`);
  for (const p of got.keys()) if (!want.has(p)) problems.push(`${p}: only in mkportable's image (${got.get(p)})`);
  return problems;
}



const portabled = portabledPrerequisites();
const tools = ['umoci', 'skopeo', 'getfattr', 'setfattr', 'memcached', 'mknod'].filter((c) => !hasCommand(c));
const missing = [
  ...(tools.length ? [`missing commands: ${tools.join(', ')} (apt-get install umoci skopeo attr memcached)`] : []),
  ...(isRoot() ? [] : ['needs root (umoci unpack keeps owners; mount -o loop)']),
  ...(existsSync('/dev/loop-control') ? [] : ['no /dev/loop-control']),
  ...(portabled.ok ? [] : [`portabled harness: ${portabled.reason}`]),
];

if (missing.length && !IN_CI) {
  test('container images (umoci, skopeo, systemd-portabled)', { skip: `prerequisites missing: ${missing.join('; ')}` }, () => {});
} else {
  describe('container images made by umoci and skopeo', { timeout: 10 * 60_000 }, () => {
    let work: string;
    let layout: string;
    let expected: string;
    const port = { full: 11313, minimal: 11312 };
    const images: Record<string, BuildResult> = {};
    const mounts: string[] = [];

    before(async () => {
      if (missing.length) throw new Error(`prerequisite missing in CI: ${missing.join('; ')}`);
      work = tempDir('mkp-oci-');
      layout = path.join(work, 'layout');
      const bundle = path.join(work, 'bundle');
      const rootfs = path.join(bundle, 'rootfs');
      const base = await ensurePortabledRootfs();

      sh('umoci', ['init', '--layout', layout]);
      sh('umoci', ['new', '--image', `${layout}:base`]);
      sh('umoci', ['unpack', '--image', `${layout}:base`, bundle]);
      // Layer 1: a Debian 12 rootfs (setuid programs, hard links, devices, symlinks).
      sh('cp', ['-a', `${base}/.`, `${rootfs}/`]);
      sh('umoci', ['repack', '--refresh-bundle', '--image', `${layout}:v1`, bundle]);

      // Layer 2: deletions (whiteouts), a replaced folder, owners, xattrs, a fifo, a device, memcached from the host.
      rmSync(path.join(rootfs, 'etc/motd'), { force: true });
      rmSync(path.join(rootfs, 'usr/bin/perl5.36.0')); // a hard link of /usr/bin/perl in layer 1
      rmSync(path.join(rootfs, 'usr/share/common-licenses'), { recursive: true });
      mkdirSync(path.join(rootfs, 'usr/share/common-licenses'));
      writeFileSync(path.join(rootfs, 'usr/share/common-licenses/NEW'), 'replaced folder\n');
      const app = path.join(rootfs, 'srv/app');
      mkdirSync(app, { recursive: true });
      writeFileSync(path.join(app, 'x'), 'owned by 1234, with xattrs\n', { mode: 0o640 });
      sh('setfattr', ['-n', 'user.note', '-v', 'hello', path.join(app, 'x')]);
      sh('ln', [path.join(app, 'x'), path.join(app, 'x2')]);
      copyFileSync(path.join(rootfs, 'usr/bin/dash'), path.join(app, 'suid'));
      sh('mkfifo', [path.join(app, 'fifo')]);
      sh('mknod', [path.join(app, 'zero'), 'c', '1', '5']);
      sh('chown', ['-R', '1234:1234', app]);
      sh('chown', ['0:0', path.join(app, 'suid'), path.join(app, 'zero')]);
      // After chown, which clears setuid bits and file capabilities.
      sh('chmod', ['4755', path.join(app, 'suid')]);
      sh('setfattr', ['-n', 'security.capability', '-v', '0x0100000200200000000000000000000000000000', path.join(app, 'x')]);
      appendFileSync(path.join(rootfs, 'etc/passwd'), 'mcuser:x:1234:1234::/nonexistent:/usr/sbin/nologin\n');
      appendFileSync(path.join(rootfs, 'etc/group'), 'mcuser:x:1234:\n');
      copyFileSync('/usr/bin/memcached', path.join(rootfs, 'usr/bin/memcached'));
      sh('chmod', ['755', path.join(rootfs, 'usr/bin/memcached')]);
      for (const line of sh('ldd', ['/usr/bin/memcached']).split('\n')) {
        const lib = /=> (\/\S+)/.exec(line)?.[1];
        const dest = lib && path.join(rootfs, 'usr/lib/x86_64-linux-gnu', path.basename(lib));
        if (dest && !existsSync(dest)) copyFileSync(lib, dest);
      }
      sh('umoci', ['repack', '--refresh-bundle', '--image', `${layout}:v2`, bundle]);

      // Layer 3, written by our tar writer: an opaque folder, a deleted folder, a hard link into a lower layer.
      const layer3 = path.join(work, 'layer3.tar');
      writeFileSync(layer3, encodeTar([
        { name: 'usr/share/base-passwd/', type: 'dir', mode: 0o755 },
        { name: 'usr/share/base-passwd/.wh..wh..opq', type: 'file' },
        { name: 'usr/share/base-passwd/only-this', type: 'file', data: 'opaque folder\n', mode: 0o644 },
        { name: 'usr/share/.wh.bug', type: 'file' },
        { name: 'srv/app/x3', type: 'hardlink', linkname: 'srv/app/x' },
      ]));
      sh('umoci', ['raw', 'add-layer', '--image', `${layout}:v2`, '--tag', 'v3', layer3]);
      sh('umoci', ['config', '--image', `${layout}:v3`, '--tag', 'v3',
        '--config.entrypoint', 'memcached',
        ...['--port=11312', '--listen=127.0.0.1', '--udp-port=0', '--memory-limit=16'].flatMap((a) => ['--config.cmd', a]),
        '--config.env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '--config.env', 'GREETING=50% off "$HOME" \\o/',
        '--config.workingdir', '/srv/app',
        '--config.user', 'mcuser:mcuser',
      ]);
      // What the reference tool makes of it.
      expected = path.join(work, 'expected');
      sh('umoci', ['unpack', '--image', `${layout}:v3`, expected]);
      sh('skopeo', ['--insecure-policy', 'copy', `oci:${layout}:v3`, `docker-archive:${work}/docker.tar:mkp/memcached:v3`]);
      sh('skopeo', ['--insecure-policy', 'copy', `oci:${layout}:v3`, `oci-archive:${work}/oci.tar:v3`]);
    });

    after(async () => {
      for (const m of mounts) spawnSync('umount', [m]);
      if (work) rmSync(work, { recursive: true, force: true });
    });

    const fullUnit = {
      name: 'mcfull.service',
      text: `[Service]\nExecStart=/usr/bin/memcached --port=${port.full} --listen=127.0.0.1 --udp-port=0 --memory-limit=16\n`,
    };

    test('closure "full" from the OCI layout matches umoci unpack (content, owners, modes, links, devices, xattrs)', async () => {
      images.full = await portableService({ pname: 'mcfull', version: '1', from: `oci:${layout}:v3`, units: [fullUnit], outDir: path.join(work, 'out-oci'), squashCompression: FAST });
      const mnt = path.join(work, 'mnt-full');
      mkdirSync(mnt);
      sh('mount', ['-t', 'squashfs', '-o', 'loop,ro', images.full.image, mnt]);
      mounts.push(mnt);
      // What the skeleton owns is replaced on purpose; everything else must be exactly the container's rootfs.
      const skeleton = new Set(['/etc/os-release', '/etc/machine-id', '/etc/resolv.conf', '/etc/systemd/system/mcfull.service']);
      const want = dumpTree(path.join(expected, 'rootfs'), skeleton);
      const got = dumpTree(mnt, skeleton);
      assert.deepEqual(diffTrees(want, got), []);
      // The layers did what they say (so the comparison above compares something).
      assert.ok(want.size > 3000, `${want.size} paths`);
      assert.equal(existsSync(path.join(mnt, 'etc/motd')), false);
      assert.equal(existsSync(path.join(mnt, 'usr/bin/perl5.36.0')), false);
      assert.deepEqual(readdirSync(path.join(mnt, 'usr/share/common-licenses')), ['NEW']);
      assert.deepEqual(readdirSync(path.join(mnt, 'usr/share/base-passwd')), ['only-this']);
      assert.equal(existsSync(path.join(mnt, 'usr/share/bug')), false);
      assert.match(got.get('/srv/app/x')!, /^file 640 1234:1234 \S+ security\.capability=0x01\S* user\.note=0x68656c6c6f links=\/srv\/app\/x,\/srv\/app\/x2,\/srv\/app\/x3$/);
      assert.match(got.get('/srv/app/suid')!, /^file 4755 0:0 /);
      assert.equal(got.get('/srv/app/zero'), 'char 644 0:0 1:5');
      assert.match(got.get('/srv/app/fifo')!, /^fifo 644 1234:1234/);
      assert.match(readFileSync(path.join(mnt, 'etc/os-release'), 'utf8'), /^ID=debian\nVERSION_ID=12\n[\s\S]*PORTABLE_PREFIXES=mcfull\n/);
      assert.equal(readFileSync(path.join(mnt, 'etc/machine-id'), 'utf8'), '');
    });

    test('docker-archive and oci-archive give the same image, byte for byte', async () => {
      const docker = await portableService({ pname: 'mcfull', version: '1', from: `docker-archive:${work}/docker.tar:mkp/memcached:v3`, units: [fullUnit], outDir: path.join(work, 'out-docker'), squashCompression: FAST });
      assert.equal(docker.sha256, images.full.sha256);
      const archive = await portableService({ pname: 'mcfull', version: '1', from: `oci-archive:${work}/oci.tar:v3`, units: [fullUnit], outDir: path.join(work, 'out-archive'), squashCompression: FAST });
      assert.equal(archive.sha256, images.full.sha256);
    });

    test('dir: of the unpacked rootfs gives the same tree (xattrs aside: Node cannot read them from a folder)', async () => {
      const r = await portableService({ pname: 'mcfull', version: '1', from: `dir:${expected}/rootfs`, units: [fullUnit], outDir: path.join(work, 'out-dir'), squashCompression: FAST });
      const mnt = path.join(work, 'mnt-dir');
      mkdirSync(mnt);
      sh('mount', ['-t', 'squashfs', '-o', 'loop,ro', r.image, mnt]);
      mounts.push(mnt);
      const skeleton = new Set(['/etc/os-release', '/etc/machine-id', '/etc/resolv.conf', '/etc/systemd/system/mcfull.service']);
      assert.deepEqual(diffTrees(dumpTree(path.join(expected, 'rootfs'), skeleton, false), dumpTree(mnt, skeleton, false)), []);
    });

    test('closure "minimal" with a unit made from the image config', async () => {
      images.minimal = await portableService({
        pname: 'mcmin', version: '1', from: `docker-archive:${work}/docker.tar`, closure: 'minimal', unitFromConfig: true,
        outDir: path.join(work, 'out-min'), squashCompression: FAST,
      });
      const r = images.minimal;
      const paths = new Set(r.files.map((f) => f.path));
      for (const p of ['/usr/bin/memcached', '/usr/lib/x86_64-linux-gnu/libevent-2.1.so.7', '/lib64', '/srv/app/x', '/etc/ld.so.cache']) assert.ok(paths.has(p), `${p} is in the minimal image`);
      for (const p of ['/usr/bin/perl', '/usr/bin/systemctl', '/dev/null']) assert.ok(!paths.has(p), `${p} is not`);
      assert.ok(r.files.length < 150, `${r.files.length} entries`);
      // Packages from the image's own dpkg database (layer 1); memcached was copied in by hand (layer 2).
      const pkgOf = new Map(r.files.map((f) => [f.path, f.package]));
      assert.equal(pkgOf.get('/usr/lib/x86_64-linux-gnu/libc.so.6'), 'libc6:amd64');
      assert.equal(pkgOf.get('/usr/bin/memcached'), undefined);
      const libc = sh('dpkg-query', [`--admindir=${expected}/rootfs/var/lib/dpkg`, '-W', '-f=${Version} ${Architecture}', 'libc6']);
      const p = r.packages.find((x) => x.id === 'libc6:amd64');
      assert.equal(`${p?.version} ${p?.architecture}`, libc.trim());
      assert.ok(!paths.has('/var/lib/dpkg/status'), 'the minimal image carries no package database');
      const img = await openImage(r.image);
      try {
        const unit = Buffer.from(await img.readFile('/etc/systemd/system/mcmin.service')).toString();
        assert.match(unit, /^ExecStart=\/usr\/bin\/memcached --port=11312 --listen=127\.0\.0\.1 --udp-port=0 --memory-limit=16$/m);
        assert.match(unit, /^Environment="GREETING=50%% off \\"\$HOME\\" \\\\o\/"$/m);
        assert.match(unit, /^WorkingDirectory=\/srv\/app$/m);
        assert.match(unit, /^User=1234\nGroup=1234$/m);
        // Owners from the image, also in the minimal closure (the resolver alone would make them root's).
        const x = await img.stat('/srv/app/x');
        assert.deepEqual([x.uid, x.gid, x.mode & 0o7777], [1234, 1234, 0o640]);
      } finally {
        await img.close();
      }
    });

    describe('on real systemd-portabled', () => {
      let c: PortabledContainer;
      before(async () => {
        c = await startPortabledContainer();
      });
      after(async () => {
        await c?.stop();
      });
      const active = async (u: string) => (await c.exec(['systemctl', 'is-active', u], { allowFail: true })).stdout.trim();

      for (const kind of ['full', 'minimal'] as const) {
        test(`closure "${kind}": attach --now, memcached answers, detach`, async () => {
          const r = images[kind];
          assert.ok(r, 'the image was built by an earlier test');
          const name = kind === 'full' ? 'mcfull' : 'mcmin';
          await c.copyIn(r.image, `/var/lib/portables/${name}_1.raw`);
          const attach = await c.exec(['portablectl', 'attach', '--now', '--runtime', `${name}_1`], { allowFail: true });
          assert.equal(attach.code, 0, `attach failed:\n${attach.stdout}${attach.stderr}`);
          await waitFor(`${name}.service active`, async () => ((await active(`${name}.service`)) === 'active' ? true : undefined));
          const version = await waitFor('memcached answering', () => ask(port[kind], 'version\r\n', /\r\n$/));
          assert.match(version, /^VERSION \d+\.\d+\.\d+/);
          const stored = await ask(port[kind], 'set k 0 0 2\r\nok\r\nget k\r\n', /END\r\n$/);
          assert.match(stored, /STORED\r\nVALUE k 0 2\r\nok\r\nEND\r\n/);
          if (kind === 'minimal') {
            // User=, Environment= and WorkingDirectory= from the image config took effect.
            const pid = (await c.exec(['systemctl', 'show', '-P', 'MainPID', `${name}.service`])).stdout.trim();
            const status = (await c.exec(['cat', `/proc/${pid}/status`])).stdout;
            assert.match(status, /^Uid:\s+1234\s/m);
            const environ = (await c.exec(['cat', `/proc/${pid}/environ`])).stdout.split('\0');
            assert.ok(environ.includes('GREETING=50% off "$HOME" \\o/'), environ.join(' | '));
          }
          const detach = await c.exec(['portablectl', 'detach', '--now', '--runtime', `${name}_1`], { allowFail: true });
          assert.equal(detach.code, 0, `detach failed:\n${detach.stdout}${detach.stderr}`);
          await assert.rejects(ask(port[kind], 'version\r\n', /\r\n$/), 'memcached must be gone after detach');
        });
      }
    });
  });
}
