/**
 * Metadata blocks: a u16 header (stored length, | METADATA_UNCOMPRESSED when raw) and up to METADATA_SIZE bytes once
 * decompressed. Blocks are read only inside the region of the table they belong to and kept in a bounded cache.
 * A cursor reads a stream of records across blocks; a record may straddle blocks, but only a full (8192-byte) block
 * can be followed by another in the same stream.
 */
import type { Compressor } from '../../compress/types.js';
import { METADATA_SIZE, METADATA_UNCOMPRESSED } from '../format.js';
import { plain } from './bytes.js';
import { decompressBlock } from './decompressor.js';
import { corrupt } from './errors.js';
import { AsyncCache } from './lru.js';
import type { ByteSource } from './source.js';
import { MAX_STORED_METADATA, type Region } from './superblock.js';

export interface MetadataBlock {
  /** Decompressed content, 1..METADATA_SIZE bytes. Shared with the cache: never modify. */
  data: Uint8Array;
  /** Absolute position right after this block: where the next block of the stream starts. */
  next: number;
}

export class MetadataStore {
  readonly #source: ByteSource;
  readonly #compressor: Compressor;
  readonly #file: string;
  readonly #cache: AsyncCache<number, MetadataBlock>;

  constructor(source: ByteSource, compressor: Compressor, file: string, cacheBlocks = 256) {
    this.#source = source;
    this.#compressor = compressor;
    this.#file = file;
    this.#cache = new AsyncCache(cacheBlocks);
  }

  /** The metadata block stored at absolute `pos`; it must end at or before `limit`. */
  async block(pos: number, limit: number, what: string): Promise<MetadataBlock> {
    const b = await this.#cache.get(pos, () => this.#load(pos, limit, what));
    if (b.next > limit) throw corrupt(this.#file, `${what}: metadata block runs past the end of its table (${limit})`, pos);
    return b;
  }

  async #load(pos: number, limit: number, what: string): Promise<MetadataBlock> {
    const file = this.#file;
    if (pos + 2 > limit) throw corrupt(file, `${what}: metadata block header lies outside its table`, pos);
    const stored = await this.#source.read(pos, Math.min(limit - pos, MAX_STORED_METADATA), `${what} metadata block`);
    const header = stored[0] | (stored[1] << 8);
    const len = header & ~METADATA_UNCOMPRESSED;
    if (len === 0 || len > METADATA_SIZE) throw corrupt(file, `${what}: metadata block length ${len} is invalid`, pos);
    if (2 + len > stored.length) {
      throw corrupt(file, `${what}: ${len}-byte metadata block runs past the end of its table (${limit})`, pos);
    }
    const payload = plain(stored.subarray(2, 2 + len));
    const data = header & METADATA_UNCOMPRESSED
      ? payload
      : await decompressBlock(this.#compressor, file, payload, METADATA_SIZE, `${what} metadata block`, pos);
    return { data, next: pos + 2 + len };
  }
}

/** Sequential reader over one metadata stream (inode table, directory table, xattr values). */
export class MetadataCursor {
  readonly #store: MetadataStore;
  readonly #region: Region;
  readonly #file: string;
  readonly #what: string;
  #pos: number;
  #offset: number;
  #block: MetadataBlock | null = null;

  /** Start at `offset` inside the block stored `block` bytes after the region start. */
  constructor(store: MetadataStore, file: string, region: Region, block: number, offset: number, what: string) {
    this.#store = store;
    this.#file = file;
    this.#region = region;
    this.#what = what;
    this.#pos = region.start + block;
    this.#offset = offset;
    if (block < 0 || this.#pos >= region.end || offset < 0 || offset > METADATA_SIZE) {
      throw corrupt(file, `${what}: reference (block ${block}, offset ${offset}) points outside its table`, region.start);
    }
  }

  /** Absolute position of the current block, for error messages. */
  get position(): number {
    return this.#pos;
  }

  /** Where the cursor is, as a (block relative to the region, offset) reference. */
  get ref(): { block: number; offset: number } {
    return { block: this.#pos - this.#region.start, offset: this.#offset };
  }

  async #current(): Promise<MetadataBlock> {
    if (!this.#block) {
      this.#block = await this.#store.block(this.#pos, this.#region.end, this.#what);
      if (this.#offset > this.#block.data.length || (this.#offset === this.#block.data.length && this.#offset < METADATA_SIZE)) {
        throw corrupt(this.#file, `${this.#what}: offset ${this.#offset} is past the end of a ${this.#block.data.length}-byte metadata block`, this.#pos);
      }
    }
    return this.#block;
  }

  async #advance(): Promise<MetadataBlock> {
    const b = await this.#current();
    if (b.data.length !== METADATA_SIZE) {
      throw corrupt(this.#file, `${this.#what} runs past the end of a ${b.data.length}-byte metadata block (only the last block of a table may be short)`, this.#pos);
    }
    if (b.next >= this.#region.end) throw corrupt(this.#file, `${this.#what} runs past the end of its table`, this.#pos);
    this.#pos = b.next;
    this.#offset = 0;
    this.#block = null;
    return this.#current();
  }

  /**
   * The next `n` bytes. A view into the cached block when they lie in one block (do not modify), else a copy.
   * Callers keep `n` small (a record, a name, a batch of block sizes, one xattr value).
   */
  async read(n: number): Promise<Uint8Array> {
    if (n === 0) return new Uint8Array(0);
    let b = await this.#current();
    if (this.#offset === b.data.length) b = await this.#advance();
    if (this.#offset + n <= b.data.length) {
      const out = b.data.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
      return out;
    }
    const out = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      if (this.#offset === b.data.length) b = await this.#advance();
      const take = Math.min(n - done, b.data.length - this.#offset);
      out.set(b.data.subarray(this.#offset, this.#offset + take), done);
      done += take;
      this.#offset += take;
    }
    return out;
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      const chunk = Math.min(left, METADATA_SIZE);
      await this.read(chunk);
      left -= chunk;
    }
  }
}
