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

export class DataReader {
  readonly #source: ByteSource;
  readonly #store: MetadataStore;
  readonly #compressor: Compressor;
  readonly #file: string;
  readonly #layout: ImageLayout;
  /** Decompressed fragment blocks (at most a block size each). */
  readonly #fragments = new AsyncCache<number, { data: Uint8Array; start: number }>(4);

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

  /** The file's contents in order: one chunk per data block, then the tail. Chunks are the caller's to keep. */
  async *chunks(inode: FileInode): AsyncGenerator<Uint8Array> {
    const file = this.#file;
    const { dataStart, dataEnd, blockSize } = this.#limits;
    const where = `file inode ${inode.ino}`;
    const inodeAt = this.#layout.inodeTable.start + inode.ref.block;
    const lastFull = inode.fragment !== INVALID_FRAGMENT;
    let pos = inode.start;
    let produced = 0;
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
      if (stored === 0) {
        if (raw) throw corrupt(file, `${where}: block ${i} is a raw block of 0 bytes`, pos);
        produced += expected;
        yield new Uint8Array(expected);
        continue;
      }
      if (stored > blockSize) throw corrupt(file, `${where}: block ${i} stored size ${stored} exceeds the block size ${blockSize}`, pos);
      if (pos < dataStart || pos + stored > dataEnd) {
        throw corrupt(file, `${where}: block ${i} (${stored} bytes) lies outside the data area ${dataStart}..${dataEnd}`, pos);
      }
      const bytes = await this.#source.read(pos, stored, `${where} block ${i}`);
      let out: Uint8Array;
      if (raw) {
        if (stored !== expected) throw corrupt(file, `${where}: raw block ${i} holds ${stored} bytes, expected ${expected}`, pos);
        out = copyBytes(bytes);
      } else {
        out = await decompressBlock(this.#compressor, file, bytes, expected, `${where} block ${i}`, pos, true);
      }
      pos += stored;
      produced += expected;
      yield out;
    }
    if (lastFull) {
      const tail = inode.size - produced;
      const { data, start } = await this.#fragmentBlock(inode.fragment, inodeAt);
      if (inode.fragmentOffset + tail > data.length) {
        throw corrupt(file, `${where}: tail (${tail} bytes at ${inode.fragmentOffset}) lies outside the ${data.length}-byte fragment ${inode.fragment}`, start);
      }
      produced += tail;
      yield copyBytes(data, inode.fragmentOffset, inode.fragmentOffset + tail);
    }
    if (produced !== inode.size) throw corrupt(file, `${where}: contents are ${produced} bytes, the inode says ${inode.size}`, inodeAt);
  }
}
