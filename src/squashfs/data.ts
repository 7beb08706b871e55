/**
 * The data area: file blocks and fragment blocks, streamed from the sources and compressed in parallel.
 *
 * One producer reads every file in inode order, a block at a time, and puts an item for each step on an ordered
 * queue (file start, block, file end, fragment block). Blocks go to the compressor pool as they are read; the single
 * writer takes items off the queue in order, awaiting each block's compression, so the bytes land in the same order
 * whatever the number of workers or their timing. A window of blocks bounds memory: the producer takes a slot before
 * reading a block and the writer gives it back once the block is written (plus the small files read ahead, bounded
 * by AHEAD_BYTES, and one fragment block being filled).
 *
 * Decided by the producer alone (so deterministic): sparse blocks (all zeros: block list 0, no bytes), tail packing
 * (the last partial block, or a whole small file, goes into the current fragment block; a tail never splits) and
 * duplicates (files whose size another file shares are hashed while read; a repeat of an earlier file reuses its
 * blocks and fragment, and the writer rewinds over the blocks it already wrote for it).
 */
import { createHash, type Hash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { MkportableError, systemReason } from '../errors.js';
import { copyBytes } from './bytes.js';
import { dataRanges, SPARSE_MIN } from '../native/fs.js';
import { DATA_UNCOMPRESSED, INVALID_FRAGMENT } from './format.js';
import type { FragmentEntry } from './fragment-table.js';
import type { ImageFile } from './output.js';
import type { Plan, PlanNode } from './plan.js';
import type { CompressionPool, Compressed } from './pool.js';

export interface FileLayout {
  /** Absolute position of the first stored block; 0 when the file has no blocks. */
  start: number;
  size: number;
  /** Bytes in sparse blocks. */
  sparse: number;
  blocks: Uint32Array;
  fragment: number;
  fragmentOffset: number;
}

/** What the data path needs from the worker pool (tests inject an in-process one). */
export type BlockCompressor = Pick<CompressionPool, 'compress'>;

export interface DataOptions {
  blockSize: number;
  /** Pack the tail of files larger than a block into fragments too (ALWAYS_FRAG); otherwise it is a short block. */
  tailPacking: boolean;
  pool: BlockCompressor;
  /** Blocks alive at once (read, compressing, or waiting for their turn to be written). */
  window: number;
}

export interface DataResult {
  layouts: Map<PlanNode, FileLayout>;
  fragments: FragmentEntry[];
  /** Files stored as references to an identical earlier file. */
  duplicates: number;
}

type Item =
  | { kind: 'start'; layout: FileLayout }
  | { kind: 'block'; layout: FileLayout; index: number; result: Promise<Compressed> }
  | { kind: 'end'; layout: FileLayout; dupOf: FileLayout | null }
  | { kind: 'fragment'; index: number; result: Promise<Compressed> };

/** Counting semaphore that can be failed, releasing every waiter with the error. */
class Window {
  #free: number;
  #waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #error: unknown = null;

  constructor(size: number) {
    this.#free = size;
  }

  acquire(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  release(): void {
    const w = this.#waiters.shift();
    if (w) w.resolve();
    else this.#free++;
  }

  fail(e: unknown): void {
    this.#error ??= e;
    for (const w of this.#waiters.splice(0)) w.reject(e);
  }
}

/** FIFO between the producer and the writer. */
class ItemQueue {
  #items: Item[] = [];
  #head = 0;
  #wake: (() => void) | null = null;
  #closed = false;
  #error: unknown = null;

  push(item: Item): void {
    this.#items.push(item);
    this.#notify();
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

  async shift(): Promise<Item | undefined> {
    for (;;) {
      if (this.#error) throw this.#error;
      if (this.#head < this.#items.length) {
        const item = this.#items[this.#head++];
        if (this.#head > 1024) {
          this.#items = this.#items.slice(this.#head);
          this.#head = 0;
        }
        return item;
      }
      if (this.#closed) return undefined;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}

/** Positional reads of one file's bytes into buffers the caller owns; fewer bytes only at the end of the file. */
interface RawFile {
  /** `into`, when given and big enough, may be used instead of a new buffer. */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Where the file holds data, when the source can tell (its holes need not be read). */
  ranges?: [number, number][];
  close(): Promise<void>;
}

function sourceError(node: PlanNode, reason: string): MkportableError {
  const where = node.entry.origin || node.path;
  return new MkportableError('SOURCE_READ', `${where}: ${reason}`, node.path);
}

const unreadable = (node: PlanNode, e: unknown) => sourceError(node, `cannot read: ${systemReason(e)}`);

async function openRaw(node: PlanNode): Promise<RawFile> {
  const e = node.entry;
  if (e.type !== 'file') throw new Error(`${node.path} is not a file`);
  const c = e.content;
  if (c.kind === 'bytes') {
    return { read: async (offset, length) => copyBytes(c.data, offset, Math.min(c.data.length, offset + length)), close: async () => {} };
  }
  const host = c.source.hostPath(c.path);
  if (host === undefined) {
    let ranges: [number, number][] | undefined;
    try {
      ranges = await c.source.dataRanges?.(c.path, e.size);
    } catch (err) {
      throw unreadable(node, err);
    }
    return {
      ranges,
      async read(offset, length) {
        try {
          const got = await c.source.read(c.path, offset, length);
          return copyBytes(got, 0, Math.min(got.length, length)); // a copy we own, whatever the source keeps
        } catch (err) {
          throw unreadable(node, err);
        }
      },
      close: async () => {},
    };
  }
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(host, 'r');
  } catch (err) {
    throw unreadable(node, err);
  }
  return {
    ranges: e.size >= SPARSE_MIN ? dataRanges(fh.fd, e.size) : undefined,
    async read(offset, length, into) {
      const buf = into && into.byteOffset === 0 && into.length >= length ? into.subarray(0, length) : new Uint8Array(length);
      let done = 0;
      try {
        while (done < length) {
          const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
      } catch (err) {
        throw unreadable(node, err);
      }
      return done === length ? buf : copyBytes(buf, 0, done);
    },
    close: () => fh.close(),
  };
}

/** Read size for small blocks: fewer round trips, cut into blocks afterwards. */
const READ_CHUNK = 1 << 20;

/**
 * Reads a file front to back, a block at a time, and holds it to its planned size: a short read means it shrank,
 * a byte past the end means it grew. The last read asks for one byte more than the size, so a file read in one go
 * (small files) costs a single read. Small blocks are cut from 1 MiB reads. Blocks come out as views of the read
 * buffer; own() turns one into a buffer that can be transferred, copying only when it must, and the read buffer is
 * reused whenever nothing took it (so sparse stretches cost no allocation).
 */
class FileReader {
  readonly #node: PlanNode;
  readonly #raw: RawFile;
  readonly #size: number;
  #buf: Uint8Array = new Uint8Array(0);
  /** File offset of #buf[0], and of the next byte to hand out. */
  #bufAt = 0;
  #at = 0;
  #endChecked = false;
  /** The last view handed out spans the whole read buffer (bar the end-check byte): own() can give it away. */
  #lastIsWhole = false;
  /** Index into the raw file's data ranges of the first one not wholly before #at. */
  #range = 0;

  constructor(node: PlanNode, raw: RawFile, size: number) {
    this.#node = node;
    this.#raw = raw;
    this.#size = size;
  }

  /** A view of the next `length` bytes, valid until the next call. */
  async next(length: number): Promise<Uint8Array> {
    if (this.#at + length > this.#bufAt + this.#buf.length) await this.#fill(length);
    const start = this.#at - this.#bufAt;
    this.#at += length;
    this.#lastIsWhole = start === 0 && this.#buf.length - length <= 1;
    return this.#buf.subarray(start, start + length);
  }

  /**
   * When the next `length` bytes lie in a hole of a sparse file (they read as zeros), step over them without
   * reading and return true.
   */
  skipHole(length: number): boolean {
    const ranges = this.#raw.ranges;
    if (!ranges) return false;
    while (this.#range < ranges.length && ranges[this.#range][1] <= this.#at) this.#range++;
    if (this.#range < ranges.length && ranges[this.#range][0] < this.#at + length) return false;
    this.#at += length;
    return true;
  }

  /** The last block from next() in a buffer of its own, safe to transfer. */
  own(view: Uint8Array): Uint8Array {
    if (!this.#lastIsWhole) return copyBytes(view);
    this.#buf = new Uint8Array(0); // given away: the next read needs a new buffer
    this.#bufAt = this.#at;
    this.#lastIsWhole = false;
    return view;
  }

  async #fill(length: number): Promise<void> {
    const want = Math.min(Math.max(length, READ_CHUNK), this.#size + 1 - this.#at);
    const got = await this.#raw.read(this.#at, want, this.#buf.length > 0 ? this.#buf : undefined);
    if (got.length < length) throw this.#changed(`${this.#size} → ${this.#at + got.length} bytes`);
    if (this.#at + want === this.#size + 1) {
      if (got.length === want) throw this.#changed(`grew beyond ${this.#size} bytes`);
      if (this.#at + got.length < this.#size) throw this.#changed(`${this.#size} → ${this.#at + got.length} bytes`);
      this.#endChecked = true;
    }
    this.#buf = got;
    this.#bufAt = this.#at;
  }

  /** After the last block: fail if the file goes on past its planned size. */
  async finish(): Promise<void> {
    if (this.#endChecked) return;
    // The last byte and one past it: a hole skipped at the end must not hide a file that shrank.
    const last = await this.#raw.read(this.#size - 1, 2);
    if (last.length > 1) throw this.#changed(`grew beyond ${this.#size} bytes`);
    if (last.length < 1) throw this.#changed(`${this.#size} → fewer bytes`);
  }

  #changed(what: string): MkportableError {
    return sourceError(this.#node, `changed size while building (${what})`);
  }

  close(): Promise<void> {
    return this.#raw.close();
  }
}

/** A file made ready ahead of its turn: small ones read whole, big ones just opened. */
type Prepared = { kind: 'small'; data: Uint8Array } | { kind: 'big'; reader: FileReader } | { kind: 'empty' };

/** How far the producer reads ahead: files opened or read before their turn, and bytes of small files held. */
const AHEAD_FILES = 64;
const AHEAD_BYTES = 8 << 20;

export async function writeData(plan: Plan, out: ImageFile, opts: DataOptions): Promise<DataResult> {
  const bs = opts.blockSize;
  const zeros = Buffer.alloc(bs);
  const isZero = (b: Uint8Array) =>
    Buffer.from(b.buffer, b.byteOffset, b.length).equals(b.length === bs ? zeros : zeros.subarray(0, b.length));

  const layouts = new Map<PlanNode, FileLayout>();
  const fragments: FragmentEntry[] = [];
  const window = new Window(opts.window);
  const queue = new ItemQueue();
  let duplicates = 0;

  // Only a file whose size another file shares can be a duplicate: hash just those.
  const sizeCount = new Map<number, number>();
  for (const n of plan.files) if (n.entry.type === 'file' && n.entry.size > 0) sizeCount.set(n.entry.size, (sizeCount.get(n.entry.size) ?? 0) + 1);
  const seen = new Map<string, FileLayout>();

  const compress = (data: Uint8Array): Promise<Compressed> => {
    const p = opts.pool.compress(data);
    p.catch(() => {}); // awaited by the writer; never an unhandled rejection if the writer has stopped
    return p;
  };

  let fragBuf = new Uint8Array(bs);
  let fragFill = 0;
  const flushFragment = async () => {
    if (fragFill === 0) return;
    await window.acquire();
    queue.push({ kind: 'fragment', index: fragments.length, result: compress(new Uint8Array(fragBuf.buffer, 0, fragFill)) });
    fragments.push({ start: 0, size: 0 });
    fragBuf = new Uint8Array(bs);
    fragFill = 0;
  };
  const addTail = async (tail: Uint8Array): Promise<{ index: number; offset: number }> => {
    if (fragFill + tail.length > bs) await flushFragment();
    fragBuf.set(tail, fragFill);
    const at = { index: fragments.length, offset: fragFill };
    fragFill += tail.length;
    return at;
  };

  const isSmall = (size: number) => size > 0 && size < bs;

  const prepare = async (node: PlanNode): Promise<Prepared> => {
    const size = node.entry.type === 'file' ? node.entry.size : 0;
    if (size === 0) return { kind: 'empty' };
    const reader = new FileReader(node, await openRaw(node), size);
    if (!isSmall(size)) return { kind: 'big', reader };
    try {
      const data = await reader.next(size);
      await reader.finish();
      return { kind: 'small', data };
    } finally {
      await reader.close().catch(() => {});
    }
  };

  const produceFile = async (node: PlanNode, prepared: Prepared) => {
    if (node.entry.type !== 'file') return;
    const size = node.entry.size;
    const layout: FileLayout = { start: 0, size, sparse: 0, blocks: new Uint32Array(0), fragment: INVALID_FRAGMENT, fragmentOffset: 0 };
    layouts.set(node, layout);
    if (prepared.kind === 'empty') return;
    const packTail = opts.tailPacking || size < bs;
    const blockCount = packTail ? Math.floor(size / bs) : Math.ceil(size / bs);
    const tailLength = packTail ? size - blockCount * bs : 0;
    const hash: Hash | null = (sizeCount.get(size) ?? 0) > 1 ? createHash('sha256') : null;

    let tail: Uint8Array | null = null;
    if (prepared.kind === 'small') {
      tail = prepared.data;
    } else {
      const reader = prepared.reader;
      try {
        layout.blocks = new Uint32Array(blockCount);
        queue.push({ kind: 'start', layout });
        for (let i = 0; i < blockCount; i++) {
          const length = Math.min(bs, size - i * bs);
          if (reader.skipHole(length)) {
            hash?.update(length === bs ? zeros : zeros.subarray(0, length));
            layout.sparse += length;
            continue; // layout.blocks[i] stays 0: a sparse block
          }
          await window.acquire();
          let chunk: Uint8Array;
          try {
            chunk = await reader.next(length);
          } catch (err) {
            window.release();
            throw err;
          }
          hash?.update(chunk);
          if (isZero(chunk)) {
            layout.blocks[i] = 0;
            layout.sparse += length;
            window.release();
            continue;
          }
          queue.push({ kind: 'block', layout, index: i, result: compress(reader.own(chunk)) });
        }
        if (tailLength > 0) tail = await reader.next(tailLength);
        await reader.finish();
      } finally {
        await reader.close().catch(() => {});
      }
    }
    if (tail) hash?.update(tail);

    let dupOf: FileLayout | null = null;
    if (hash) {
      const key = `${size}:${hash.digest('hex')}`;
      dupOf = seen.get(key) ?? null;
      if (!dupOf) seen.set(key, layout);
    }
    if (dupOf) {
      duplicates++;
      layout.fragment = dupOf.fragment;
      layout.fragmentOffset = dupOf.fragmentOffset;
    } else if (tail) {
      const at = await addTail(tail);
      layout.fragment = at.index;
      layout.fragmentOffset = at.offset;
    }
    if (blockCount > 0 || dupOf) queue.push({ kind: 'end', layout, dupOf });
  };

  // Files are handled strictly in order; the next ones are opened (small ones read) while earlier ones are being
  // compressed, within AHEAD_FILES files and AHEAD_BYTES bytes.
  const produce = async () => {
    const files = plan.files;
    const ahead: { node: PlanNode; prepared: Promise<Prepared>; bytes: number }[] = [];
    let next = 0;
    let aheadBytes = 0;
    const topUp = () => {
      while (next < files.length && ahead.length < AHEAD_FILES && aheadBytes < AHEAD_BYTES) {
        const node = files[next++];
        const size = node.entry.type === 'file' ? node.entry.size : 0;
        const bytes = isSmall(size) ? size : 0;
        const prepared = prepare(node);
        prepared.catch(() => {}); // surfaced when its turn comes
        ahead.push({ node, prepared, bytes });
        aheadBytes += bytes;
      }
    };
    try {
      topUp();
      while (ahead.length > 0) {
        const { node, prepared, bytes } = ahead.shift()!;
        const ready = await prepared;
        aheadBytes -= bytes;
        topUp();
        await produceFile(node, ready);
      }
      await flushFragment();
    } finally {
      // On failure, close whatever was opened ahead.
      for (const a of ahead) void a.prepared.then((p) => (p.kind === 'big' ? p.reader.close() : undefined)).catch(() => {});
    }
  };

  const write = async () => {
    for (;;) {
      const item = await queue.shift();
      if (!item) return;
      switch (item.kind) {
        case 'start':
          item.layout.start = out.position;
          break;
        case 'block': {
          const r = await item.result;
          item.layout.blocks[item.index] = r.raw ? r.data.length | DATA_UNCOMPRESSED : r.data.length;
          await out.append(r.data);
          window.release();
          break;
        }
        case 'fragment': {
          const r = await item.result;
          fragments[item.index] = { start: out.position, size: r.raw ? r.data.length | DATA_UNCOMPRESSED : r.data.length };
          await out.append(r.data);
          window.release();
          break;
        }
        case 'end':
          if (item.dupOf) {
            // Everything written since the file's start is its own blocks: drop them and point at the original.
            if (item.layout.blocks.length > 0) out.rewind(item.layout.start);
            item.layout.start = item.dupOf.start;
            item.layout.blocks = item.dupOf.blocks;
            item.layout.sparse = item.dupOf.sparse;
          }
          break;
      }
    }
  };

  const producing = produce().then(
    () => queue.close(),
    (e) => {
      queue.fail(e);
      throw e;
    },
  );
  const writing = write().catch((e) => {
    window.fail(e);
    throw e;
  });
  const [p, w] = await Promise.allSettled([producing, writing]);
  if (p.status === 'rejected') throw p.reason;
  if (w.status === 'rejected') throw w.reason;
  return { layouts, fragments, duplicates };
}
