/**
 * Differential tests: images built by mksquashfs (and squashfs-tools-ng's gensquashfs, and sqfstar) from a generated
 * tree, read back with our reader and compared entry by entry with
 *   - the source tree itself (lstat, readlink, contents, getfattr),
 *   - unsquashfs -d extraction of the same image (lstat, readlink, rdev, contents, getfattr),
 *   - unsquashfs -lln listing (order, mode string, uid/gid, size, minute mtime, symlink target),
 *   - rdsquashfs -s for inode numbers of a sample of paths.
 * Every compressor mksquashfs offers and the reader supports (gzip, xz, zstd, lz4) is tested.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { openImage, type NodeStat, type NodeType, type SquashfsImage, type WalkEntry } from './index.js';
import { formatMode } from './ls.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
// Everything the header promises: the fixture tree needs root (devices, chown), attr/libcap2-bin (xattrs, a file
// capability) and python3 (a socket); the oracles are squashfs-tools and squashfs-tools-ng.
const TOOLS = ['mksquashfs', 'unsquashfs', 'sqfstar', 'tar', 'getfattr', 'setfattr', 'setcap', 'python3', 'rdsquashfs', 'gensquashfs'];
const MISSING = TOOLS.filter((t) => !hasTool(t));
const ROOT = process.getuid?.() === 0;
const skip = MISSING.length ? `not installed: ${MISSING.join(', ')}` : !ROOT ? 'needs root (devices, chown, xattrs)' : false;

function run(cmd: string, args: string[], opts: { input?: Uint8Array; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(cmd, args, { input: opts.input, env: opts.env ?? process.env, maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout.toString('utf8');
}

/** Deterministic bytes (mulberry32). */
function randomBytes(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (t ^ (t >>> 14)) & 0xff;
  }
  return out;
}

const K = 1024;
const M = 1024 * K;

/** The generated source tree: everything the format can hold that a test machine can create. */
function buildTree(root: string): void {
  const p = (...parts: string[]) => path.join(root, ...parts);
  const write = (rel: string, data: Uint8Array | string) => {
    fs.mkdirSync(path.dirname(p(rel)), { recursive: true });
    fs.writeFileSync(p(rel), data);
  };
  write('empty', '');
  write('one', 'x');
  const sizes = [1, 100, 4095, 4096, 4097, 3 * 4 * K, 128 * K - 1, 128 * K, 2 * 128 * K, 300_000, M + 1, 2 * M];
  sizes.forEach((n, i) => write(`data/rand-${n}`, randomBytes(1000 + i, n)));
  write('data/text.txt', 'the quick brown fox jumps over the lazy dog\n'.repeat(5000));
  // Holes: zero blocks at every block size in the front, data in the middle, zeros at the end.
  const holey = Buffer.alloc(3 * M);
  randomBytes(7, 200 * K).copy(holey, M + 512 * K);
  write('data/holey', holey);
  for (const n of ['héllo wörld.txt', '日本語', 'emoji-😀', 'with space', 'n'.repeat(255), '-dash', 'UPPER', 'lower', '\u00e9', 'e\u0301', 'a.b', 'z']) {
    write(`names/${n}`, n);
  }
  let deep = 'deep';
  for (let i = 1; i <= 40; i++) deep += `/d${i}`;
  write(`${deep}/leaf.txt`, 'leaf\n');
  for (let i = 0; i < 300; i++) write(`big/entry-${String(i).padStart(3, '0')}-${'x'.repeat(30)}`, `${i}\n`);
  for (let i = 0; i < 20; i++) fs.mkdirSync(p(`big/sub-${i}`));
  fs.mkdirSync(p('empty-dir'));
  fs.mkdirSync(p('links'));
  fs.symlinkSync('../one', p('links/short'));
  fs.symlinkSync('/data/text.txt', p('links/abs'));
  const longTarget = Array.from({ length: 19 }, () => 'a'.repeat(200)).join('/') + '/' + 'b'.repeat(175);
  assert.equal(longTarget.length, 3994);
  fs.symlinkSync(longTarget, p('links/long'));
  fs.symlinkSync('nowhere', p('links/dangling'));
  fs.symlinkSync('../names', p('links/dirlink'));
  fs.mkdirSync(p('hard'));
  fs.linkSync(p('data/rand-100'), p('hard/link1'));
  fs.linkSync(p('data/rand-100'), p('hard/link2'));
  fs.linkSync(p('empty'), p('hard/empty-link'));
  fs.mkdirSync(p('dev'));
  run('mknod', [p('dev/null'), 'c', '1', '3']);
  run('mknod', [p('dev/sda'), 'b', '8', '0']);
  run('mknod', [p('dev/bigminor'), 'c', '300', '70000']);
  run('mkfifo', [p('dev/fifo')]);
  run('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', p('dev/socket')]);
  run('setfattr', ['-n', 'user.comment', '-v', 'hello', p('data/text.txt')]);
  run('setfattr', ['-n', 'user.big', '-v', '0x' + randomBytes(3, 3000).toString('hex'), p('data/text.txt')]);
  run('setfattr', ['-n', 'trusted.t', '-v', 'trusted value', p('data/text.txt')]);
  run('setfattr', ['-n', 'user.ünï', '-v', 'x', p('names/日本語')]);
  run('setfattr', ['-n', 'user.dir', '-v', '1', p('deep')]);
  for (let i = 0; i < 30; i++) run('setfattr', ['-n', `user.k${i}`, '-v', `value ${i}`, p('data/rand-4097')]);
  // The same set on two files: mksquashfs shares it.
  for (const f of ['data/rand-1', 'one']) run('setfattr', ['-n', 'user.shared', '-v', 'same', p(f)]);
  fs.chownSync(p('data/rand-1'), 1000, 1000);
  fs.chownSync(p('names'), 65534, 65534);
  fs.chownSync(p('one'), 123456, 7);
  fs.chownSync(p('data/rand-4096'), 3_000_000_000, 2_999_999_999);
  fs.lchownSync(p('links/short'), 42, 43);
  fs.chmodSync(p('data/rand-4095'), 0o4755);
  fs.chmodSync(p('data/rand-4097'), 0o2750);
  fs.chmodSync(p('data/rand-4096'), 0o000);
  fs.chmodSync(p('one'), 0o777);
  fs.mkdirSync(p('sticky'));
  fs.chmodSync(p('sticky'), 0o1777);
  fs.utimesSync(p('one'), 0, 0);
  fs.utimesSync(p('empty'), 2 ** 31 - 1, 2 ** 31 - 1);
  fs.utimesSync(p('data/text.txt'), 4_000_000_000, 4_000_000_000);
  fs.lutimesSync(p('links/abs'), 1_000_000_000, 1_000_000_000);
  fs.utimesSync(p('deep'), 1_234_567_890, 1_234_567_890);
  // Last: chown clears security.capability.
  run('setcap', ['cap_net_raw+ep', p('data/rand-1')]);
}

// ---- reading a directory tree the way the reader reports an image ----

interface TreeEntry {
  path: string;
  type: NodeType;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  nlink: number;
  ino: bigint;
  target?: Buffer;
  major?: number;
  minor?: number;
  abs: string;
}

function typeOf(st: fs.BigIntStats): NodeType {
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isBlockDevice()) return 'block';
  if (st.isCharacterDevice()) return 'char';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

/** Depth-first pre-order, names sorted by bytes, like the image. */
function readTree(root: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  const visit = (abs: string, rel: string) => {
    const st = fs.lstatSync(abs, { bigint: true });
    const type = typeOf(st);
    const e: TreeEntry = {
      path: rel, type, abs,
      mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid),
      mtime: Number(st.mtimeMs / 1000n), size: Number(st.size), nlink: Number(st.nlink), ino: st.ino,
    };
    if (type === 'symlink') e.target = fs.readlinkSync(abs, { encoding: 'buffer' });
    if (type === 'block' || type === 'char') {
      const rdev = st.rdev;
      e.major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
      e.minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    }
    out.push(e);
    if (type === 'dir') {
      const names = fs.readdirSync(abs, { encoding: 'buffer' }).sort(Buffer.compare);
      for (const n of names) visit(path.join(abs, n.toString('utf8')), (rel === '/' ? '' : rel) + '/' + n.toString('utf8'));
    }
  };
  visit(root, '/');
  return out;
}

/** All xattrs under `root` by image path, from one `getfattr -R` run. */
function treeXattrs(root: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  const text = run('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root]);
  let current: Record<string, string> | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      // getfattr prints UTF-8 names raw and escapes control characters and '\\' as \ooo.
      const name = line.slice('# file: '.length).replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
      const rel = path.relative(root, name);
      current = {};
      out.set(rel === '' ? '/' : '/' + rel, current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      const value = line.slice(eq + 1);
      current[line.slice(0, eq)] = value.startsWith('0x') ? value.slice(2) : '';
    }
  }
  return out;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function readerEntries(img: SquashfsImage): Promise<WalkEntry[]> {
  const out: WalkEntry[] = [];
  for await (const e of img.walk()) out.push(e);
  return out;
}

interface CompareOptions {
  /** Whether the image should have the tree's xattrs (false: the image must have none). */
  xattrs: boolean;
  /** Compare directory sizes? (never for a real tree: ext4 directory sizes differ) */
  label: string;
  /** Skip directory link counts (gensquashfs 1.2 stores 2 + number of entries instead of 2 + subdirectories). */
  skipDirNlink?: boolean;
  /** Node types the image cannot hold (tar, hence sqfstar, drops sockets). */
  absentTypes?: NodeType[];
  /** Contents hashes already read through the reader (shared between comparisons of one image). */
  hashes?: Map<string, string>;
}

/** sha256 of a file's contents through the reader, checking readFile and chunks() agree. */
async function readerHash(img: SquashfsImage, p: string, cache?: Map<string, string>): Promise<string> {
  const hit = cache?.get(p);
  if (hit) return hit;
  const whole = sha(await img.readFile(p));
  const h = createHash('sha256');
  for await (const c of img.chunks(p)) {
    assert.ok(c.length <= img.blockSize, `${p}: chunk larger than a block`);
    h.update(c);
  }
  assert.equal(h.digest('hex'), whole, `${p}: chunks() and readFile() agree`);
  cache?.set(p, whole);
  return whole;
}

async function compareWithTree(img: SquashfsImage, entries: WalkEntry[], treeRoot: string, opts: CompareOptions): Promise<void> {
  const tree = readTree(treeRoot);
  const xattrs = treeXattrs(treeRoot);
  assert.deepEqual(entries.map((e) => e.path), tree.map((e) => e.path), `${opts.label}: paths and order`);
  // Hard links: same tree inode <=> same image inode number.
  const inoByTree = new Map<bigint, number>();
  for (let i = 0; i < tree.length; i++) {
    const t = tree[i];
    const s: NodeStat = entries[i].stat;
    const where = `${opts.label}: ${t.path}`;
    assert.equal(s.type, t.type, `${where}: type`);
    assert.equal(s.mode, t.mode, `${where}: mode`);
    assert.equal(s.uid, t.uid, `${where}: uid`);
    assert.equal(s.gid, t.gid, `${where}: gid`);
    assert.equal(s.mtime, t.mtime, `${where}: mtime`);
    if (!(opts.skipDirNlink && t.type === 'dir')) assert.equal(s.nlink, t.nlink, `${where}: nlink`);
    if (t.type === 'file' || t.type === 'symlink') assert.equal(s.size, t.size, `${where}: size`);
    if (t.type === 'symlink') {
      assert.deepEqual(Buffer.from(s.target!, 'utf8'), t.target, `${where}: target`);
      assert.equal(await img.readlink(t.path), s.target);
    }
    if (t.type === 'block' || t.type === 'char') assert.deepEqual([s.major, s.minor], [t.major, t.minor], `${where}: rdev`);
    if (t.type === 'file') assert.equal(await readerHash(img, t.path, opts.hashes), sha(fs.readFileSync(t.abs)), `${where}: contents`);
    if (t.type === 'dir') {
      const names = (await img.readdir(t.path)).map((d) => d.name);
      const want = fs.readdirSync(t.abs, { encoding: 'buffer' }).sort(Buffer.compare).map((n) => n.toString('utf8'));
      assert.deepEqual(names, want, `${where}: readdir`);
    }
    const gotX = Object.fromEntries(Object.entries(s.xattrs).map(([k, v]) => [k, Buffer.from(v).toString('hex')]));
    assert.deepEqual(gotX, opts.xattrs ? (xattrs.get(t.path) ?? {}) : {}, `${where}: xattrs`);
    const seen = inoByTree.get(t.ino);
    if (seen === undefined) inoByTree.set(t.ino, s.ino);
    else assert.equal(s.ino, seen, `${where}: hard link shares the inode number`);
  }
  assert.equal(new Set(inoByTree.values()).size, inoByTree.size, `${opts.label}: distinct inodes have distinct numbers`);
  // The per-type checks above all ran: the fixture holds every node type.
  const allTypes: NodeType[] = ['block', 'char', 'dir', 'fifo', 'file', 'socket', 'symlink'];
  assert.deepEqual([...new Set(tree.map((e) => e.type))].sort(), allTypes.filter((x) => !opts.absentTypes?.includes(x)), `${opts.label}: node types`);
}

/** Inode numbers: 1..inode count, all used. */
function checkInodeNumbers(img: SquashfsImage, entries: WalkEntry[], label: string): void {
  const nums = new Set(entries.map((e) => e.stat.ino));
  assert.equal(nums.size, img.superblock.inodeCount, `${label}: every inode reachable, numbers distinct`);
  for (const n of nums) assert.ok(n >= 1 && n <= img.superblock.inodeCount, `${label}: inode number ${n} in range`);
}

/** unsquashfs -lln agrees on order, mode string, ids, size, minute mtime and targets. */
function compareWithUnsquashfsListing(image: string, entries: WalkEntry[], label: string): void {
  const text = run('unsquashfs', ['-lln', '-UTC', image], { env: { ...process.env, TZ: 'UTC' } });
  const lines = text.split('\n').filter((l) => /^[-dlcbps][-rwxsStT]{9} /.test(l));
  assert.equal(lines.length, entries.length, `${label}: unsquashfs -lln line count`);
  const re = /^(\S{10}) (\d+)\/(\d+) +(\d+|\d+, *\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) squashfs-root(.*)$/s;
  lines.forEach((line, i) => {
    const m = re.exec(line);
    assert.ok(m, `${label}: cannot parse unsquashfs line ${JSON.stringify(line.slice(0, 200))}`);
    const { path: p, stat } = entries[i];
    const where = `${label}: unsquashfs -lln ${p}`;
    assert.equal(m[1], formatMode(stat.type, stat.mode), `${where}: mode string`);
    assert.equal(Number(m[2]), stat.uid, `${where}: uid`);
    assert.equal(Number(m[3]), stat.gid, `${where}: gid`);
    // unsquashfs 4.5.1 prints device numbers wrongly for minor > 255 (rdev >> 8, rdev & 0xff): not compared.
    if (stat.type !== 'char' && stat.type !== 'block') assert.equal(Number(m[4]), stat.size, `${where}: size`);
    assert.equal(m[5], new Date(stat.mtime * 1000).toISOString().slice(0, 16).replace('T', ' '), `${where}: mtime`);
    const rest = stat.type === 'symlink' ? `${p === '/' ? '' : p} -> ${stat.target}` : p === '/' ? '' : p;
    assert.equal(m[6], rest, `${where}: path`);
  });
}

/** squashfs-tools-ng's view of inode numbers for a sample of paths. */
function compareInodeNumbersWithRdsquashfs(image: string, entries: WalkEntry[], label: string): void {
  const step = Math.max(1, Math.floor(entries.length / 12));
  assert.ok(entries.length >= 12, `${label}: only ${entries.length} entries`);
  for (let i = 0; i < entries.length; i += step) {
    const { path: p, stat } = entries[i];
    const out = run('rdsquashfs', ['-s', p, image]);
    const m = /Inode number: (\d+)/.exec(out);
    assert.ok(m, `${label}: rdsquashfs -s ${p}`);
    assert.equal(Number(m[1]), stat.ino, `${label}: ${p} inode number (rdsquashfs)`);
  }
}

// ---- the matrix ----

let work = '';
let tree = '';

before(() => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-read-'));
  tree = path.join(work, 'tree');
  fs.mkdirSync(tree);
  buildTree(tree);
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const COMPRESSORS = ['gzip', 'xz', 'zstd', 'lz4'];
const FULL_MATRIX: { bs: number; opts: string[] }[] = [];
for (const bs of [4 * K, 128 * K, M]) {
  for (const opts of [[], ['-no-fragments'], ['-no-xattrs'], ['-no-exports']]) FULL_MATRIX.push({ bs, opts });
}
FULL_MATRIX.push({ bs: 128 * K, opts: ['-always-use-fragments'] });
FULL_MATRIX.push({ bs: 4 * K, opts: ['-noI', '-noD', '-noF', '-noX'] });
const SHORT_MATRIX = [
  { bs: 128 * K, opts: [] as string[] },
  { bs: 4 * K, opts: ['-no-fragments'] },
  { bs: M, opts: ['-no-exports', '-no-xattrs'] },
];
/** Non-default compressor options: the image gets a compressor options block. */
const OPTION_BLOCK: Record<string, string[]> = {
  gzip: ['-Xcompression-level', '1', '-Xwindow-size', '12'],
  xz: ['-Xbcj', 'x86', '-Xdict-size', '25%'],
  zstd: ['-Xcompression-level', '3'],
  lz4: ['-Xhc'],
};

for (const comp of COMPRESSORS) {
  test(`mksquashfs -comp ${comp} images read back as the source tree, unsquashfs -d, unsquashfs -lln and rdsquashfs see them`, { skip }, async (t) => {
    const matrix = [...(comp === 'gzip' ? FULL_MATRIX : SHORT_MATRIX), { bs: 64 * K, opts: OPTION_BLOCK[comp] }];
    for (const { bs, opts } of matrix) {
      const label = `${comp} -b ${bs} ${opts.join(' ')}`.trim();
      await t.test(label, async () => {
        const image = path.join(work, `img-${comp}-${bs}-${opts.join('')}.sqfs`);
        run('mksquashfs', [tree, image, '-noappend', '-quiet', '-no-progress', '-comp', comp, '-b', String(bs), ...opts]);
        const img = await openImage(image);
        try {
          assert.equal(img.compression, comp);
          assert.equal(img.blockSize, bs);
          if (opts === OPTION_BLOCK[comp]) assert.ok(img.superblock.flags & 0x400, `${label}: has a compressor options block`);
          const entries = await readerEntries(img);
          checkInodeNumbers(img, entries, label);
          assert.equal(entries[0].stat.ino, img.superblock.inodeCount, `${label}: mksquashfs gives the root the last number`);
          const withXattrs = !opts.includes('-no-xattrs');
          if (withXattrs) {
            const byPath = new Map(entries.map((e) => [e.path, e.stat]));
            // Sanity: the comparison below is not vacuous.
            assert.deepEqual(Object.keys(byPath.get('/data/text.txt')!.xattrs).sort(), ['trusted.t', 'user.big', 'user.comment']);
            assert.equal(Object.keys(byPath.get('/data/rand-4097')!.xattrs).length, 30);
            assert.equal(Buffer.from(byPath.get('/names/日本語')!.xattrs['user.ünï']).toString(), 'x');
            assert.ok(byPath.get('/data/rand-1')!.xattrs['security.capability']);
          }
          const hashes = new Map<string, string>();
          await compareWithTree(img, entries, tree, { xattrs: withXattrs, label: `${label} vs source`, hashes });
          const out = path.join(work, 'extract');
          fs.rmSync(out, { recursive: true, force: true });
          run('unsquashfs', ['-quiet', '-no-progress', '-d', out, image]);
          await compareWithTree(img, entries, out, { xattrs: withXattrs, label: `${label} vs unsquashfs -d`, hashes });
          fs.rmSync(out, { recursive: true, force: true });
          compareWithUnsquashfsListing(image, entries, label);
          compareInodeNumbersWithRdsquashfs(image, entries, label);
        } finally {
          await img.close();
          fs.rmSync(image, { force: true });
        }
      });
    }
  });
}

test('gensquashfs (squashfs-tools-ng) and sqfstar images read back as unsquashfs -d, unsquashfs -lln and rdsquashfs see them', { skip }, async (t) => {
  const cases: { label: string; build: (image: string) => void; skipDirNlink?: boolean; absentTypes?: NodeType[] }[] = [
    {
      label: 'gensquashfs -c gzip',
      build: (image) => run('gensquashfs', ['-D', tree, '-k', '-x', '-q', '-c', 'gzip', '-b', '65536', image]),
      skipDirNlink: true,
    },
    {
      label: 'sqfstar',
      build: (image) => {
        const tar = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '-C', tree, '-cf', '-', '.'], { maxBuffer: 1 << 30 });
        assert.equal(tar.status, 0, `tar: ${tar.stderr}`);
        run('sqfstar', ['-quiet', '-no-progress', image], { input: tar.stdout });
      },
      absentTypes: ['socket'],
    },
  ];
  for (const c of cases) {
    await t.test(c.label, async () => {
      const image = path.join(work, 'other.sqfs');
      fs.rmSync(image, { force: true });
      c.build(image);
      const img = await openImage(image);
      try {
        const entries = await readerEntries(img);
        checkInodeNumbers(img, entries, c.label);
        const out = path.join(work, 'extract-other');
        fs.rmSync(out, { recursive: true, force: true });
        run('unsquashfs', ['-quiet', '-no-progress', '-d', out, image]);
        await compareWithTree(img, entries, out, {
          xattrs: true, label: `${c.label} vs unsquashfs -d`, skipDirNlink: c.skipDirNlink, absentTypes: c.absentTypes,
        });
        fs.rmSync(out, { recursive: true, force: true });
        compareWithUnsquashfsListing(image, entries, c.label);
        compareInodeNumbersWithRdsquashfs(image, entries, c.label);
      } finally {
        await img.close();
      }
    });
  }
});

test('symlinks in the middle of a path are followed inside the image; loops are SYMLINK_LOOP', { skip }, async () => {
  const image = path.join(work, 'links.sqfs');
  run('mksquashfs', [tree, image, '-noappend', '-quiet', '-no-progress']);
  const img = await openImage(image);
  try {
    assert.equal((await img.stat('/links/dirlink')).type, 'symlink');
    assert.equal((await img.stat('/links/dirlink/z')).type, 'file');
    assert.equal(Buffer.from(await img.readFile('/links/dirlink/z')).toString(), 'z');
    assert.equal(Buffer.from(await img.readFile('/links/abs')).toString().slice(0, 9), 'the quick');
    assert.equal(Buffer.from(await img.readFile('links/short')).toString(), 'x');
    assert.equal((await img.readdir('/links/dirlink')).length, 12);
    assert.equal((await img.stat('/../../one')).ino, (await img.stat('/one')).ino, '.. stops at the root');
    await assert.rejects(img.stat('/links/dangling/x'), { code: 'PATH_NOT_FOUND' });
    await assert.rejects(img.stat('/nope'), { code: 'PATH_NOT_FOUND' });
    await assert.rejects(img.stat('/one/x'), { code: 'PATH_NOT_FOUND' });
    await assert.rejects(img.readFile('/data'), { code: 'PATH_NOT_FOUND', message: /is a directory/ });
    await assert.rejects(img.readlink('/one'), { code: 'PATH_NOT_FOUND', message: /not a symbolic link/ });
    await assert.rejects(img.readFile('/data/holey', { maxSize: 1000 }), { code: 'IMAGE_UNSUPPORTED' });
    // A walk from a subdirectory.
    const sub: string[] = [];
    for await (const e of img.walk('/hard')) sub.push(e.path);
    assert.deepEqual(sub, ['/hard', '/hard/empty-link', '/hard/link1', '/hard/link2']);
    // createReadStream gives the same bytes.
    const parts: Buffer[] = [];
    for await (const c of img.createReadStream('/data/rand-1048577')) parts.push(c as Buffer);
    assert.equal(sha(Buffer.concat(parts)), sha(fs.readFileSync(path.join(tree, 'data/rand-1048577'))));
  } finally {
    await img.close();
  }
  // A symlink loop inside an image.
  const loopTree = path.join(work, 'loop-tree');
  fs.mkdirSync(loopTree);
  fs.symlinkSync('b', path.join(loopTree, 'a'));
  fs.symlinkSync('a', path.join(loopTree, 'b'));
  const loopImage = path.join(work, 'loop.sqfs');
  run('mksquashfs', [loopTree, loopImage, '-noappend', '-quiet', '-no-progress']);
  const limg = await openImage(loopImage);
  try {
    await assert.rejects(limg.readFile('/a'), { code: 'SYMLINK_LOOP' });
    assert.equal(await limg.readlink('/a'), 'b');
  } finally {
    await limg.close();
  }
});

test('openImage on a missing file and on a non-image', { skip }, async () => {
  await assert.rejects(openImage(path.join(work, 'does-not-exist.sqfs')), { code: 'PATH_NOT_FOUND' });
  const notImage = path.join(work, 'not-an-image');
  fs.writeFileSync(notImage, randomBytes(5, 4096));
  await assert.rejects(openImage(notImage), { code: 'IMAGE_CORRUPT', message: /not a squashfs image .* at offset 0/ });
  fs.writeFileSync(notImage, 'hsqs');
  await assert.rejects(openImage(notImage), { code: 'IMAGE_CORRUPT', message: /too small/ });
});
