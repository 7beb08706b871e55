/**
 * The native writer against the real tools: unsquashfs (-stat, -llnumeric, -d), rdsquashfs (-x, -s), sqfsdiff
 * against mksquashfs's image of the same directory, and the kernel (loop mount, diff -r, lstat of every path,
 * getfattr, dmesg). Needs root for mknod/chown/mount; skips what it cannot do elsewhere.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CompressorSpec } from '../compress/types.js';
import { isMkportableError } from '../errors.js';
import { planFromSource } from '../plan/from-source.js';
import { type Entry, type ImageTree, createTree, walkTree } from '../plan/tree.js';
import { directorySource } from '../sources/host.js';
import { walkHostDirectory } from '../plan/walk.js';
import type { Source } from '../sources/source.js';
import { encodeRdev } from './inode.js';
import { writeSquashfs } from './write.js';

const isRoot = process.getuid?.() === 0;
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const TOOLS = ['unsquashfs', 'mksquashfs', 'sqfsdiff', 'rdsquashfs', 'getfattr', 'setfattr', 'mknod', 'python3'];
const missing = TOOLS.filter((t) => !has(t));
const canRun = isRoot && missing.length === 0;
const skip = canRun ? false : `needs root and ${TOOLS.join(', ')} (missing: ${missing.join(', ') || 'root'})`;

function run(cmd: string, args: string[], opts: { cwd?: string; ok?: number[] } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, maxBuffer: 256 << 20, encoding: 'utf8' });
  const code = r.status ?? -1;
  if (!(opts.ok ?? [0]).includes(code)) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${code}\n${r.stdout}\n${r.stderr}`.slice(0, 4000));
  }
  return { code, stdout: r.stdout, stderr: r.stderr };
}

/** Deterministic pseudo-random bytes (xorshift32), incompressible enough to exercise raw blocks. */
function noise(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const text = (length: number, seed: number) => {
  const words = ['squashfs', 'portable', 'service', 'block', 'fragment', 'inode', 'directory', 'kernel', '\n'];
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < length; i++) {
    const w = words[(i * 7 + seed) % words.length];
    parts.push(w, ' ');
    n += w.length + 1;
  }
  return Buffer.from(parts.join('').slice(0, length));
};

// security.capability: vfs_cap_data v2 with cap_net_bind_service (bit 10) permitted + effective.
const CAPABILITY = Buffer.from([0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

let work = '';
let fixture = '';
/** Xattrs set on the fixture, by image path (sources do not read xattrs; the test adds them to the tree). */
const fixtureXattrs = new Map<string, Record<string, Uint8Array>>();

async function buildFixture(root: string): Promise<void> {
  const p = (rel: string) => path.join(root, rel);
  const file = async (rel: string, data: Uint8Array | string, mode = 0o644) => {
    await fs.mkdir(path.dirname(p(rel)), { recursive: true });
    await fs.writeFile(p(rel), data);
    await fs.chmod(p(rel), mode);
  };
  const xattr = (rel: string, name: string, value: Buffer) => {
    run('setfattr', ['-h', '-n', name, '-v', '0x' + value.toString('hex'), p(rel)]);
    const at = '/' + rel;
    fixtureXattrs.set(at, { ...fixtureXattrs.get(at), [name]: new Uint8Array(value) });
  };

  await fs.mkdir(root, { recursive: true });
  await file('hello.txt', 'hello, world\n');
  await file('café/日本語/ünïcödé file.txt', 'non-ascii names\n');
  for (const n of ['a', 'A', 'b', 'é', 'z', '~', '-', '_', '.hidden', 'Ωmega', '🦀', 'x'.repeat(255)]) await file(`names/${n}`, n);
  let deep = 'deep';
  for (let i = 0; i < 40; i++) deep += `/d${i}`;
  await file(`${deep}/leaf`, 'deep leaf\n');
  await fs.mkdir(p('empty-dir'));
  await file('zero-a', '');
  await file('zero-b', '');

  // Sizes around every block size under test (4K, 128K, 1M): exact multiples, one less, one more.
  const sizes = [1, 4095, 4096, 4097, 8192, 131071, 131072, 131073, 262144, 1048575, 1048576, 1048577, 2097152];
  for (const [i, size] of sizes.entries()) {
    const random = Math.floor(size / 16); // mostly text: compressible, and quick to compress
    await file(`sizes/${size}`, Buffer.concat([noise(random, 100 + i), text(size - random, i)]));
  }
  await file('rand-100k', noise(100_000, 7)); // incompressible: stored raw
  await file('text-300k', text(300_000, 3));
  const M = 1 << 20;
  // Zero blocks at every block size under test (for 1M: the block [1M, 2M)), data around them.
  await file('holes', Buffer.concat([noise(4096, 11), Buffer.alloc(2 * M - 4096), noise(5000, 12)]));
  await file('allzero-2m', Buffer.alloc(2 * M));
  const dupBig = noise(150_000, 21);
  await file('dup/a', dupBig);
  await file('dup/b', dupBig);
  await file('dup/small-a', noise(100, 22));
  await file('dup/small-b', noise(100, 22));
  await file('dup/same-size-1', noise(150_000, 23));
  await file('dup/same-size-2', noise(150_000, 24));
  for (let i = 0; i < 400; i++) await file(`many/f${String(i).padStart(3, '0')}`, `file ${i}\n`);
  await fs.mkdir(p('wide'));
  // 1000 entries of 60-byte names: a listing over 64 KiB (u32 file_size), several index entries.
  for (let i = 0; i < 1000; i++) await fs.writeFile(p(`wide/entry-${String(i).padStart(5, '0')}-${'w'.repeat(48)}`), '');

  await fs.mkdir(p('links'));
  await fs.symlink('t'.repeat(4095), p('links/long'));
  await fs.symlink('../hello.txt', p('links/rel'));
  await fs.symlink('/etc/passwd', p('links/abs'));
  await fs.symlink('nowhere', p('links/dangling'));
  await fs.symlink('../deep', p('links/dirlink'));

  await file('hard/orig', 'three names, one inode\n');
  await fs.link(p('hard/orig'), p('hard/l1'));
  await fs.mkdir(p('other'));
  await fs.link(p('hard/orig'), p('other/l2'));

  await fs.mkdir(p('special'));
  run('mknod', ['-m', '0666', p('special/null'), 'c', '1', '3']);
  run('mknod', ['-m', '0660', p('special/sda1'), 'b', '8', '1']);
  run('mknod', ['-m', '0620', p('special/pts'), 'c', '136', '1000']);
  run('mknod', ['-m', '0600', p('special/huge'), 'c', '4095', String(0xfffff)]);
  run('mkfifo', ['-m', '0640', p('special/fifo')]);
  await fs.link(p('special/fifo'), p('special/fifo-link'));
  run('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', p('special/sock')]);

  await file('modes/suid', '#!/bin/sh\n', 0o4755);
  await file('modes/sgid', '#!/bin/sh\n', 0o2755);
  await file('modes/private', 'secret\n', 0o600);
  await file('modes/none', 'none\n', 0o000);
  await fs.mkdir(p('modes/sticky'));
  await fs.chmod(p('modes/sticky'), 0o1777);
  await file('modes/ro-dir/inside', 'inside\n');
  await fs.chmod(p('modes/ro-dir'), 0o555);

  await file('owners/u1000', 'u1000\n');
  await fs.chown(p('owners/u1000'), 1000, 100);
  await file('owners/nobody', 'nobody\n');
  await fs.chown(p('owners/nobody'), 65534, 65534);
  await fs.mkdir(p('owners/dir'));
  await fs.chown(p('owners/dir'), 1234, 5678);
  await fs.lchown(p('links/rel'), 42, 43);

  await file('xattr/file', 'has xattrs\n');
  xattr('xattr/file', 'user.comment', Buffer.from('hello'));
  xattr('xattr/file', 'user.empty', Buffer.alloc(0));
  xattr('xattr/file', 'trusted.t', Buffer.from([0, 1, 2, 255]));
  await fs.mkdir(p('xattr/dir'));
  await file('xattr/dir/child', 'child\n');
  xattr('xattr/dir', 'user.d', Buffer.from('dir attr'));
  await file('xattr/cap', noise(5000, 31), 0o755);
  xattr('xattr/cap', 'security.capability', CAPABILITY);
  await file('xattr/dup1', 'one\n');
  await file('xattr/dup2', 'two\n');
  for (const f of ['xattr/dup1', 'xattr/dup2']) xattr(f, 'user.same', Buffer.from('same set'));
  await file('xattr/big', 'big value\n');
  xattr('xattr/big', 'user.big', text(2000, 5));

  // Fixed, distinct times (deepest first so a parent's time is not bumped by its children).
  const all: string[] = [];
  const walk = async (rel: string) => {
    for (const d of await fs.readdir(p(rel), { withFileTypes: true })) {
      const r = path.join(rel, d.name);
      if (d.isDirectory()) await walk(r);
      all.push(r);
    }
  };
  await walk('');
  all.push('');
  for (const [i, r] of all.entries()) await fs.lutimes(p(r), 1_600_000_000 + i * 61, 1_600_000_000 + i * 61);
}

async function fixtureTree(mtime?: number): Promise<ImageTree> {
  const tree = await planFromSource(directorySource(fixture), '/', { owners: 'keep', mtime: mtime ?? 'keep' });
  for (const [p, x] of fixtureXattrs) {
    const e = tree.entries.get(p);
    assert.ok(e, p);
    e.xattrs = x;
  }
  return tree;
}

// ---------------------------------------------------------------------------------------------------------------
// What the tree says an unsquashfs -llnumeric listing must be.

function permString(type: string, mode: number): string {
  const t = { dir: 'd', file: '-', symlink: 'l', char: 'c', block: 'b', fifo: 'p', socket: 's' }[type] ?? '?';
  const bit = (m: number, c: string) => (mode & m ? c : '-');
  const special = (x: number, s: number, lower: string, upper: string) => (mode & s ? (mode & x ? lower : upper) : bit(x, 'x'));
  return t + bit(0o400, 'r') + bit(0o200, 'w') + special(0o100, 0o4000, 's', 'S') + bit(0o40, 'r') + bit(0o20, 'w')
    + special(0o10, 0o2000, 's', 'S') + bit(0o4, 'r') + bit(0o2, 'w') + special(0o1, 0o1000, 't', 'T');
}

function expectedListing(tree: ImageTree): string[] {
  return walkTree(tree).map((p) => {
    let e = tree.entries.get(p)!;
    if (e.type === 'hardlink') e = tree.entries.get(e.target)!;
    let size = '-';
    let target = '';
    if (e.type === 'file') size = String(e.size);
    if (e.type === 'symlink') [size, target] = [String(Buffer.byteLength(e.target)), ` -> ${e.target}`];
    // unsquashfs -ll prints the stored u32 as (int) rdev >> 8, rdev & 0xff (the kernel decodes it properly;
    // the mount checks compare real device numbers).
    if (e.type === 'char' || e.type === 'block') {
      const rdev = encodeRdev(e.major, e.minor) | 0;
      size = `${rdev >> 8},${rdev & 0xff}`;
    }
    if (e.type === 'fifo' || e.type === 'socket') size = '0';
    return `${permString(e.type, e.mode)} ${e.uid}/${e.gid} ${size} ${p}${target}`;
  });
}

function parseListing(out: string): string[] {
  const lines: string[] = [];
  for (const line of out.split('\n')) {
    const m = /^(\S{10}) (\d+)\/(\d+) +(\d+|-?\d+, *\d+) \d{4}-\d\d-\d\d \d\d:\d\d squashfs-root(.*)$/.exec(line);
    if (!m) continue;
    const size = m[1][0] === 'd' ? '-' : m[4].replace(/ /g, '');
    lines.push(`${m[1]} ${m[2]}/${m[3]} ${size} ${m[5] || '/'}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------------------
// Two directory trees must agree on every name, type, mode, owner, size, time, device, link target, link count,
// hard-link grouping and byte of content.

async function compareTrees(a: string, b: string, opts: { times?: boolean } = {}): Promise<string[]> {
  const diffs: string[] = [];
  const inoA = new Map<number, string>();
  const inoB = new Map<number, string>();
  const visit = async (rel: string) => {
    const [sa, sb] = await Promise.all([fs.lstat(path.join(a, rel)), fs.lstat(path.join(b, rel))]);
    const what = rel || '/';
    const check = (field: string, x: unknown, y: unknown) => {
      if (x !== y) diffs.push(`${what}: ${field} ${String(x)} vs ${String(y)}`);
    };
    check('mode', sa.mode.toString(8), sb.mode.toString(8));
    check('uid', sa.uid, sb.uid);
    check('gid', sa.gid, sb.gid);
    check('nlink', sa.nlink, sb.nlink);
    if (opts.times !== false) check('mtime', Math.floor(sa.mtimeMs / 1000), Math.floor(sb.mtimeMs / 1000));
    if (sa.isCharacterDevice() || sa.isBlockDevice()) check('rdev', sa.rdev, sb.rdev);
    if (!sa.isDirectory()) {
      check('size', sa.size, sb.size);
      // Same hard-link grouping: the first name seen for an inode must match on both sides.
      const fa = inoA.get(sa.ino) ?? (inoA.set(sa.ino, what), what);
      const fb = inoB.get(sb.ino) ?? (inoB.set(sb.ino, what), what);
      check('hard link group', fa, fb);
    }
    if (sa.isSymbolicLink()) check('target', await fs.readlink(path.join(a, rel)), await fs.readlink(path.join(b, rel)));
    if (sa.isFile() && sa.size === sb.size) {
      const [da, db] = await Promise.all([fs.readFile(path.join(a, rel)), fs.readFile(path.join(b, rel))]);
      if (!da.equals(db)) diffs.push(`${what}: content differs`);
    }
    if (sa.isDirectory() && sb.isDirectory()) {
      const [na, nb] = await Promise.all([fs.readdir(path.join(a, rel)), fs.readdir(path.join(b, rel))]);
      na.sort();
      nb.sort();
      if (na.join('\0') !== nb.join('\0')) {
        diffs.push(`${what}: entries differ (${na.filter((n) => !nb.includes(n)).slice(0, 5)} | ${nb.filter((n) => !na.includes(n)).slice(0, 5)})`);
        return;
      }
      await Promise.all(na.map((n) => visit(path.join(rel, n))));
    }
  };
  await visit('');
  return diffs;
}

/** `diff -r` output, minus its complaints that special files are special files. */
function diffR(a: string, b: string): string[] {
  const r = run('diff', ['-r', '--no-dereference', a, b], { ok: [0, 1] });
  return r.stdout.split('\n').filter((l) => l && !/^File .* is a (fifo|character special file|block special file|socket) while file .* is a \1$/.test(l));
}

/** getfattr's dump of a whole tree, one block per file, sorted by path (walk order differs between filesystems). */
const xattrDump = (dir: string) =>
  run('getfattr', ['-R', '-d', '-h', '-m', '-', '-e', 'hex', '.'], { cwd: dir }).stdout.split('\n\n').map((b) => b.trim()).filter(Boolean).sort();

function dmesgLines(): string[] {
  return run('dmesg', []).stdout.split('\n');
}

async function withMount<T>(img: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(work, 'mnt-'));
  const before = dmesgLines().length;
  run('mount', ['-t', 'squashfs', '-o', 'loop,ro', img, dir]);
  try {
    return await fn(dir);
  } finally {
    // Something else on the machine may be looking into the mount for a moment: retry before giving up.
    for (let i = 0; ; i++) {
      const r = spawnSync('umount', [dir], { encoding: 'utf8' });
      if (r.status === 0) break;
      if (i === 10) throw new Error(`umount ${dir}: ${r.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    rmSync(dir, { recursive: true, force: true });
    const errors = dmesgLines().slice(before).filter((l) => /squashfs error/i.test(l));
    assert.deepEqual(errors, [], 'kernel logged SQUASHFS errors');
  }
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

// ---------------------------------------------------------------------------------------------------------------

before(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'mkportable-sqfs-'));
  if (!canRun) return;
  fixture = path.join(work, 'src');
  await buildFixture(fixture);
});

after(() => {
  if (work && !process.env.KEEP_FIXTURE) {
    // Give back read-only dirs' write bit so rm can clean up.
    spawnSync('chmod', ['-R', 'u+w', work]);
    rmSync(work, { recursive: true, force: true });
  }
});

/**
 * full: every check, mksquashfs + sqfsdiff included. light: unsquashfs -stat/-llnumeric and the kernel mount
 * (every lookup, stat field, byte and xattr) — enough to cover the compressor × block size matrix in the time.
 */
const CONFIGS: { spec: CompressorSpec; checks: 'full' | 'light'; mksquashfs?: string[]; tailPacking?: boolean }[] = [
  { spec: { name: 'gzip', blockSize: 4096 }, checks: 'full', mksquashfs: ['-comp', 'gzip'] },
  { spec: { name: 'gzip', blockSize: 131072 }, checks: 'full', mksquashfs: ['-comp', 'gzip'] },
  { spec: { name: 'gzip', blockSize: 1 << 20 }, checks: 'full', mksquashfs: ['-comp', 'gzip'] },
  { spec: { name: 'xz', blockSize: 131072 }, checks: 'full', mksquashfs: ['-comp', 'xz'] },
  { spec: { name: 'zstd', blockSize: 131072 }, checks: 'full', mksquashfs: ['-comp', 'zstd'] },
  { spec: { name: 'lz4', blockSize: 131072 }, checks: 'full', mksquashfs: ['-comp', 'lz4'] },
  { spec: { name: 'xz', blockSize: 4096 }, checks: 'light' },
  { spec: { name: 'xz', blockSize: 1 << 20, filters: 1 }, checks: 'light' },
  { spec: { name: 'zstd', blockSize: 4096, level: 3 }, checks: 'light' },
  { spec: { name: 'zstd', blockSize: 1 << 20 }, checks: 'light' },
  { spec: { name: 'lz4', blockSize: 4096, hc: true }, checks: 'light' },
  { spec: { name: 'lz4', blockSize: 1 << 20 }, checks: 'light' },
  { spec: { name: 'gzip', blockSize: 65536, level: 6, windowBits: 12 }, checks: 'light' },
  { spec: { name: 'gzip', blockSize: 131072 }, checks: 'light', tailPacking: false },
];

function configLabel(cfg: (typeof CONFIGS)[number]): string {
  const { name, blockSize, ...options } = cfg.spec;
  const extra = Object.entries(options).map(([k, v]) => `${k}=${v}`);
  if (cfg.tailPacking === false) extra.push('no tail packing');
  return `${name} ${blockSize / 1024}K${extra.length ? ` (${extra.join(', ')})` : ''}`;
}

for (const cfg of CONFIGS) {
  const label = configLabel(cfg);
  const what = [cfg.checks === 'full' ? 'unsquashfs -d, rdsquashfs' : 'unsquashfs', cfg.mksquashfs && 'sqfsdiff vs mksquashfs', 'kernel mount']
    .filter(Boolean)
    .join(', ');
  test(`fixture image, ${label}: ${what}`, { skip }, async (t) => {
    const img = path.join(work, `img-${label.replace(/\W+/g, '_')}.sqfs`);
    const tree = await fixtureTree();
    const t0 = performance.now();
    const result = await writeSquashfs(tree, img, { compressor: cfg.spec, mtime: 1_700_000_000, tailPacking: cfg.tailPacking });
    const ms = performance.now() - t0;
    const size = (await fs.stat(img)).size;
    assert.equal(result.bytes, size);
    assert.equal(size % 4096, 0, 'padded to 4 KiB');

    // unsquashfs: superblock sane, listing as the tree says.
    const stat = run('unsquashfs', ['-stat', img]).stdout;
    assert.match(stat, new RegExp(`Block size ${cfg.spec.blockSize}\\b`));
    assert.match(stat, new RegExp(`Compression ${cfg.spec.name}\\b`));
    assert.match(stat, /Filesystem is exportable via NFS/);
    assert.match(stat, /Duplicates are removed/);
    assert.match(stat, new RegExp(`Number of inodes ${result.inodes}\\b`));
    assert.match(stat, /Number of xattr ids 5\b/);
    assert.match(stat, cfg.tailPacking === false ? /Always-use-fragments option is not specified/ : /Always-use-fragments option is specified/);
    assert.deepEqual(parseListing(run('unsquashfs', ['-llnumeric', img]).stdout), expectedListing(tree));

    if (cfg.checks === 'full') {
      // unsquashfs -d: everything, byte for byte, with owners, times, links and xattrs.
      const out = path.join(work, `x-${path.basename(img)}`);
      run('unsquashfs', ['-q', '-n', '-d', out, img]);
      assert.deepEqual(await compareTrees(fixture, out), [], 'unsquashfs extraction differs from the source');
      assert.deepEqual(xattrDump(out), xattrDump(fixture), 'xattrs after unsquashfs -d');
      spawnSync('chmod', ['-R', 'u+w', out]);
      rmSync(out, { recursive: true, force: true });

      // squashfs-tools-ng reads the xattrs and inodes too.
      const rx = run('rdsquashfs', ['-x', '/xattr/file', img]).stdout;
      for (const name of ['user.comment', 'user.empty', 'trusted.t']) assert.match(rx, new RegExp(`^${name.replace('.', '\\.')}=`, 'm'));
      assert.match(run('rdsquashfs', ['-x', '/xattr/cap', img]).stdout, /^security\.capability=/m);
      const hard = run('rdsquashfs', ['-s', '/other/l2', img]).stdout;
      assert.match(hard, /Inode type: extended file/);
      assert.match(hard, /Hard link count: 3/);
      const wide = run('rdsquashfs', ['-s', '/wide', img]).stdout;
      assert.match(wide, /Inode type: extended directory/);
      assert.match(wide, /Directory index entries: [1-9]/);
    }

    // The kernel: every lookup (through the directory index for wide/), stat field, byte and xattr.
    await withMount(img, async (mnt) => {
      if (cfg.checks === 'full') assert.deepEqual(diffR(fixture, mnt), [], 'diff -r');
      assert.deepEqual(await compareTrees(fixture, mnt), [], 'kernel view differs from the source');
      assert.deepEqual(xattrDump(mnt), xattrDump(fixture), 'getfattr on the mount');
    });

    // Same contents as mksquashfs's image of the same directory (owners, modes, times included).
    if (cfg.mksquashfs) {
      const ref = path.join(work, `ref-${path.basename(img)}`);
      const m0 = performance.now();
      run('mksquashfs', [fixture, ref, '-noappend', '-quiet', '-no-progress', '-b', String(cfg.spec.blockSize), ...cfg.mksquashfs]);
      const mms = performance.now() - m0;
      const d = run('sqfsdiff', ['-T', '-a', ref, '-b', img], { ok: [0, 1] });
      assert.equal(d.code, 0, `sqfsdiff reports differences:\n${d.stdout.slice(0, 2000)}`);
      t.diagnostic(`${label}: ours ${size} bytes in ${ms.toFixed(0)} ms, mksquashfs ${(await fs.stat(ref)).size} bytes in ${mms.toFixed(0)} ms`);
      rmSync(ref);
    }
    rmSync(img);
  });
}

test('same bytes with 1 or 4 workers, and whatever the host mtimes (times come from the entries)', { skip }, async () => {
  const spec: CompressorSpec = { name: 'gzip', blockSize: 16384 };
  const a = path.join(work, 'det-1.sqfs');
  const b = path.join(work, 'det-4.sqfs');
  const c = path.join(work, 'det-touched.sqfs');
  await writeSquashfs(await fixtureTree(1_234_567_890), a, { compressor: spec, mtime: 1_234_567_890, workers: 1 });
  await writeSquashfs(await fixtureTree(1_234_567_890), b, { compressor: spec, mtime: 1_234_567_890, workers: 4 });
  assert.equal(sha256(a), sha256(b));
  const touched = ['hello.txt', 'sizes/131073', 'many'].map((r) => path.join(fixture, r));
  const saved = await Promise.all(touched.map((f) => fs.lstat(f)));
  try {
    for (const f of touched) await fs.utimes(f, new Date(), new Date());
    await writeSquashfs(await fixtureTree(1_234_567_890), c, { compressor: spec, mtime: 1_234_567_890, workers: 3 });
  } finally {
    for (const [i, f] of touched.entries()) await fs.utimes(f, saved[i].atime, saved[i].mtime);
  }
  assert.equal(sha256(a), sha256(c));
  run('unsquashfs', ['-stat', a]);
  for (const f of [a, b, c]) rmSync(f);
});

test('a folder walked in columns (pack) makes the same image as its ImageTree, with and without the block cache', { skip }, async () => {
  const spec: CompressorSpec = { name: 'zstd', blockSize: 16384 };
  const viaTree = path.join(work, 'walk-tree.sqfs');
  const viaWalk = path.join(work, 'walk-columns.sqfs');
  const viaCache = path.join(work, 'walk-cache.sqfs');
  const cache = mkdtempSync(path.join(work, 'walk-cache-'));
  // The host source reads xattrs, as the walk does: the fixture's are on disk (set with setfattr).
  await writeSquashfs(await planFromSource(directorySource(fixture), '/', { owners: 'keep', mtime: 'keep' }), viaTree, { compressor: spec, mtime: 7 });
  await writeSquashfs(await walkHostDirectory(fixture), viaWalk, { compressor: spec, mtime: 7, workers: 3 });
  await writeSquashfs(await walkHostDirectory(fixture), viaCache, { compressor: spec, mtime: 7, cache: { dir: cache } });
  const warm = await writeSquashfs(await walkHostDirectory(fixture), viaCache, { compressor: spec, mtime: 7, cache: { dir: cache }, workers: 1 });
  assert.ok(warm.cache && warm.cache.hits > 0 && warm.cache.misses === 0, JSON.stringify(warm.cache));
  assert.equal(sha256(viaWalk), sha256(viaTree));
  assert.equal(sha256(viaCache), sha256(viaTree));
  for (const f of [viaTree, viaWalk, viaCache]) rmSync(f);
  rmSync(cache, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------
// Trees that only the plan can hold: devices, sockets, 256-byte names; no filesystem needed.

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, reason: 'test', origin: 'generated' };
const bytes = (s: string | Uint8Array) => (typeof s === 'string' ? new TextEncoder().encode(s) : s);
const fileEntry = (data: string | Uint8Array, extra: Partial<Entry> = {}): Entry =>
  ({ ...base, type: 'file', size: bytes(data).length, content: { kind: 'bytes', data: bytes(data) }, ...extra }) as Entry;

test('plan-only entries: devices, fifos, sockets, 255-byte names, xattrs on every inode type', { skip }, async () => {
  const tree = createTree();
  const x = { 'user.k': bytes('v') };
  tree.entries.set('/', { ...base, mode: 0o755, type: 'dir' });
  tree.entries.set('/dev', { ...base, mode: 0o755, type: 'dir', xattrs: x });
  tree.entries.set('/dev/null', { ...base, mode: 0o666, type: 'char', major: 1, minor: 3 });
  tree.entries.set('/dev/nvme0n1p300', { ...base, mode: 0o660, gid: 6, type: 'block', major: 259, minor: 300, xattrs: { 'security.selinux': bytes('x\0') } });
  tree.entries.set('/dev/loud', { ...base, mode: 0o600, type: 'char', major: 4095, minor: 0xfffff });
  tree.entries.set('/dev/fifo', { ...base, mode: 0o620, type: 'fifo', xattrs: { 'trusted.a': bytes('1') } });
  tree.entries.set('/dev/fifo2', { ...base, type: 'hardlink', target: '/dev/fifo' });
  tree.entries.set('/dev/log', { ...base, mode: 0o666, type: 'socket', uid: 7, gid: 8 });
  tree.entries.set('/' + 'n'.repeat(255), fileEntry('max name'));
  tree.entries.set('/link', { ...base, mode: 0o777, type: 'symlink', target: 'ü'.repeat(2047), xattrs: { 'trusted.s': bytes('sym') } });
  tree.entries.set('/cap', fileEntry('x', { mode: 0o755, xattrs: { 'security.capability': CAPABILITY } }));
  const img = path.join(work, 'plan-only.sqfs');
  const r = await writeSquashfs(tree, img, { compressor: { name: 'gzip', blockSize: 4096 }, mtime: 1_700_000_000, workers: 1 });
  assert.equal(r.inodes, 10);
  assert.deepEqual(parseListing(run('unsquashfs', ['-llnumeric', img]).stdout), expectedListing(tree));
  assert.match(run('rdsquashfs', ['-s', '/dev/nvme0n1p300', img]).stdout, /extended block device/i);
  assert.match(run('rdsquashfs', ['-x', '/link', img]).stdout, /^trusted\.s=/m);
  assert.match(run('rdsquashfs', ['-x', '/dev/fifo2', img]).stdout, /^trusted\.a=/m);
  assert.match(run('rdsquashfs', ['-x', '/dev/nvme0n1p300', img]).stdout, /^security\.selinux=/m);
  await withMount(img, async (mnt) => {
    const st = await fs.lstat(path.join(mnt, 'dev/nvme0n1p300'));
    assert.ok(st.isBlockDevice());
    assert.equal(st.rdev, (259 << 8) | (300 & 0xff) | ((300 & ~0xff) << 12));
    assert.ok((await fs.lstat(path.join(mnt, 'dev/log'))).isSocket());
    assert.equal((await fs.lstat(path.join(mnt, 'dev/fifo2'))).nlink, 2);
    assert.equal(await fs.readFile(path.join(mnt, 'n'.repeat(255)), 'utf8'), 'max name');
    assert.equal(await fs.readlink(path.join(mnt, 'link')), 'ü'.repeat(2047));
    assert.match(run('getfattr', ['-d', '-m', '-', '-e', 'hex', path.join(mnt, 'cap')]).stdout, /security\.capability=0x0100000200040000/);
    assert.match(run('getfattr', ['-d', '-m', '-', path.join(mnt, 'dev')]).stdout, /user\.k="v"/);
  });
});

test('a 5 GiB sparse file: extended inode, u64 sizes, sparse blocks, data past 4 GiB', { skip }, async () => {
  // On tmpfs, reading a hole copies the shared zero page; on ext4 the first read of 5 GiB of holes fills the page
  // cache with zeroed pages first (~15 s of kernel time here), which has nothing to do with the writer.
  const shm = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/mkportable-sqfs-') : work;
  const src = path.join(shm, 'big');
  const G = 2 ** 30;
  const size = 5 * G + 12_345;
  const marks: [number, Buffer][] = [[0, noise(3000, 41)], [4 * G - 1000, noise(70_000, 42)], [size - 12_345 - 500, noise(12_845, 43)]];
  run('truncate', ['-s', String(size), src]);
  const fh = await fs.open(src, 'r+');
  for (const [at, data] of marks) await fh.write(data, 0, data.length, at);
  await fh.close();
  const source = directorySource(shm);
  const tree = createTree();
  tree.entries.set('/', { ...base, mode: 0o755, type: 'dir' });
  tree.entries.set('/big', { ...base, type: 'file', size, content: { kind: 'source', source, path: '/big' } });
  tree.entries.set('/small', fileEntry('after the big one'));
  const img = path.join(work, 'big.sqfs');
  await writeSquashfs(tree, img, { compressor: { name: 'gzip', blockSize: 1 << 20 }, mtime: 1_700_000_000 });
  assert.ok((await fs.stat(img)).size < 1 << 20, 'zero blocks take no space');
  assert.match(run('unsquashfs', ['-llnumeric', img]).stdout, new RegExp(`-rw-r--r-- 0/0 +${size} .* squashfs-root/big`));
  const st = run('rdsquashfs', ['-s', '/big', img]).stdout;
  assert.match(st, /Inode type: extended file/);
  assert.match(st, new RegExp(`File size: ${size}\\b`));
  // Data in blocks 0, 4095 and 4096 (the mark straddles 4 GiB) and 5119; every other full block is sparse.
  assert.match(st, new RegExp(`Sparse: ${5 * G - 4 * (1 << 20)}\\b`), st);
  await withMount(img, async (mnt) => {
    assert.equal((await fs.stat(path.join(mnt, 'big'))).size, size);
    const got = await fs.open(path.join(mnt, 'big'), 'r');
    const want = await fs.open(src, 'r');
    try {
      for (const at of [0, 2 * G, 4 * G - 1000 - 4096, 4 * G - 1, 4 * G + 65_000, size - 40_000]) {
        const [x, y] = [Buffer.alloc(40_000), Buffer.alloc(40_000)];
        await got.read(x, 0, x.length, at);
        await want.read(y, 0, y.length, at);
        assert.ok(x.equals(y), `bytes at ${at}`);
      }
    } finally {
      await got.close();
      await want.close();
    }
    assert.equal(await fs.readFile(path.join(mnt, 'small'), 'utf8'), 'after the big one');
  });
  rmSync(img);
  rmSync(src);
  if (shm !== work) rmSync(shm, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------
// Failures: SOURCE_READ with the origin, and no image left behind.

/** With gzip (worker threads) and plain lz4 (the native data path): the same error either way. */
async function expectSourceRead(tree: ImageTree, img: string, pattern: RegExp): Promise<void> {
  for (const name of ['gzip', 'lz4'] as const) {
    await assert.rejects(writeSquashfs(tree, img, { compressor: { name, blockSize: 4096 }, mtime: 0, workers: 1 }), (e: unknown) => {
      assert.ok(isMkportableError(e), String(e));
      assert.equal(e.code, 'SOURCE_READ');
      assert.match(e.message, pattern, name);
      return true;
    });
    await assert.rejects(fs.stat(img), { code: 'ENOENT' });
  }
}

test('a file that shrinks, grows or vanishes while read stops with SOURCE_READ', async () => {
  const dir = mkdtempSync(path.join(work, 'err-'));
  await fs.writeFile(path.join(dir, 'f'), noise(50_000, 1));
  const host = directorySource(dir, 'dir:test');
  const mk = (source: Source, size: number) => {
    const tree = createTree();
    tree.entries.set('/', { ...base, mode: 0o755, type: 'dir' });
    tree.entries.set('/a', fileEntry(noise(20_000, 2)));
    tree.entries.set('/f', { ...base, origin: 'dir:test:/f', type: 'file', size, content: { kind: 'source', source, path: '/f' } });
    return tree;
  };
  const img = path.join(dir, 'out.sqfs');
  // The source holds fewer bytes than planned (read through Source.read: no host path).
  const noHost: Source = { ...host, hostPath: () => undefined };
  await expectSourceRead(mk(noHost, 60_000), img, /^dir:test:\/f: changed size while building \(60000 → 50000 bytes\)$/);
  // Fewer and more bytes than planned through the host path (a worker's one-call read of a small file).
  await expectSourceRead(mk(host, 60_000), img, /^dir:test:\/f: changed size while building \(60000 → 50000 bytes\)$/);
  await expectSourceRead(mk(host, 40_000), img, /^dir:test:\/f: changed size while building/);
  await expectSourceRead(mk(noHost, 40_000), img, /^dir:test:\/f: changed size while building/);
  // Gone.
  const tree = mk(host, 50_000);
  await fs.rm(path.join(dir, 'f'));
  await expectSourceRead(tree, img, /^dir:test:\/f: cannot read: no such file or directory \(ENOENT\)$/);
  // A read error from the source.
  const failing: Source = { ...noHost, read: async () => { throw new Error('I/O error'); } };
  await expectSourceRead(mk(failing, 50_000), img, /^dir:test:\/f: cannot read: I\/O error$/);
});

test('regression: Buffer contents in the tree are not detached by the transfer to workers', async () => {
  // Buffer#slice is a view: handing such a "copy" to a worker by transfer used to detach the tree's own bytes.
  const data = noise(300_000, 9);
  const small = Buffer.from('a small file held in a Buffer');
  const tree = createTree();
  tree.entries.set('/', { ...base, mode: 0o755, type: 'dir' });
  tree.entries.set('/big', fileEntry(data));
  tree.entries.set('/small', fileEntry(small));
  const img = path.join(work, 'buffers.sqfs');
  for (const workers of [1, 2]) await writeSquashfs(tree, img, { compressor: { name: 'gzip', blockSize: 4096 }, mtime: 0, workers });
  assert.equal(data.length, 300_000);
  assert.ok(data.equals(noise(300_000, 9)));
  assert.equal(small.toString(), 'a small file held in a Buffer');
  rmSync(img);
});

test('trees that cannot be stored are refused before anything is written', async () => {
  const img = path.join(work, 'refused.sqfs');
  const cases: [string, (t: ImageTree) => void, RegExp][] = [
    ['no parent', (t) => t.entries.set('/a/b', fileEntry('x')), /parent '\/a' is not a directory/],
    ['long symlink', (t) => t.entries.set('/l', { ...base, type: 'symlink', target: 'x'.repeat(4096) }), /symlink target of 4096 bytes/],
    ['system xattr', (t) => t.entries.set('/f', fileEntry('x', { xattrs: { 'system.posix_acl_access': bytes('x') } })), /xattr 'system\.posix_acl_access'/],
    ['dangling hard link', (t) => t.entries.set('/h', { ...base, type: 'hardlink', target: '/nope' }), /hard link to '\/nope'/],
    // The format would take 256 bytes, but Linux's NAME_MAX is 255: nothing could extract or have made it.
    ['long name', (t) => t.entries.set('/' + 'n'.repeat(256), fileEntry('x')), /name of 256 bytes \(1\.\.255 allowed\)/],
    ['long name in bytes', (t) => t.entries.set('/' + 'é'.repeat(128), fileEntry('x')), /name of 256 bytes/],
  ];
  for (const [what, add, pattern] of cases) {
    const tree = createTree();
    tree.entries.set('/', { ...base, mode: 0o755, type: 'dir' });
    add(tree);
    await assert.rejects(writeSquashfs(tree, img, { compressor: { name: 'gzip', blockSize: 4096 }, mtime: 0 }), pattern, what);
    await assert.rejects(fs.stat(img), { code: 'ENOENT' }, what);
  }
});
