/**
 * The data area: file blocks and fragment blocks, read and compressed by the worker pool, written in order.
 *
 * Three loops on the main thread, joined by queues:
 *   producer  - walks the files in inode order and cuts them into tasks (task.ts) of about a MiB: the blocks of big
 *               files, whole small files and tails; host files are read by the workers from their paths, other
 *               bytes are put in an arena slot. Each task holds an arena slot for its result until it is written:
 *               the arena bounds what is in flight, whatever the image size.
 *   sequencer - takes task results in the order the tasks were made, records block sizes, decides duplicates and
 *               packs small files and tails into fragment blocks, which go back to the pool (urgently).
 *   writer    - appends stored bytes in the sequencer's order, waiting for fragment blocks as it meets them, so the
 *               image is the same whatever the number of workers or their timing.
 *
 * Decided from the bytes and the plan alone (so deterministic): sparse blocks (all zeros: block list 0, no bytes),
 * tail packing (the last partial block, or a whole small file, goes into the current fragment block; a tail never
 * splits), duplicates (files whose size another file shares are hashed; a repeat of an earlier file reuses its
 * blocks and fragment, and the writer rewinds over the blocks it already wrote for it), and where fragment blocks
 * are cut: when full, and before files whose path hash picks them, so that a changed file only repacks the fragment
 * blocks up to the next such file and a rebuild finds the others in the block cache.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { MkportableError, systemReason } from '../errors.js';
import { copyBytes } from '../native/copy.js';
import { dataRanges, SPARSE_MIN } from '../native/fs.js';
import { pathBytesOf, type PackedContent, type PackedTree } from '../plan/packed.js';
import { DATA_UNCOMPRESSED, INVALID_FRAGMENT } from './format.js';
import type { FragmentEntry } from './fragment-table.js';
import type { ImageFile } from './output.js';
import type { Plan } from './plan.js';
import type { TaskRunner } from './pool.js';
import { PIECE_FIELDS, Piece, Stored, TASK_PIECES, resultSlack, slotHashes, slotMeta, slotView, type TaskRequest, type TaskResult, type WorkerCounters } from './task.js';

/** Where each file's data went, by tree row (inode rows of regular files; other rows unused). */
export interface FileLayouts {
  /** Absolute position of the first stored block; 0 when the file has no blocks. */
  start: Float64Array;
  /** Bytes in sparse blocks, by row, for the files that have any (few do: not a column). */
  sparse: Map<number, number>;
  fragment: Uint32Array;
  fragmentOffset: Uint32Array;
  /** The file's block list: blocks[blockStart[row] .. + blockCount(row)] (stored size | DATA_UNCOMPRESSED, 0 sparse). */
  blockStart: Uint32Array;
  blocks: Uint32Array;
}

export interface DataProgress {
  /** File bytes read and placed. */
  bytes: number;
  files: number;
  /** Bytes written to the image so far. */
  stored: number;
}

export interface DataOptions {
  blockSize: number;
  /** Pack the tail of files larger than a block into fragments too (ALWAYS_FRAG); otherwise it is a short block. */
  tailPacking: boolean;
  pool: TaskRunner;
  /** Arena slots [0, taskSlots) hold read tasks; the rest (at least 3) fragment blocks and their results. */
  taskSlots: number;
  /** Hash every block (the block cache is keyed by the hash). */
  hashBlocks: boolean;
  onProgress?: (p: DataProgress) => void;
}

export interface DataResult {
  layouts: FileLayouts;
  fragments: FragmentEntry[];
  /** Files stored as references to an identical earlier file. */
  duplicates: number;
  cache: WorkerCounters;
}

const NO_PATH = new Uint8Array(0);
/** Bytes of tasks in flight to aim for, whatever the block size. */
const WINDOW_BYTES = 12 << 20;

/** Bytes of file data per task: big enough that a message costs little against the work it carries. */
const TASK_BYTES = 1 << 20;
/**
 * The arena for a pool: slots big enough for any task's result (a task stops growing past TASK_BYTES, by at most
 * one block) and for a batch of fragment blocks; enough task slots to keep every worker busy with more queued, and
 * two per worker and four more for fragment batches (one being filled; each in flight holds its bytes until
 * compressed and its result until written).
 */
export function arenaLayout(workers: number, blockSize: number): { slotSize: number; taskSlots: number; slots: number } {
  const slotSize = Math.max(TASK_BYTES, blockSize) + blockSize + resultSlack(blockSize);
  const taskSlots = Math.max(3 * workers + 2, Math.floor(WINDOW_BYTES / slotSize));
  return { slotSize, taskSlots, slots: taskSlots + 2 * workers + 4 };
}
/** Fragment blocks compressed as one task: as many as a task's bytes (TASK_BYTES) hold, at most 8. */
function fragmentBatch(blockSize: number): number {
  return Math.max(1, Math.min(8, Math.floor(TASK_BYTES / blockSize)));
}
/** Aim for fragment runs (between path-picked cuts) of about this many fragment blocks. */
const RUN_BLOCKS = 4;
const PROGRESS_MS = 100;

/** Blocks a file stores outside fragments. */
export function blockCount(size: number, blockSize: number, tailPacking: boolean): number {
  return tailPacking || size < blockSize ? Math.floor(size / blockSize) : Math.ceil(size / blockSize);
}

/** Bytes of a file that go in a fragment: what follows its last full block, when tails are packed (or it is small). */
function tailLength(size: number, blockSize: number, tailPacking: boolean): number {
  return tailPacking || size < blockSize ? size - Math.floor(size / blockSize) * blockSize : 0;
}

/** Free arena slots; acquire waits for one. Can be failed, releasing every waiter with the error. */
class SlotPool {
  readonly #free: number[];
  readonly #waiters: { resolve: (slot: number) => void; reject: (e: unknown) => void }[] = [];
  #error: unknown = null;

  constructor(first: number, count: number) {
    this.#free = Array.from({ length: count }, (_, i) => first + count - 1 - i);
  }

  acquire(): Promise<number> | number {
    if (this.#error) return Promise.reject(this.#error);
    const slot = this.#free.pop();
    if (slot !== undefined) return slot;
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  release(slot: number): void {
    const w = this.#waiters.shift();
    if (w) w.resolve(slot);
    else this.#free.push(slot);
  }

  fail(e: unknown): void {
    this.#error ??= e;
    for (const w of this.#waiters.splice(0)) w.reject(e);
  }
}

/** FIFO between two loops; take() hands over everything queued at once. */
class Handoff<T> {
  #items: T[] = [];
  #wake: (() => void) | null = null;
  #closed = false;
  #error: unknown = null;

  push(item: T): void {
    this.#items.push(item);
    if (this.#items.length === 1) this.#notify();
  }

  close(): void {
    this.#closed = true;
    this.#notify();
  }

  fail(e: unknown): void {
    this.#error ??= e;
    this.#notify();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Everything queued (waiting for at least one item); null once closed and drained. */
  async take(): Promise<T[] | null> {
    for (;;) {
      if (this.#error) throw this.#error;
      if (this.#items.length > 0) {
        const items = this.#items;
        this.#items = [];
        return items;
      }
      if (this.#closed) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}

/**
 * Digests of the files seen so far (the first 16 bytes of their SHA-256; sizes are the tree's), in an
 * open-addressing table sized for the files that can be duplicates: about 36 bytes for each of those.
 */
class DigestIndex {
  #slots: Int32Array;
  #digests: Uint8Array;
  #rows: Uint32Array;
  #count = 0;
  readonly #sizeOf: (row: number) => number;

  constructor(capacity: number, sizeOf: (row: number) => number) {
    const entries = Math.max(16, capacity);
    let slots = 1024;
    while (slots < entries * 2) slots *= 2;
    this.#slots = new Int32Array(slots).fill(-1);
    this.#digests = new Uint8Array(16 * entries);
    this.#rows = new Uint32Array(entries);
    this.#sizeOf = sizeOf;
  }

  /** The row of an earlier file with the digest at digest[at..] and this size, or -1 after recording this one. */
  findOrAdd(digest: Uint8Array, at: number, size: number, row: number): number {
    const mask = this.#slots.length - 1;
    let s = (digest[at] | (digest[at + 1] << 8) | (digest[at + 2] << 16) | (digest[at + 3] << 24)) & mask;
    for (;;) {
      const id = this.#slots[s];
      if (id < 0) break;
      if (this.#sizeOf(this.#rows[id]) === size && this.#same(id, digest, at)) return this.#rows[id];
      s = (s + 1) & mask;
    }
    // Each candidate file is recorded once, and the table was sized for all of them (at most half full).
    if (this.#count === this.#rows.length) throw new Error('duplicate index: more files than the candidates counted');
    const id = this.#count++;
    for (let i = 0; i < 16; i++) this.#digests[id * 16 + i] = digest[at + i];
    this.#rows[id] = row;
    this.#slots[s] = id;
    return -1;
  }

  #same(id: number, digest: Uint8Array, at: number): boolean {
    const d = this.#digests;
    for (let i = 0; i < 16; i++) if (d[id * 16 + i] !== digest[at + i]) return false;
    return true;
  }
}

/** A hash of a row's image path (names up to the root), spread over all 32 bits: picks fragment cuts. */
function pathHash(t: PackedTree, row: number): number {
  let h = 0x811c9dc5;
  for (let r = row; r !== 0; r = t.parent[r]) {
    const end = t.nameStart[r] + t.nameLength[r];
    for (let i = t.nameStart[r]; i < end; i++) h = Math.imul(h ^ t.names[i], 0x01000193);
    h = Math.imul(h ^ 0x2f, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Host paths of file rows (hostRoot + image path), built in a scratch buffer: the directory's part is kept while
 * the files of one directory follow each other, as they do in inode order.
 */
class HostPaths {
  readonly #t: PackedTree;
  readonly #root: Uint8Array;
  #dir = -1;
  #dirLength = 0;
  scratch = new Uint8Array(4096);

  constructor(t: PackedTree, root: Uint8Array) {
    this.#t = t;
    this.#root = root;
  }

  /** Writes the row's host path into `scratch`; returns its length. */
  write(row: number): number {
    const t = this.#t;
    const parent = t.parent[row];
    if (parent !== this.#dir) {
      const dirPath = parent === 0 ? new Uint8Array(0) : pathBytesOf(t, parent);
      this.#dirLength = this.#root.length + dirPath.length;
      this.#ensure(this.#dirLength + 1 + 4096);
      this.scratch.set(this.#root, 0);
      this.scratch.set(dirPath, this.#root.length);
      this.#dir = parent;
    }
    const nameLength = t.nameLength[row];
    this.#ensure(this.#dirLength + 1 + nameLength);
    const out = this.scratch;
    const names = t.names;
    const from = t.nameStart[row];
    const at = this.#dirLength + 1;
    out[at - 1] = 0x2f;
    for (let i = 0; i < nameLength; i++) out[at + i] = names[from + i];
    return at + nameLength;
  }

  #ensure(n: number): void {
    if (this.scratch.length >= n) return;
    const b = new Uint8Array(n * 2);
    b.set(this.scratch);
    this.scratch = b;
  }
}

/** The pieces of one task being put together, and what the sequencer needs to know of them afterwards. */
class TaskBuilder {
  /** PIECE_FIELDS numbers per piece; `pieceCount` used. */
  readonly pieces = new Float64Array(TASK_PIECES * PIECE_FIELDS);
  pieceCount = 0;
  slotRows: number[] = [];
  #paths = new Uint8Array(16384);
  #pathsLength = 0;
  #pathEnds: number[] = [];
  /** The arena slot holding this task's inline bytes (-1: none yet), and how much of it is used. */
  input = -1;
  #inputView: Uint8Array | null = null;
  #inputLength = 0;
  bytes = 0;

  get full(): boolean {
    return this.bytes >= TASK_BYTES || this.pieceCount === TASK_PIECES;
  }

  /** A file slot in this task; its host path is `path[0, length)` (length 0: the bytes come inline). */
  slot(row: number, path: Uint8Array, length = path.length): number {
    if (length > 0) {
      if (this.#pathsLength + length > this.#paths.length) {
        const n = new Uint8Array(Math.max(this.#paths.length * 2, this.#pathsLength + length));
        n.set(this.#paths.subarray(0, this.#pathsLength));
        this.#paths = n;
      }
      const paths = this.#paths;
      const at = this.#pathsLength;
      for (let i = 0; i < length; i++) paths[at + i] = path[i];
      this.#pathsLength += length;
    }
    this.#pathEnds.push(this.#pathsLength);
    this.slotRows.push(row);
    return this.slotRows.length - 1;
  }

  piece(slot: number, offset: number, length: number, flags: number): void {
    const p = this.pieceCount++ * PIECE_FIELDS;
    this.pieces[p] = slot;
    this.pieces[p + 1] = offset;
    this.pieces[p + 2] = length;
    this.pieces[p + 3] = flags;
    this.bytes += length;
  }

  /** A piece whose bytes the main thread has: they go into the task's input slot (`view` of slot `input`). */
  inlinePiece(slot: number, offset: number, bytes: Uint8Array, flags: number, input: number, view: Uint8Array): void {
    this.input = input;
    this.#inputView = view;
    view.set(bytes, this.#inputLength);
    this.#inputLength += bytes.length;
    this.piece(slot, offset, bytes.length, flags | Piece.INLINE);
  }

  get hasInput(): boolean {
    return this.#inputView !== null;
  }

  /** Empty again, for the next task (the arrays are kept). */
  reset(): void {
    this.pieceCount = 0;
    this.slotRows.length = 0;
    this.#pathsLength = 0;
    this.#pathEnds.length = 0;
    this.input = -1;
    this.#inputView = null;
    this.#inputLength = 0;
    this.bytes = 0;
  }

  request(out: number): TaskRequest {
    return {
      id: 0,
      pieces: this.pieces.slice(0, this.pieceCount * PIECE_FIELDS),
      paths: this.#paths.slice(0, this.#pathsLength),
      pathEnds: Uint32Array.from(this.#pathEnds),
      out,
      input: this.input,
    };
  }
}

interface MadeTask {
  /** The builder it was made with: what the sequencer needs to know of the pieces. */
  b: TaskBuilder;
  out: number;
  input: number;
  result: Promise<TaskResult>;
}

/** A task's out slot, given back once its last block is written and the sequencer is done with it. */
interface Held {
  slot: number;
  /** Blocks not yet written, plus one while the sequencer reads the task. */
  blocks: number;
}

type WriteItem =
  | { kind: 'start'; row: number }
  | { kind: 'block'; data: Uint8Array; held: Held }
  | { kind: 'end'; row: number; dupOf: number }
  /** A batch of fragment blocks: fragments[first .. first + count), compressed back to back in slot `out`. */
  | { kind: 'fragment'; first: number; count: number; out: number; result: Promise<TaskResult> };

function sourceError(t: PackedTree, row: number, reason: string): MkportableError {
  const subject = Buffer.from(pathBytesOf(t, row)).toString('utf8');
  return new MkportableError('SOURCE_READ', `${t.origin(row)}: ${reason}`, subject);
}

const sumCounters = (a: WorkerCounters, b: WorkerCounters | undefined) => {
  if (b) for (const k of Object.keys(a) as (keyof WorkerCounters)[]) a[k] += b[k];
};

/**
 * What the sizes of the files say before any is written: blocks and tails to place, and the sizes more than one
 * file has (distinct, sorted: few), with how many files have them. Only those files can be duplicates.
 */
function sizeCensus(t: PackedTree, files: Uint32Array, bs: number, tailPacking: boolean) {
  let totalBlocks = 0;
  let tailFiles = 0;
  let tailBytes = 0;
  const sizes = new Float64Array(files.length);
  for (let i = 0; i < files.length; i++) {
    const size = t.size[files[i]];
    sizes[i] = size;
    totalBlocks += blockCount(size, bs, tailPacking);
    const tail = tailLength(size, bs, tailPacking);
    if (tail > 0) {
      tailFiles++;
      tailBytes += tail;
    }
  }
  sizes.sort();
  const shared: number[] = [];
  let candidates = 0;
  for (let i = 0; i < sizes.length;) {
    let j = i + 1;
    while (j < sizes.length && sizes[j] === sizes[i]) j++;
    if (j - i > 1 && sizes[i] > 0) {
      shared.push(sizes[i]);
      candidates += j - i;
    }
    i = j;
  }
  return { totalBlocks, tailFiles, tailBytes, sharedSizes: Float64Array.from(shared), candidates };
}

export async function writeData(plan: Plan, out: ImageFile, opts: DataOptions): Promise<DataResult> {
  const t = plan.tree;
  const bs = opts.blockSize;
  const files = plan.files;
  const n = t.count;
  const nBlocks = (size: number) => blockCount(size, bs, opts.tailPacking);

  const { totalBlocks, tailFiles, tailBytes, sharedSizes, candidates } = sizeCensus(t, files, bs, opts.tailPacking);
  const sizeShared = (size: number): boolean => {
    let lo = 0;
    let hi = sharedSizes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sharedSizes[mid] < size) lo = mid + 1;
      else hi = mid;
    }
    return lo < sharedSizes.length && sharedSizes[lo] === size;
  };
  const cutBits = tailFiles === 0 ? 0 : Math.max(0, Math.min(24, Math.round(Math.log2((RUN_BLOCKS * bs) / (tailBytes / tailFiles)))));
  const cutMask = (1 << cutBits) - 1;

  const layouts: FileLayouts = {
    start: new Float64Array(n),
    sparse: new Map(),
    fragment: new Uint32Array(n).fill(INVALID_FRAGMENT),
    fragmentOffset: new Uint32Array(n),
    blockStart: new Uint32Array(n),
    blocks: new Uint32Array(totalBlocks),
  };
  {
    let at = 0;
    for (const row of files) {
      layouts.blockStart[row] = at;
      at += nBlocks(t.size[row]);
    }
  }
  const fragments: FragmentEntry[] = [];
  const arena = opts.pool.arena;
  const taskSlots = new SlotPool(0, opts.taskSlots);
  const fragmentSlots = new SlotPool(opts.taskSlots, arena.slots - opts.taskSlots);
  const view = (slot: number) => slotView(arena, slot);
  const tasks = new Handoff<MadeTask>();
  const writes = new Handoff<WriteItem>();
  const cache: WorkerCounters = { hits: 0, misses: 0, stores: 0, corrupt: 0, storedBytes: 0, failures: 0 };
  const progress: DataProgress = { bytes: 0, files: 0, stored: 0 };
  let duplicates = 0;
  const failAll = (e: unknown) => {
    taskSlots.fail(e);
    fragmentSlots.fail(e);
  };

  const hostPaths = t.hostRoot ? new HostPaths(t, t.hostRoot) : null;
  const builders: TaskBuilder[] = [];
  const produce = async () => {
    let tb = new TaskBuilder();
    const flush = async () => {
      if (tb.pieceCount === 0) return;
      const made = tb;
      tb = builders.pop() ?? new TaskBuilder();
      const out = await taskSlots.acquire();
      const result = opts.pool.run(made.request(out));
      result.catch(() => {}); // awaited by the sequencer; never an unhandled rejection if it has stopped
      tasks.push({ b: made, out, input: made.input, result });
    };
    for (const row of files) {
      const size = t.size[row];
      if (size === 0) {
        progress.files++;
        continue;
      }
      const blocks = nBlocks(size);
      const tail = tailLength(size, bs, opts.tailPacking);
      const candidate = sizeShared(size);
      const blockFlags = Piece.COMPRESS | Piece.SPARSE | (opts.hashBlocks || candidate ? Piece.HASH : 0);
      const tailFlags = Piece.END | (candidate ? Piece.HASH : 0);
      const count = blocks + (tail > 0 ? 1 : 0);

      let content: PackedContent | null = null;
      let host: Uint8Array = NO_PATH;
      let hostLength = 0;
      if (hostPaths) {
        hostLength = hostPaths.write(row);
        host = hostPaths.scratch;
      } else {
        content = t.content(row);
        if (content.kind === 'host') host = typeof content.path === 'string' ? Buffer.from(content.path) : content.path;
        else if (content.kind === 'source') {
          const p = content.source.hostPath(content.path);
          if (p !== undefined) host = Buffer.from(p);
        }
        hostLength = host.length;
      }
      // Where a big file holds data, when the source can tell: blocks wholly in a hole are not read at all.
      let ranges: [number, number][] | undefined;
      if (size >= SPARSE_MIN && blocks > 0 && (!t.holeCandidates || t.holeCandidates.has(row))) ranges = await holesOf(t, row, content, host, hostLength, size);
      let range = 0;
      const inHole = (offset: number, length: number) => {
        if (!ranges) return false;
        while (range < ranges.length && ranges[range][1] <= offset) range++;
        return range === ranges.length || ranges[range][0] >= offset + length;
      };
      let slot = tb.slot(row, host, hostLength);
      for (let i = 0; i < count; i++) {
        const offset = i * bs;
        const isTail = i === blocks;
        const length = isTail ? tail : Math.min(bs, size - offset);
        const last = i === count - 1;
        const hole = !isTail && inHole(offset, length);
        const flags = (isTail ? tailFlags : blockFlags) | (last ? Piece.END : 0) | (hole ? Piece.HOLE : 0);
        if (hostLength > 0) tb.piece(slot, offset, length, flags);
        else {
          const bytes = await readInline(t, row, content!, offset, length, last, size, hole);
          if (!tb.hasInput) {
            const input = await taskSlots.acquire();
            tb.inlinePiece(slot, offset, bytes, flags, input, view(input));
          } else tb.inlinePiece(slot, offset, bytes, flags, tb.input, view(tb.input));
        }
        if (tb.full) {
          await flush(); // (flush leaves hostPaths alone: the scratch still holds this row's path)
          if (!last) slot = tb.slot(row, host, hostLength);
        }
      }
    }
    await flush();
  };

  // Fragment blocks are filled back to back in an arena slot of their own, up to fragmentBatch() of them, and
  // compressed as one task: one message per batch, not per block (a tree of small files makes thousands). Slots are
  // nearly always free: the sequencer only waits (and these return a promise) when every fragment slot is
  // compressing or waiting to be written.
  const batchMax = fragmentBatch(bs);
  let batchSlot = -1;
  let batchView: Uint8Array | null = null;
  /** Bytes of the batch's closed blocks, and their fills. */
  let batchUsed = 0;
  const batchFills: number[] = [];
  /** Bytes in the open block (it starts at batchUsed). */
  let fragFill = 0;
  const openBatch = (slot: number) => {
    batchSlot = slot;
    batchView = view(slot);
    batchUsed = 0;
    batchFills.length = 0;
    fragFill = 0;
  };
  const submitBatch = (out: number) => {
    const input = batchSlot;
    const count = batchFills.length;
    const pieces = new Float64Array(count * PIECE_FIELDS);
    const flags = Piece.COMPRESS | Piece.INLINE | (opts.hashBlocks ? Piece.HASH : 0);
    for (let k = 0; k < count; k++) {
      pieces[k * PIECE_FIELDS + 2] = batchFills[k];
      pieces[k * PIECE_FIELDS + 3] = flags;
    }
    const task: TaskRequest = { id: 0, pieces, paths: NO_PATH, pathEnds: new Uint32Array(count), out, input };
    const result = opts.pool.run(task, true);
    // The bytes' slot is free once compressed; the result's once written.
    result.then(() => fragmentSlots.release(input), () => {});
    writes.push({ kind: 'fragment', first: fragments.length - count, count, out, result });
    batchSlot = -1;
    batchView = null;
    batchUsed = 0;
    batchFills.length = 0;
  };
  /** The open block is done (full, or cut before a file); a full batch goes to the pool. */
  const closeBlock = (): Promise<void> | void => {
    if (fragFill === 0) return;
    batchFills.push(fragFill);
    batchUsed += fragFill;
    fragFill = 0;
    fragments.push({ start: 0, size: 0 });
    if (batchFills.length < batchMax) return;
    return flushBatch();
  };
  const flushBatch = (): Promise<void> | void => {
    if (batchFills.length === 0) return;
    const out = fragmentSlots.acquire();
    if (typeof out !== 'number') return out.then(submitBatch);
    submitBatch(out);
  };
  const placeTail = (row: number, src: Buffer, start: number, end: number) => {
    copyBytes(batchView!, batchUsed + fragFill, src, start, end);
    layouts.fragment[row] = fragments.length;
    layouts.fragmentOffset[row] = fragFill;
    fragFill += end - start;
  };
  const openAndPlace = (row: number, src: Buffer, start: number, end: number): Promise<void> | void => {
    if (!batchView) {
      const slot = fragmentSlots.acquire();
      if (typeof slot !== 'number') {
        return slot.then((s) => {
          openBatch(s);
          placeTail(row, src, start, end);
        });
      }
      openBatch(slot);
    }
    placeTail(row, src, start, end);
  };
  const addTail = (row: number, src: Buffer, start: number, end: number): Promise<void> | void => {
    const length = end - start;
    if (fragFill > 0 && (fragFill + length > bs || (pathHash(t, row) & cutMask) === 0)) {
      const p = closeBlock();
      if (p) return p.then(() => openAndPlace(row, src, start, end));
    }
    return openAndPlace(row, src, start, end);
  };

  const seen = new DigestIndex(candidates, (row) => t.size[row]);
  // A candidate's digest: its one piece's hash, or the hash of its pieces' hashes. The first is copied out of the
  // slot's metadata: a file's pieces may span tasks, and a task's slot may be reused before the file ends.
  const firstCopy = new Uint8Array(32);
  let firstDigest: Uint8Array | null = null;
  let firstAt = 0;
  let fileHash: ReturnType<typeof createHash> | null = null;
  const addDigest = (hashes: Uint8Array, at: number) => {
    if (!firstDigest) {
      firstCopy.set(hashes.subarray(at, at + 32));
      firstDigest = firstCopy;
      firstAt = 0;
    } else {
      fileHash ??= createHash('sha256').update(firstDigest.subarray(firstAt, firstAt + 32));
      fileHash.update(hashes.subarray(at, at + 32));
    }
  };
  /** A file's last piece is in: decide whether it repeats an earlier file, else pack its tail (src[start, end)). */
  const endFile = (row: number, src: Buffer | null, start: number, end: number): Promise<void> | void => {
    const size = t.size[row];
    progress.files++;
    let dupOf = -1;
    if (firstDigest) {
      dupOf = fileHash ? seen.findOrAdd(fileHash.digest(), 0, size, row) : seen.findOrAdd(firstDigest, firstAt, size, row);
      firstDigest = null;
      fileHash = null;
    }
    if (nBlocks(size) > 0) writes.push({ kind: 'end', row, dupOf });
    if (dupOf >= 0) {
      duplicates++;
      layouts.fragment[row] = layouts.fragment[dupOf];
      layouts.fragmentOffset[row] = layouts.fragmentOffset[dupOf];
    } else if (src && end > start) return addTail(row, src, start, end);
  };

  const sequence = async (task: MadeTask, r: TaskResult) => {
    if (task.input >= 0) taskSlots.release(task.input); // the worker is done with the inline bytes
    if (r.failure) {
      const row = task.b.slotRows[task.b.pieces[r.failure.piece * PIECE_FIELDS]];
      const f = r.failure;
      const size = t.size[row];
      throw sourceError(t, row, f.kind === 'error' ? `cannot read: ${systemReason(Object.assign(new Error(f.message), f.code ? { code: f.code } : {}))}`
        : f.kind === 'grew' ? `changed size while building (grew beyond ${size} bytes)`
          : `changed size while building (${size} → ${f.got ?? 'fewer'} bytes)`);
    }
    if (r.error !== undefined) throw new MkportableError('OUTPUT_FAILED', `compression failed: ${r.error}`);
    sumCounters(cache, r.cache);
    // The sequencer holds the slot too while it reads the task (it may wait for a fragment slot meanwhile).
    const held: Held = { slot: task.out, blocks: 1 };
    const meta = slotMeta(arena, task.out);
    const hashes = slotHashes(arena, task.out);
    const v = view(task.out);
    const data = Buffer.from(v.buffer, v.byteOffset, r.length);
    const p = task.b.pieces;
    const slotRows = task.b.slotRows;
    let at = 0;
    for (let k = 0; k < task.b.pieceCount; k++) {
      const row = slotRows[p[k * PIECE_FIELDS]];
      const offset = p[k * PIECE_FIELDS + 1];
      const length = p[k * PIECE_FIELDS + 2];
      const flags = p[k * PIECE_FIELDS + 3];
      const stored = meta[k * 2];
      const how = meta[k * 2 + 1];
      if (flags & Piece.HASH && (offset === 0 ? sizeShared(t.size[row]) : firstDigest !== null)) addDigest(hashes, k * 32);
      progress.bytes += length;
      if (flags & Piece.COMPRESS) {
        const block = layouts.blockStart[row] + offset / bs;
        if (offset === 0) writes.push({ kind: 'start', row });
        if (how & Stored.ZERO) {
          layouts.blocks[block] = 0;
          layouts.sparse.set(row, (layouts.sparse.get(row) ?? 0) + length);
        } else {
          layouts.blocks[block] = how & Stored.RAW ? stored | DATA_UNCOMPRESSED : stored;
          writes.push({ kind: 'block', data: data.subarray(at, at + stored), held });
          held.blocks++;
          at += stored;
        }
        if (flags & Piece.END) endFile(row, null, 0, 0);
      } else {
        const wait = endFile(row, data, at, at + length);
        if (wait) await wait;
        at += length;
      }
    }
    if (--held.blocks === 0) taskSlots.release(held.slot);
    task.b.reset();
    builders.push(task.b);
  };

  const sequencer = async () => {
    for (;;) {
      const made = await tasks.take();
      if (!made) break;
      for (const m of made) await sequence(m, await m.result);
    }
    await closeBlock();
    await flushBatch();
    if (batchSlot >= 0) fragmentSlots.release(batchSlot);
    batchSlot = -1;
  };

  const writer = async () => {
    let last = 0;
    for (;;) {
      const items = await writes.take();
      if (!items) return;
      for (const item of items) {
        switch (item.kind) {
          case 'start':
            layouts.start[item.row] = out.position;
            break;
          case 'block': {
            const wait = out.append(item.data);
            if (wait) await wait;
            if (--item.held.blocks === 0) taskSlots.release(item.held.slot);
            break;
          }
          case 'fragment': {
            const r = await item.result;
            if (r.error !== undefined) throw new MkportableError('OUTPUT_FAILED', `compression failed: ${r.error}`);
            sumCounters(cache, r.cache);
            const meta = slotMeta(arena, item.out);
            const bytes = view(item.out);
            for (let k = 0, at = 0; k < item.count; k++) {
              const stored = meta[k * 2];
              fragments[item.first + k] = { start: out.position, size: meta[k * 2 + 1] & Stored.RAW ? stored | DATA_UNCOMPRESSED : stored };
              const wait = out.append(bytes.subarray(at, at + stored));
              if (wait) await wait;
              at += stored;
            }
            fragmentSlots.release(item.out);
            break;
          }
          case 'end':
            if (item.dupOf >= 0) {
              // Everything written since the file's start is its own blocks: drop them and point at the original.
              const row = item.row;
              const orig = item.dupOf;
              await out.rewind(layouts.start[row]);
              layouts.start[row] = layouts.start[orig];
              const sparse = layouts.sparse.get(orig);
              if (sparse !== undefined) layouts.sparse.set(row, sparse);
              else layouts.sparse.delete(row);
              const count = nBlocks(t.size[row]);
              layouts.blocks.copyWithin(layouts.blockStart[row], layouts.blockStart[orig], layouts.blockStart[orig] + count);
            }
            break;
        }
      }
      if (opts.onProgress) {
        const now = Date.now();
        if (now - last >= PROGRESS_MS) {
          last = now;
          progress.stored = out.position;
          opts.onProgress(progress);
        }
      }
    }
  };

  const producing = produce().then(
    () => tasks.close(),
    (e) => {
      tasks.fail(e);
      throw e;
    },
  );
  const sequencing = sequencer().then(
    () => writes.close(),
    (e) => {
      writes.fail(e);
      failAll(e);
      throw e;
    },
  );
  const writing = writer().catch((e) => {
    failAll(e);
    tasks.fail(e);
    throw e;
  });
  const settled = await Promise.allSettled([producing, sequencing, writing]);
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  if (opts.onProgress) {
    progress.stored = out.position;
    opts.onProgress(progress);
  }
  return { layouts, fragments, duplicates, cache };
}

/** The data stretches of a big file (its holes are not read); undefined when the source cannot tell. */
async function holesOf(t: PackedTree, row: number, content: PackedContent | null, host: Uint8Array, hostLength: number, size: number): Promise<[number, number][] | undefined> {
  if (hostLength > 0) {
    let fd: number;
    try {
      fd = openSync(Buffer.from(host.buffer, host.byteOffset, hostLength), 'r');
    } catch {
      return undefined; // the worker's own open reports it
    }
    try {
      return dataRanges(fd, size);
    } finally {
      closeSync(fd);
    }
  }
  if (content?.kind !== 'source') return undefined;
  try {
    return await content.source.dataRanges?.(content.path, size);
  } catch (e) {
    throw sourceError(t, row, `cannot read: ${systemReason(e)}`);
  }
}

const ZEROS = new Uint8Array(1 << 20);

/**
 * Bytes the main thread reads itself (generated files, sources without a host path), checked against the plan.
 * A block in a hole is zeros, unread (for the last one, only the size is checked).
 */
async function readInline(
  t: PackedTree,
  row: number,
  content: PackedContent,
  offset: number,
  length: number,
  last: boolean,
  size: number,
  hole = false,
): Promise<Uint8Array> {
  if (content.kind === 'bytes') return content.data.subarray(offset, offset + length);
  if (content.kind !== 'source') throw new Error('unreachable');
  let got: Uint8Array;
  if (hole) {
    if (last) {
      let end: Uint8Array;
      try {
        end = await content.source.read(content.path, size - 1, 2);
      } catch (e) {
        throw sourceError(t, row, `cannot read: ${systemReason(e)}`);
      }
      if (end.length > 1) throw sourceError(t, row, `changed size while building (grew beyond ${size} bytes)`);
      if (end.length < 1) throw sourceError(t, row, `changed size while building (${size} → fewer bytes)`);
    }
    return ZEROS.subarray(0, length);
  }
  try {
    got = await content.source.read(content.path, offset, last ? length + 1 : length);
  } catch (e) {
    throw sourceError(t, row, `cannot read: ${systemReason(e)}`);
  }
  if (got.length < length) throw sourceError(t, row, `changed size while building (${size} → ${offset + got.length} bytes)`);
  if (got.length > length) {
    if (last) throw sourceError(t, row, `changed size while building (grew beyond ${size} bytes)`);
    got = got.subarray(0, length);
  }
  return got;
}
