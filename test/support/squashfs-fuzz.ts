/**
 * Fuzzing the reader: small valid images (several compressors and options), seeded mutations, and a full read of
 * whatever still opens. The only acceptable failures are MkportableError IMAGE_CORRUPT / IMAGE_UNSUPPORTED (and
 * PATH_NOT_FOUND for a name that is not valid UTF-8 and so cannot be looked up by its lossy spelling).
 *
 * Used by scripts/fuzz.mjs (long runs with a watchdog) and by fuzz.test.ts (a few thousand iterations).
 * Everything is a function of the seed: `case = makeCase(corpus, seed)` is reproducible.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MkportableError } from '../../src/errors.js';
import { decodeSuperblock, NO_TABLE, SUPERBLOCK_SIZE } from '../../src/squashfs/format.js';
import { isImageError } from '../../src/squashfs/read/errors.js';
import { openImageBuffer } from '../../src/squashfs/read/image.js';

export interface CorpusImage {
  name: string;
  bytes: Uint8Array;
  /** Every field of every structure, for images whose tables are stored raw (empty otherwise). */
  fields: Field[];
}

/** A field of an on-disk structure: where it is, how wide, what it is. */
export interface Field {
  pos: number;
  size: 1 | 2 | 4 | 8;
  what: string;
}

export interface FuzzCase {
  seed: number;
  image: string;
  mutations: string[];
  bytes: Uint8Array;
}

export interface FuzzOutcome {
  seed: number;
  image: string;
  mutations: string[];
  ms: number;
  /** 'read': everything read fine; 'rejected': an image error (the expected outcome for most mutations). */
  result: 'read' | 'rejected' | 'failed';
  code?: string;
  message?: string;
  /** For 'failed': what went wrong (an unexpected exception's stack, or a broken invariant). */
  failure?: string;
  entries: number;
  bytesRead: number;
}

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;

function sh(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

/** A small tree with every node type, several blocks, fragments, hard links, xattrs and a 260-entry directory. */
function buildTree(root: string): void {
  const p = (rel: string) => path.join(root, rel);
  const write = (rel: string, data: string | Uint8Array) => {
    fs.mkdirSync(path.dirname(p(rel)), { recursive: true });
    fs.writeFileSync(p(rel), data);
  };
  const random = rng(42);
  const noise = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
  write('empty', '');
  write('one', 'x');
  write('small.txt', 'hello squashfs\n');
  write('d1/d2/d3/deep.txt', 'deep\n');
  write('blocks', noise(9000));
  write('text', 'compressible text line\n'.repeat(400));
  write('zeros', new Uint8Array(8192 + 100));
  write('names/héllo', 'h');
  write('names/日本', 'j');
  for (let i = 0; i < 260; i++) write(`many/f${String(i).padStart(3, '0')}`, String(i));
  fs.mkdirSync(p('empty-dir'));
  fs.symlinkSync('small.txt', p('link'));
  fs.symlinkSync('d'.repeat(300), p('longlink'));
  fs.linkSync(p('small.txt'), p('hardlink'));
  const root0 = process.getuid?.() === 0;
  if (root0) {
    sh('mknod', [p('chr'), 'c', '1', '3']);
    sh('mknod', [p('blk'), 'b', '300', '70000']);
    fs.chownSync(p('one'), 1000, 1001);
  }
  sh('mkfifo', [p('fifo')]);
  if (hasTool('setfattr')) {
    sh('setfattr', ['-n', 'user.a', '-v', 'b', p('small.txt')]);
    sh('setfattr', ['-n', 'user.long', '-v', 'v'.repeat(300), p('blocks')]);
    sh('setfattr', ['-n', 'user.a', '-v', 'b', p('text')]);
    sh('setfattr', ['-n', 'user.dir', '-v', '1', p('d1')]);
  }
}

/** mksquashfs option sets for the corpus; compressors the reader cannot open are dropped. */
const VARIANTS: Array<{ name: string; args: string[] }> = [
  { name: 'gzip-4k', args: ['-comp', 'gzip', '-b', '4096'] },
  { name: 'raw-4k', args: ['-comp', 'gzip', '-b', '4096', '-noI', '-noD', '-noF', '-noX'] },
  { name: 'raw-4k-nofrag', args: ['-comp', 'gzip', '-b', '4096', '-noI', '-noD', '-noF', '-noX', '-no-fragments'] },
  { name: 'gzip-opts', args: ['-comp', 'gzip', '-b', '4096', '-Xcompression-level', '1', '-no-xattrs', '-no-exports'] },
  { name: 'gzip-128k', args: ['-comp', 'gzip', '-always-use-fragments'] },
  { name: 'xz-4k', args: ['-comp', 'xz', '-b', '4096'] },
  { name: 'zstd-4k', args: ['-comp', 'zstd', '-b', '4096'] },
  { name: 'lz4-4k', args: ['-comp', 'lz4', '-b', '4096', '-Xhc'] },
];

/** Build the corpus in `dir` (needs mksquashfs; gensquashfs adds one image when installed). */
export async function buildCorpus(dir: string): Promise<CorpusImage[]> {
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(tree, { recursive: true });
  buildTree(tree);
  const out: CorpusImage[] = [];
  const add = async (name: string, file: string) => {
    const bytes = new Uint8Array(fs.readFileSync(file));
    try {
      await (await openImageBuffer(bytes)).close();
      out.push({ name, bytes, fields: structureFields(bytes) });
    } catch (e) {
      if (!(e instanceof MkportableError && e.code === 'IMAGE_UNSUPPORTED')) throw e;
    }
  };
  for (const v of VARIANTS) {
    const file = path.join(dir, `${v.name}.sqfs`);
    const r = spawnSync('mksquashfs', [tree, file, '-noappend', '-quiet', '-no-progress', ...v.args]);
    if (r.status === 0) await add(v.name, file);
  }
  if (hasTool('gensquashfs')) {
    const file = path.join(dir, 'gensquashfs.sqfs');
    if (sh('gensquashfs', ['-D', tree, '-q', '-k', '-x', '-c', 'gzip', '-b', '4096', file])) await add('gensquashfs-4k', file);
  }
  if (out.length === 0) throw new Error('fuzz corpus: no image could be built (is mksquashfs installed?)');
  return out;
}

const U16_VALUES = [0, 1, 2, 3, 0x7f, 0x80, 0xff, 0x100, 0x1fff, 0x2000, 0x7fff, 0x8000, 0x8001, 0xfffe, 0xffff];
const U32_VALUES = [
  0, 1, 2, 3, 7, 8, 15, 16, 255, 256, 257, 4095, 4096, 8191, 8192, 8193, 65535, 65536, 0xffffff, 0x1000000,
  0x1000001, 0x1ffffff, 0x2000000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
];

/** One seeded case: an image from the corpus with 1..4 mutations. */
export function makeCase(corpus: CorpusImage[], seed: number): FuzzCase {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(a: readonly T[]): T => a[int(a.length)];
  // Images with a structure map (raw tables) get half the cases: field mutations reach every check from them.
  const mapped = corpus.filter((c) => c.fields.length > 100);
  const base = mapped.length > 0 && r() < 0.5 ? pick(mapped) : pick(corpus);
  const labels = [...new Set(base.fields.map((f) => f.what))];
  let b = new Uint8Array(base.bytes);
  const dv = () => new DataView(b.buffer, b.byteOffset, b.byteLength);
  const sb = decodeSuperblock(base.bytes);
  const used = Number(sb.bytesUsed);
  const tables = [sb.inodeTable, sb.directoryTable, sb.fragmentTable, sb.exportTable, sb.idTable, sb.xattrIdTable]
    .filter((t) => t !== NO_TABLE && t < sb.bytesUsed)
    .map(Number)
    .sort((x, y) => x - y);
  const metaStart = Number(sb.inodeTable);
  /** A position biased towards metadata (where the structure is). */
  const position = () => (r() < 0.7 ? metaStart + int(Math.max(1, used - metaStart)) : int(used));
  const interesting32 = () => (r() < 0.8 ? pick(U32_VALUES) : (r() * 2 ** 32) >>> 0);
  const mutations: string[] = [];
  const count = 1 + int(r() < 0.6 ? 1 : 4);
  for (let m = 0; m < count; m++) {
    const kind = base.fields.length > 0 && r() < 0.4 ? 9 : int(9);
    switch (kind) {
      case 0: {
        const n = 1 + int(8);
        for (let i = 0; i < n; i++) {
          const at = position();
          if (at < b.length) b[at] ^= 1 << int(8);
        }
        mutations.push(`flip ${n} bits`);
        break;
      }
      case 1: {
        const at = position();
        const v = r() < 0.5 ? int(256) : pick([0, 0xff, 0x7f, 0x80, 1]);
        if (at < b.length) b[at] = v;
        mutations.push(`byte @${at}=${v}`);
        break;
      }
      case 2: {
        const at = position();
        const n = 2 + int(31);
        const fillByte = r() < 0.5 ? -1 : pick([0, 0xff]);
        for (let i = at; i < Math.min(b.length, at + n); i++) b[i] = fillByte < 0 ? int(256) : fillByte;
        mutations.push(`run @${at} len ${n}`);
        break;
      }
      case 3: {
        const at = int(b.length);
        b = b.slice(0, at);
        mutations.push(`truncate ${at}`);
        break;
      }
      case 4: {
        if (b.length < SUPERBLOCK_SIZE) break;
        const field = pick([32, 40, 48, 56, 64, 72, 80, 88]);
        const old = dv().getBigUint64(field, true);
        const choices = [
          0n, NO_TABLE, BigInt(int(b.length + 1)), BigInt(pick(tables) ?? 0), old + BigInt(1 + int(16)),
          old - BigInt(1 + int(16)), old + 8192n, old + (1n << 32n), BigInt(b.length), sb.bytesUsed, old ^ (1n << BigInt(int(64))),
        ];
        const v = BigInt.asUintN(64, pick(choices));
        dv().setBigUint64(field, v, true);
        mutations.push(`superblock u64 @${field}=${v}`);
        break;
      }
      case 5: {
        if (b.length < SUPERBLOCK_SIZE) break;
        const which = int(6);
        if (which === 0) {
          const log = 10 + int(12);
          dv().setUint32(12, 2 ** log, true);
          dv().setUint16(22, log, true);
          mutations.push(`block size 2^${log}`);
        } else {
          const field = pick([4, 16, 20, 22, 24, 26, 28, 30, 12]);
          const wide = field === 4 || field === 16 || field === 12;
          const v = wide ? interesting32() : pick(U16_VALUES.concat([1, 2, 3, 4, 5, 6, 7]));
          if (wide) dv().setUint32(field, v, true);
          else dv().setUint16(field, v & 0xffff, true);
          mutations.push(`superblock @${field}=${v}`);
        }
        break;
      }
      case 6: {
        const at = (position() & ~1) >>> 0;
        if (at + 4 > b.length) break;
        if (r() < 0.5) {
          const v = pick(U16_VALUES);
          dv().setUint16(at, v, true);
          mutations.push(`u16 @${at}=${v}`);
        } else {
          const v = interesting32();
          dv().setUint32(at, v, true);
          mutations.push(`u32 @${at}=${v}`);
        }
        break;
      }
      case 7: {
        // Splice: copy a stretch of the image over another (plausible structures in the wrong place).
        const from = position();
        const to = position();
        const n = 1 + int(64);
        if (from + n <= b.length && to + n <= b.length) b.copyWithin(to, from, from + n);
        mutations.push(`copy ${n} @${from}->${to}`);
        break;
      }
      case 9: {
        // A field of a structure, set to a value that sits on some boundary.
        // Pick a kind of field first, so rare structures (xattr entries) are hit as often as common ones.
        const label = pick(labels);
        const f = pick(base.fields.filter((x) => x.what === label));
        if (f.pos + f.size > b.length) break;
        const v = dv();
        if (f.size === 1) {
          const n = pick([0, 0x2f, 0x2e, 0xff, 0x80, b[f.pos] + 1]) & 0xff;
          b[f.pos] = n;
          mutations.push(`${f.what} @${f.pos}=${n}`);
        } else if (f.size === 2) {
          const old = v.getUint16(f.pos, true);
          const n = pick([...U16_VALUES, old + 1, old - 1, old + 8, old ^ 0x8000]) & 0xffff;
          v.setUint16(f.pos, n, true);
          mutations.push(`${f.what} @${f.pos}=${n}`);
        } else if (f.size === 4) {
          const old = v.getUint32(f.pos, true);
          const n = pick([...U32_VALUES, old + 1, old - 1, old + 8192, old - 8192, old * 2, sb.inodeCount, sb.inodeCount + 1, old | 0x1000000]) >>> 0;
          v.setUint32(f.pos, n, true);
          mutations.push(`${f.what} @${f.pos}=${n}`);
        } else {
          const old = v.getBigUint64(f.pos, true);
          const n = BigInt.asUintN(64, pick([0n, old + 1n, old - 1n, old + 8192n, old + (1n << 32n), NO_TABLE, sb.bytesUsed, old << 16n]));
          v.setBigUint64(f.pos, n, true);
          mutations.push(`${f.what} @${f.pos}=${n}`);
        }
        break;
      }
      default: {
        // Near a table start: headers and index arrays.
        const t = pick(tables);
        if (t === undefined) break;
        const at = t + int(24);
        if (at + 4 > b.length) break;
        const v = interesting32();
        if (r() < 0.5) dv().setUint16(at, v & 0xffff, true);
        else dv().setUint32(at, v, true);
        mutations.push(`table@${t}+${at - t}=${v}`);
        break;
      }
    }
  }
  return { seed, image: base.name, mutations, bytes: b };
}

export interface Budget {
  /** Stop reading file contents after this many bytes (the walk goes on). */
  maxBytes: number;
}

/** Open, walk, stat, readdir, readlink and read everything; classify the outcome. */
export async function runCase(c: FuzzCase, budget: Budget = { maxBytes: 64 << 20 }): Promise<FuzzOutcome> {
  const t0 = performance.now();
  const outcome: FuzzOutcome = { seed: c.seed, image: c.image, mutations: c.mutations, ms: 0, result: 'read', entries: 0, bytesRead: 0 };
  let currentPath = '';
  try {
    const img = await openImageBuffer(c.bytes, { name: 'fuzz.sqfs' });
    try {
      for await (const { path: p, stat } of img.walk()) {
        currentPath = p;
        outcome.entries++;
        const again = await img.stat(p);
        if (again.ino !== stat.ino || again.type !== stat.type) throw new Error(`invariant: stat(${p}) disagrees with walk()`);
        if (stat.type === 'dir') await img.readdir(p);
        else if (stat.type === 'symlink') {
          if ((await img.readlink(p)) !== stat.target) throw new Error(`invariant: readlink(${p}) disagrees with stat`);
        } else if (stat.type === 'file' && outcome.bytesRead < budget.maxBytes) {
          if (stat.size <= 1 << 20) {
            const data = await img.readFile(p);
            if (data.length !== stat.size) throw new Error(`invariant: readFile(${p}) gave ${data.length} bytes, size ${stat.size}`);
            outcome.bytesRead += data.length;
          } else {
            let n = 0;
            for await (const chunk of img.chunks(p)) {
              n += chunk.length;
              outcome.bytesRead += chunk.length;
              if (outcome.bytesRead >= budget.maxBytes) break;
            }
            if (outcome.bytesRead < budget.maxBytes && n !== stat.size) throw new Error(`invariant: chunks(${p}) gave ${n} bytes, size ${stat.size}`);
          }
        }
      }
    } finally {
      await img.close();
    }
  } catch (e) {
    const lossyName = e instanceof MkportableError && e.code === 'PATH_NOT_FOUND' && currentPath.includes('\uFFFD');
    // Image errors name the file, and a corrupt image the offset of what is wrong.
    const wellFormed = isImageError(e) && e.message.startsWith('fuzz.sqfs: ') && (e.code !== 'IMAGE_CORRUPT' || / at offset \d+$/.test(e.message));
    if (wellFormed || lossyName) {
      outcome.result = 'rejected';
      outcome.code = (e as MkportableError).code;
      outcome.message = (e as MkportableError).message;
    } else {
      outcome.result = 'failed';
      outcome.failure = e instanceof Error ? (e.stack ?? e.message) : String(e);
    }
  }
  outcome.ms = performance.now() - t0;
  return outcome;
}

// ---- structure map of a raw (uncompressed-metadata) image, independent of the reader ----

/** A metadata stream whose blocks are all stored raw: payload bytes and where each lies in the file. */
class RawStream {
  readonly bytes: number[] = [];
  readonly #filePos: number[] = [];
  /** Block position relative to the table start -> stream offset of its first byte. */
  readonly #blockAt = new Map<number, number>();
  readonly headers: number[] = [];

  constructor(b: Uint8Array, start: number, end: number) {
    let at = start;
    while (at + 2 <= end) {
      const h = b[at] | (b[at + 1] << 8);
      const len = h & 0x7fff;
      if (!(h & 0x8000) || len === 0 || at + 2 + len > end) throw new Error('not a raw stream');
      this.#blockAt.set(at - start, this.bytes.length);
      this.headers.push(at);
      for (let i = 0; i < len; i++) {
        this.bytes.push(b[at + 2 + i]);
        this.#filePos.push(at + 2 + i);
      }
      at += 2 + len;
    }
  }

  /** Stream offset of a (block, offset) reference, or -1. */
  offsetOf(block: number, offset: number): number {
    const s = this.#blockAt.get(block);
    return s === undefined ? -1 : s + offset;
  }

  pos(off: number): number {
    return this.#filePos[off] ?? -1;
  }

  u16(off: number): number {
    return this.bytes[off] | (this.bytes[off + 1] << 8);
  }

  u32(off: number): number {
    return (this.u16(off) | (this.u16(off + 2) << 16)) >>> 0;
  }

  u64(off: number): number {
    return this.u32(off) + this.u32(off + 4) * 2 ** 32;
  }
}

/** Positions of every field of the superblock, inodes, directory listings, and fixed tables of a raw image. */
export function structureFields(b: Uint8Array): Field[] {
  const fields: Field[] = [];
  const sb = decodeSuperblock(b);
  const sbFields: Array<[number, 2 | 4 | 8, string]> = [
    [4, 4, 'inodes'], [12, 4, 'block_size'], [16, 4, 'fragments'], [20, 2, 'compression'], [22, 2, 'block_log'],
    [24, 2, 'flags'], [26, 2, 'no_ids'], [32, 8, 'root_inode'], [40, 8, 'bytes_used'], [48, 8, 'id_table'],
    [56, 8, 'xattr_table'], [64, 8, 'inode_table'], [72, 8, 'directory_table'], [80, 8, 'fragment_table'], [88, 8, 'export_table'],
  ];
  for (const [pos, size, what] of sbFields) fields.push({ pos, size, what: `sb.${what}` });
  try {
    const inodes = new RawStream(b, Number(sb.inodeTable), Number(sb.directoryTable));
    const next = [sb.fragmentTable, sb.exportTable, sb.idTable].filter((t) => t !== NO_TABLE).map(Number);
    const dirs = new RawStream(b, Number(sb.directoryTable), Math.min(...next));
    const add = (s: RawStream, off: number, size: 1 | 2 | 4 | 8, what: string) => {
      const pos = s.pos(off);
      if (pos >= 0) fields.push({ pos, size, what });
    };
    for (const h of [...inodes.headers, ...dirs.headers]) fields.push({ pos: h, size: 2, what: 'metadata header' });
    const listings: Array<{ block: number; offset: number; size: number }> = [];
    let off = 0;
    const bs = sb.blockSize;
    while (off + 16 <= inodes.bytes.length) {
      const type = inodes.u16(off);
      for (const [o, size, what] of [[0, 2, 'type'], [2, 2, 'mode'], [4, 2, 'uid'], [6, 2, 'gid'], [8, 4, 'mtime'], [12, 4, 'inode_number']] as const) {
        add(inodes, off + o, size, `inode.${what}`);
      }
      const body = off + 16;
      const u32s = (names: string[]) => names.forEach((n, i) => add(inodes, body + 4 * i, 4, `inode.${n}`));
      switch (type) {
        case 1:
          u32s(['start_block', 'nlink']);
          add(inodes, body + 8, 2, 'dir.file_size');
          add(inodes, body + 10, 2, 'dir.offset');
          add(inodes, body + 12, 4, 'dir.parent');
          listings.push({ block: inodes.u32(body), offset: inodes.u16(body + 10), size: inodes.u16(body + 8) });
          off = body + 16;
          break;
        case 8: {
          u32s(['nlink', 'file_size', 'start_block', 'parent']);
          add(inodes, body + 16, 2, 'xdir.i_count');
          add(inodes, body + 18, 2, 'xdir.offset');
          add(inodes, body + 20, 4, 'xdir.xattr');
          listings.push({ block: inodes.u32(body + 8), offset: inodes.u16(body + 18), size: inodes.u32(body + 4) });
          let at = body + 24;
          for (let i = 0; i < inodes.u16(body + 16); i++) at += 12 + inodes.u32(at + 8) + 1;
          off = at;
          break;
        }
        case 2:
        case 9: {
          const ext = type === 9;
          if (ext) {
            add(inodes, body, 8, 'xfile.start_block');
            add(inodes, body + 8, 8, 'xfile.file_size');
            add(inodes, body + 16, 8, 'xfile.sparse');
            ['nlink', 'fragment', 'offset', 'xattr'].forEach((n, i) => add(inodes, body + 24 + 4 * i, 4, `xfile.${n}`));
          } else {
            u32s(['start_block', 'fragment', 'offset', 'file_size']);
          }
          const size = ext ? inodes.u64(body + 8) : inodes.u32(body + 12);
          const frag = inodes.u32(body + (ext ? 28 : 4));
          const blocks = frag === 0xffffffff ? Math.ceil(size / bs) : Math.floor(size / bs);
          const list = body + (ext ? 40 : 16);
          for (let i = 0; i < blocks; i++) add(inodes, list + 4 * i, 4, 'block_list');
          off = list + 4 * blocks;
          break;
        }
        case 3:
        case 10: {
          u32s(['nlink', 'symlink_size']);
          const n = inodes.u32(body + 4);
          for (let i = 0; i < n; i += 7) add(inodes, body + 8 + i, 1, 'symlink byte');
          if (type === 10) add(inodes, body + 8 + n, 4, 'symlink.xattr');
          off = body + 8 + n + (type === 10 ? 4 : 0);
          break;
        }
        case 4: case 5: u32s(['nlink', 'rdev']); off = body + 8; break;
        case 11: case 12: u32s(['nlink', 'rdev', 'xattr']); off = body + 12; break;
        case 6: case 7: u32s(['nlink']); off = body + 4; break;
        case 13: case 14: u32s(['nlink', 'xattr']); off = body + 8; break;
        default: off = inodes.bytes.length;
      }
    }
    for (const l of listings) {
      let at = dirs.offsetOf(l.block, l.offset);
      if (at < 0 || l.size <= 3) continue;
      const end = at + l.size - 3;
      while (at + 12 <= end) {
        add(dirs, at, 4, 'dir_header.count');
        add(dirs, at + 4, 4, 'dir_header.start_block');
        add(dirs, at + 8, 4, 'dir_header.inode_number');
        const count = dirs.u32(at) + 1;
        at += 12;
        for (let i = 0; i < count && at + 8 <= end; i++) {
          add(dirs, at, 2, 'dir_entry.offset');
          add(dirs, at + 2, 2, 'dir_entry.inode_offset');
          add(dirs, at + 4, 2, 'dir_entry.type');
          add(dirs, at + 6, 2, 'dir_entry.name_size');
          const n = dirs.u16(at + 6) + 1;
          add(dirs, at + 8, 1, 'dir_entry.name[0]');
          add(dirs, at + 8 + n - 1, 1, 'dir_entry.name[-1]');
          at += 8 + n;
        }
      }
    }
  } catch {
    // Not a raw image (or not the layout expected): the superblock fields are still useful.
  }
  // Fixed-size tables and their index arrays.
  const indexed = (start: bigint, count: number, entry: number, names: Array<[number, 2 | 4 | 8, string]>, what: string) => {
    if (start === NO_TABLE || count === 0) return;
    const n = Math.ceil((count * entry) / 8192);
    const at = Number(start);
    for (let i = 0; i < n; i++) {
      if (at + 8 * i + 8 > b.length) return;
      fields.push({ pos: at + 8 * i, size: 8, what: `${what} index` });
      const blockPos = Number(new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at + 8 * i, true));
      if (blockPos + 2 > b.length) continue;
      fields.push({ pos: blockPos, size: 2, what: `${what} metadata header` });
      const h = b[blockPos] | (b[blockPos + 1] << 8);
      if (!(h & 0x8000)) continue;
      const inBlock = Math.min(count - i * (8192 / entry), 8192 / entry);
      for (let e = 0; e < inBlock; e++) {
        for (const [o, size, name] of names) fields.push({ pos: blockPos + 2 + e * entry + o, size, what: `${what}.${name}` });
      }
    }
  };
  indexed(sb.fragmentTable, sb.fragmentCount, 16, [[0, 8, 'start'], [8, 4, 'size']], 'fragment');
  indexed(sb.idTable, sb.idCount, 4, [[0, 4, 'id']], 'id');
  indexed(sb.exportTable, sb.inodeCount, 8, [[0, 8, 'ref']], 'export');
  if (sb.xattrIdTable !== NO_TABLE && Number(sb.xattrIdTable) + 16 <= b.length) {
    const at = Number(sb.xattrIdTable);
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    fields.push({ pos: at, size: 8, what: 'xattr.kv_start' }, { pos: at + 8, size: 4, what: 'xattr.ids' });
    const ids = v.getUint32(at + 8, true);
    indexed(BigInt(at + 16), ids, 16, [[0, 8, 'ref'], [8, 4, 'count'], [12, 4, 'size']], 'xattr_id');
    // Key/value entries, from each xattr id's reference (value records stored out of line may come first).
    try {
      const kvStart = Number(v.getBigUint64(at, true));
      const firstIdBlock = Number(v.getBigUint64(at + 16, true));
      const kv = new RawStream(b, kvStart, firstIdBlock);
      const idTable = new RawStream(b, firstIdBlock, at);
      for (let id = 0; id < ids; id++) {
        const ref = idTable.u64(id * 16);
        let off = kv.offsetOf(Math.floor(ref / 65536), ref % 65536);
        for (let i = 0; i < idTable.u32(id * 16 + 8) && off >= 0 && off + 8 <= kv.bytes.length; i++) {
          const type = kv.u16(off);
          const nameSize = kv.u16(off + 2);
          for (const [o, size, what] of [[0, 2, 'type'], [2, 2, 'name_size']] as const) {
            const pos = kv.pos(off + o);
            if (pos >= 0) fields.push({ pos, size, what: `xattr_kv.${what}` });
          }
          const vOff = off + 4 + nameSize;
          const vpos = kv.pos(vOff);
          if (vpos >= 0) fields.push({ pos: vpos, size: 4, what: 'xattr_kv.value_size' });
          if (type & 0x100) {
            const rpos = kv.pos(vOff + 4);
            if (rpos >= 0) fields.push({ pos: rpos, size: 8, what: 'xattr_kv.value_ref' });
          }
          off = vOff + 4 + kv.u32(vOff);
        }
      }
    } catch {
      // compressed kv table
    }
  }
  return fields.filter((f) => f.pos >= 0 && f.pos + f.size <= b.length);
}
