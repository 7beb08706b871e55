// A tree of every corner case a file system has, built into images through `contents` and through a `dir:` rootfs
// with `closure: full`, with each compressor: the kernel mounts each image and a byte-exact comparison with the
// source finds no difference (names as bytes, modes, owners where kept, contents, link targets, device numbers,
// xattrs, hard links where kept); `unsquashfs -d` extracts the same tree; getcap sees the file capability.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, linkSync, mkdirSync, openSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { portableService, type BuildResult } from '../src/index.js';
import { escapeName, escapingReplacer, toBytes } from '../src/formats/bytenames.js';
import { hasCommand, IN_CI, isRoot, runCommand, tempDir } from './support/env.js';
import { compareBig, differences, snapshot, type ComparePolicy } from './support/trees.js';

const TOOLS = ['mount', 'umount', 'unsquashfs', 'setcap', 'getcap', 'setfattr', 'mknod', 'gcc', 'python3'];
const missing = TOOLS.filter((t) => !hasCommand(t));
const ready = isRoot() && missing.length === 0;
const reason = !isRoot() ? 'needs root (loop mounts, devices, owners, trusted.* and security.* xattrs)' : `missing: ${missing.join(', ')}`;

const GiB = 2 ** 30;
const SPARSE_SIZE = 5 * GiB;
const raw = (s: string) => Buffer.from(s, 'latin1');

function sh(cwd: string, script: string): void {
  const r = spawnSync('sh', ['-ec', script], { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${script}\n${r.stderr}`);
}

/**
 * The corner-case tree at `dir`; `abs` is the absolute path the tree has inside its source (for absolute links).
 * Names that are not UTF-8 are made through Buffers (and named by glob in shell commands: argv is text in Node).
 */
function makeCorner(dir: string, abs: string): void {
  mkdirSync(dir, { recursive: true });
  const at = (name: string) => path.join(dir, name);
  writeFileSync(at('plain.txt'), 'plain\n');
  writeFileSync(at('empty'), '');
  mkdirSync(at('empty-dir'));
  // Names: bytes that are not UTF-8, 255 bytes (ASCII and two-byte UTF-8), a dir of 255 bytes.
  writeFileSync(raw(`${dir}/raw-\xff\xfe`), 'raw name\n');
  mkdirSync(raw(`${dir}/dir-\x80`));
  writeFileSync(raw(`${dir}/dir-\x80/inner-\xc3`), 'inner\n');
  writeFileSync(at('n'.repeat(255)), '255 bytes of name\n');
  writeFileSync(at(`${'é'.repeat(127)}x`), '255 bytes, two per letter\n');
  mkdirSync(at('d'.repeat(255)));
  writeFileSync(path.join(at('d'.repeat(255)), 'f'), 'in a 255-byte folder\n');
  // Links: a 4000-byte target that resolves, one that cannot exist, dangling, absolute, a target not UTF-8.
  symlinkSync(`${'./'.repeat(1995)}/plain.txt`, at('long-link'));
  symlinkSync('a'.repeat(4000), at('long-dangling'));
  symlinkSync('nothing-here', at('dangling'));
  symlinkSync(`${abs}/plain.txt`, at('absolute'));
  symlinkSync('/nonexistent/target', at('absolute-dangling'));
  symlinkSync(raw('raw-\xff\xfe'), raw(`${dir}/link-to-raw-\xfe`));
  // Attributes: a file capability, user.* xattrs (binary too), trusted.*, on a file, a folder and a raw name.
  writeFileSync(at('cap-raw'), '#!/bin/sh\necho raw\n', { mode: 0o755 });
  sh(dir, 'setcap cap_net_raw+ep cap-raw');
  writeFileSync(at('xattrs.txt'), 'x\n');
  sh(dir, 'setfattr -n user.note -v hello xattrs.txt && setfattr -n user.bin -v 0x00ff7f80 xattrs.txt && setfattr -n trusted.t -v trusted xattrs.txt');
  mkdirSync(at('xattr-dir'));
  sh(dir, 'setfattr -n user.dir -v d xattr-dir && setfattr -n user.raw -v r raw-*');
  // Modes: setuid, setgid, sticky, odd permission bits; owners.
  writeFileSync(at('setuid'), 'u\n', { mode: 0o4755 });
  writeFileSync(at('setgid'), 'g\n', { mode: 0o2711 });
  mkdirSync(at('sticky'), { mode: 0o1777 });
  mkdirSync(at('setgid-dir'), { mode: 0o2775 });
  writeFileSync(at('no-perms'), 'n\n', { mode: 0o000 });
  writeFileSync(at('owned'), 'o\n');
  mkdirSync(at('owned-dir'));
  sh(dir, 'chmod 4755 setuid && chmod 2711 setgid && chmod 1777 sticky && chmod 2775 setgid-dir && chmod 000 no-perms && chown 1234:5678 owned && chown 4321:8765 owned-dir');
  // A folder of 1200 entries (several listing runs and index entries), some identical files.
  mkdirSync(at('many'));
  for (let i = 0; i < 1200; i++) writeFileSync(path.join(at('many'), `entry-${String(i).padStart(4, '0')}-${'x'.repeat(i % 40)}`), i % 3 === 0 ? 'same\n' : `file ${i}\n`);
  // Special files.
  sh(dir, 'mkfifo fifo && mknod null c 1 3 && mknod loop7 b 7 7 && mknod big-minor c 240 300000');
  sh(dir, `python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')"`);
  // Hard links: three names of one file, one in another folder.
  writeFileSync(at('hard-a'), 'hard\n');
  linkSync(at('hard-a'), at('hard-b'));
  linkSync(at('hard-a'), path.join(at('many'), 'hard-c'));
  // A 5 GiB sparse file: data at the start, past 4 GiB and in the last byte.
  const fd = openSync(at('sparse'), 'w');
  ftruncateSync(fd, SPARSE_SIZE);
  writeSync(fd, Buffer.from('head'), 0, 4, 0);
  writeSync(fd, Buffer.alloc(200_000, 0x5a), 0, 200_000, 4.5 * GiB);
  writeSync(fd, Buffer.from('!'), 0, 1, SPARSE_SIZE - 1);
  closeSync(fd);
}

const COMPRESSORS = ['gzip', 'xz', 'zstd', 'lz4'];

if (!ready && !IN_CI) {
  test('a corner-case tree is stored exactly', { skip: reason }, () => {});
} else {
  describe('a corner-case tree is stored exactly, through contents and through dir: with closure full', { timeout: 20 * 60_000 }, () => {
    let work: string;
    let hostTree: string;
    let rootfs: string;
    const mounts: string[] = [];
    /** The source trees' facts, taken once per variant. */
    const sources = new Map<string, ReturnType<typeof snapshot>>();
    before(() => {
      if (!ready) throw new Error(`prerequisite missing in CI: ${reason}`);
      work = tempDir('mkportable-corner-');
      hostTree = path.join(work, 'host', 'corner');
      makeCorner(hostTree, hostTree);
      // The rootfs: the same tree at /srv/corner, and a static program for the unit (no libraries needed).
      rootfs = path.join(work, 'rootfs');
      makeCorner(path.join(rootfs, 'srv/corner'), '/srv/corner');
      mkdirSync(path.join(rootfs, 'usr/bin'), { recursive: true });
      writeFileSync(path.join(work, 'corner.c'), 'int main(void) { return 0; }\n');
      sh(work, `gcc -static -O2 -o ${path.join(rootfs, 'usr/bin/corner')} corner.c`);
      writeFileSync(path.join(work, 'corner.service'), '[Service]\nExecStart=/usr/bin/corner\n');
      writeFileSync(path.join(work, 'corner-host.service'), '[Service]\nExecStart=/usr/bin/true\n');
    });
    after(async () => {
      for (const m of mounts) await runCommand('umount', [m]);
      if (work) rmSync(work, { recursive: true, force: true });
    });

    const variants = [
      {
        name: 'contents',
        build: (comp: string, out: string) => portableService({
          pname: 'corner', version: comp, units: [path.join(work, 'corner-host.service')], contents: [hostTree], squashCompression: comp, outDir: out,
        }),
        source: () => hostTree,
        inImage: () => hostTree,
        // Host files become root's and host hard links separate files, on purpose (README: reproducibility).
        policy: { owners: { uid: 0, gid: 0 }, hardLinks: 'broken' } as ComparePolicy,
      },
      {
        name: 'dir: closure full',
        build: (comp: string, out: string) => portableService({
          pname: 'corner', version: comp, units: [path.join(work, 'corner.service')], from: `dir:${rootfs}`, closure: 'full', squashCompression: comp, outDir: out,
        }),
        source: () => path.join(rootfs, 'srv/corner'),
        inImage: () => '/srv/corner',
        policy: { hardLinks: 'keep' } as ComparePolicy,
      },
    ];

    for (const v of variants) {
      for (const comp of COMPRESSORS) {
        test(`${v.name}, ${comp}: the mounted image and unsquashfs -d hold the source tree byte for byte; getcap sees cap_net_raw`, async (t) => {
          const out = path.join(work, `${v.name.replace(/\W+/g, '-')}-${comp}`);
          const started = Date.now();
          const result: BuildResult = await v.build(comp, out);
          const built = Date.now() - started;
          // The sparse file stays sparse in the image: its 5 GiB are a few kilobytes.
          assert.ok(result.size < 4 << 20, `image of ${result.size} bytes`);
          const expected = await (sources.get(v.name) ?? sources.set(v.name, snapshot(v.source())).get(v.name)!);

          const mnt = path.join(out, 'mnt');
          mkdirSync(mnt);
          const m = await runCommand('mount', ['-t', 'squashfs', '-o', 'loop,ro', result.image, mnt]);
          assert.equal(m.code, 0, m.stderr);
          mounts.push(mnt);
          try {
            const inMount = path.join(mnt, v.inImage());
            const diffs = differences(expected, await snapshot(inMount), v.policy);
            // Reading 5 GiB of holes back through the kernel costs seconds; the hole path of squashfs does not
            // involve the compressor, so it is read whole once per variant and range by range otherwise.
            diffs.push(...(await compareBig(path.join(v.source(), 'sparse'), path.join(inMount, 'sparse'), comp === 'gzip')).map((d) => `sparse: ${d}`));
            assert.deepEqual(diffs, [], `mounted image differs from the source:\n${diffs.join('\n')}`);
            const cap = await runCommand('getcap', [path.join(inMount, 'cap-raw')]);
            assert.match(cap.stdout, /cap-raw (=|cap_net_raw[=+]ep)/);
            assert.match(cap.stdout, /cap_net_raw[=+]ep/);
          } finally {
            await runCommand('umount', [mnt]);
            mounts.splice(mounts.indexOf(mnt), 1);
          }

          const x = path.join(out, 'x');
          const u = await runCommand('unsquashfs', ['-q', '-n', '-d', x, result.image]);
          assert.equal(u.code, 0, u.stderr);
          const extracted = path.join(x, v.inImage());
          const xdiffs = differences(expected, await snapshot(extracted), v.policy);
          xdiffs.push(...(await compareBig(path.join(v.source(), 'sparse'), path.join(extracted, 'sparse'), false)).map((d) => `sparse: ${d}`));
          assert.deepEqual(xdiffs, [], `unsquashfs -d differs from the source:\n${xdiffs.join('\n')}`);
          rmSync(out, { recursive: true, force: true });
          t.diagnostic(`${v.name} ${comp}: built in ${built} ms, ${result.size} bytes, ${expected.size} entries compared`);
        });
      }
    }

    test('the build result names every entry, bytes that are not UTF-8 escaped as \\xHH in JSON', async () => {
      const out = path.join(work, 'json');
      const result = await variants[0].build('gzip', out);
      const names = JSON.parse(JSON.stringify(result, escapingReplacer)).files.map((f: { path: string }) => f.path);
      assert.ok(names.includes(`${hostTree}/raw-\\xff\\xfe`), 'the raw name, escaped');
      assert.ok(names.includes(`${hostTree}/dir-\\x80/inner-\\xc3`));
      assert.ok(result.files.some((f) => toBytes(f.path).equals(raw(`${hostTree}/raw-\xff\xfe`))), 'the library result holds the bytes');
      assert.ok(result.warnings.some((w) => /long-dangling: symlink to 'a{20}/.test(w.message)), 'a dangling 4000-byte link is a warning, not a crash');
      assert.ok(result.warnings.every((w) => !w.message.includes('\n')), result.warnings.map((w) => escapeName(w.message)).join('\n'));
      rmSync(out, { recursive: true, force: true });
    });
  });
}
