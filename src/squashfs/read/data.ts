/**
 * File contents: `blockCount` full or final blocks stored back to back from `start`, sizes from the block list
 * (u32: stored size | DATA_UNCOMPRESSED when raw, 0 for a sparse block of zeros), then the tail from a fragment.
 *
 * Stored blocks must lie in the data area [dataStart, inode table), be at most one block long, and decompress to
 * exactly block_size (the last one to exactly the remaining length). Contents are produced block by block, so a
 * multi-gigabyte (sparse) file never needs more than one block of memory.
 */
import type { Compressor } from '../../compress/types.js';
import { DATA_UNCOMPRESSED, INVALID_FRAGMENT } from '../format.js';
import { decompressBlock } from './decompressor.js';
import { corrupt } from './errors.js';
import type { FileInode } from './inode.js';
import { AsyncCache } from './lru.js';
import { copyBytes, view } from './bytes.js';
import { MetadataCursor, type MetadataStore } from './metadata.js';
import type { ByteSource } from './source.js';
import type { ImageLayout } from './superblock.js';
import { BLOCK_SIZE_MASK, VALID_BLOCK_BITS, readFragment } from './tables.js';

/** Block list entries read from the inode table per batch. */
const BLOCK_LIST_BATCH = 1024;

/** A data block of a file as its block list describes it. */
interface StoredBlock {
  /** Where it is stored, and how many bytes (0: a sparse block of zeros). */
  pos: number;
  stored: number;
  raw: boolean;
  /** Its length once decompressed. */
  expected: number;
  /** How messages name it. */
  where: string;
}

export class DataReader {
  readonly #source: ByteSource;
  readonly #store: MetadataStore;
  readonly #compressor: Compressor;
  readonly #file: string;
  readonly #layout: ImageLayout;
  /** Decompressed fragment blocks (at most a block size each). */
  readonly #fragments = new AsyncCache<number, { data: Uint8Array; start: number }>(4);
  /** Data blocks that ranged reads decompressed, by where they are stored (read() copies out of them). */
  readonly #recent = new AsyncCache<number, Uint8Array>(4);

  constructor(source: ByteSource, store: MetadataStore, compressor: Compressor, file: string, layout: ImageLayout) {
    this.#source = source;
    this.#store = store;
    this.#compressor = compressor;
    this.#file = file;
    this.#layout = layout;
  }

  get #limits() {
    return {
      dataStart: this.#layout.dataStart,
      dataEnd: this.#layout.inodeTable.start,
      blockSize: this.#layout.superblock.blockSize,
    };
  }

  /** The decompressed fragment block `index` and where it is stored (cached; do not modify). */
  #fragmentBlock(index: number, usedAt: number): Promise<{ data: Uint8Array; start: number }> {
    return this.#fragments.get(index, async () => {
      const f = await readFragment(this.#store, this.#file, this.#layout.fragments, index, this.#limits, usedAt);
      const stored = await this.#source.read(f.start, f.storedSize, `fragment block ${index}`);
      const data = f.raw
        ? stored
        : await decompressBlock(this.#compressor, this.#file, stored, this.#limits.blockSize, `fragment block ${index}`, f.start);
      return { data, start: f.start };
    });
  }

  /**
   * The file's data blocks in order, checked but not read: where each is stored and how long it is, raw and
   * decompressed. Only the block list (metadata) is read, so a reader can pick the blocks it needs.
   */
  async *#blocks(inode: FileInode): AsyncGenerator<StoredBlock> {
    const file = this.#file;
    const { dataStart, dataEnd, blockSize } = this.#limits;
    const where = `file inode ${inode.ino}`;
    const lastFull = inode.fragment !== INVALID_FRAGMENT;
    let pos = inode.start;
    let sizes: DataView | null = null;
    let batchAt = 0;
    const list = inode.blockCount > 0
      ? new MetadataCursor(this.#store, file, this.#layout.inodeTable, inode.blockList.block, inode.blockList.offset, 'inode table')
      : null;
    for (let i = 0; i < inode.blockCount; i++) {
      if (!sizes || batchAt === sizes.byteLength) {
        const n = Math.min(BLOCK_LIST_BATCH, inode.blockCount - i);
        sizes = view(await list!.read(n * 4));
        batchAt = 0;
      }
      const entry = sizes.getUint32(batchAt, true);
      batchAt += 4;
      const expected = lastFull || i < inode.blockCount - 1 ? blockSize : inode.size - i * blockSize;
      if ((entry & ~VALID_BLOCK_BITS) !== 0) throw corrupt(file, `${where}: block ${i} has an invalid size field 0x${entry.toString(16)}`, pos);
      const stored = entry & BLOCK_SIZE_MASK;
      const raw = (entry & DATA_UNCOMPRESSED) !== 0;
      if (stored === 0 && raw) throw corrupt(file, `${where}: block ${i} is a raw block of 0 bytes`, pos);
      if (stored > blockSize) throw corrupt(file, `${where}: block ${i} stored size ${stored} exceeds the block size ${blockSize}`, pos);
      if (stored > 0 && (pos < dataStart || pos + stored > dataEnd)) {
        throw corrupt(file, `${where}: block ${i} (${stored} bytes) lies outside the data area ${dataStart}..${dataEnd}`, pos);
      }
      if (raw && stored !== expected) throw corrupt(file, `${where}: raw block ${i} holds ${stored} bytes, expected ${expected}`, pos);
      yield { pos, stored, raw, expected, where: `${where} block ${i}` };
      pos += stored;
    }
  }

  /** One data block's bytes (a sparse block reads as zeros). */
  async #blockData(b: StoredBlock): Promise<Uint8Array> {
    if (b.stored === 0) return new Uint8Array(b.expected);
    const bytes = await this.#source.read(b.pos, b.stored, b.where);
    return b.raw ? copyBytes(bytes) : decompressBlock(this.#compressor, this.#file, bytes, b.expected, b.where, b.pos, true);
  }

  /** The file's tail, `tail` bytes from its fragment block. */
  async #tail(inode: FileInode, tail: number): Promise<Uint8Array> {
    const inodeAt = this.#layout.inodeTable.start + inode.ref.block;
    const { data, start } = await this.#fragmentBlock(inode.fragment, inodeAt);
    if (inode.fragmentOffset + tail > data.length) {
      throw corrupt(this.#file, `file inode ${inode.ino}: tail (${tail} bytes at ${inode.fragmentOffset}) lies outside the ${data.length}-byte fragment ${inode.fragment}`, start);
    }
    return copyBytes(data, inode.fragmentOffset, inode.fragmentOffset + tail);
  }

  #checkTotal(inode: FileInode, produced: number): void {
    if (produced !== inode.size) {
      throw corrupt(this.#file, `file inode ${inode.ino}: contents are ${produced} bytes, the inode says ${inode.size}`, this.#layout.inodeTable.start + inode.ref.block);
    }
  }

  /** The file's contents in order: one chunk per data block, then the tail. Chunks are the caller's to keep. */
  async *chunks(inode: FileInode): AsyncGenerator<Uint8Array> {
    let produced = 0;
    for await (const b of this.#blocks(inode)) {
      produced += b.expected;
      yield await this.#blockData(b);
    }
    if (inode.fragment !== INVALID_FRAGMENT) {
      const tail = await this.#tail(inode, inode.size - produced);
      produced += tail.length;
      yield tail;
    }
    this.#checkTotal(inode, produced);
  }

  /**
   * `length` bytes of the file from `offset` (fewer at its end): only the blocks that hold them are read and
   * decompressed, and the last few are kept, so parsing a big program's headers and tables does not inflate all
   * of it.
   */
  async read(inode: FileInode, offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(inode.size, offset + length);
    const out = new Uint8Array(Math.max(0, end - offset));
    if (out.length === 0) return out;
    let at = 0;
    for await (const b of this.#blocks(inode)) {
      const from = at;
      at += b.expected;
      if (at <= offset) continue;
      if (from >= end) return out;
      // A sparse block reads as the zeros `out` already holds (and takes no room: the next block is stored at its
      // position, so only stored blocks are kept by position).
      if (b.stored === 0) continue;
      const data = await this.#recent.get(b.pos, () => this.#blockData(b));
      const lo = Math.max(offset, from);
      out.set(data.subarray(lo - from, Math.min(end, at) - from), lo - offset);
    }
    if (at < end && inode.fragment !== INVALID_FRAGMENT) {
      const tail = await this.#tail(inode, inode.size - at);
      const lo = Math.max(offset, at);
      out.set(tail.subarray(lo - at, end - at), lo - offset);
      at += tail.length;
    }
    if (at < end) this.#checkTotal(inode, at);
    return out;
  }
}
