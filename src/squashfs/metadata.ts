/**
 * Metadata streams: cut into 8192-byte uncompressed chunks, each stored behind a u16 header holding the stored
 * length (| METADATA_UNCOMPRESSED when stored raw). A chunk is compressed as soon as it is full, so the stored
 * position of the open chunk — and with it the ref of the next byte — is always known. Synchronous: a table is
 * written one small record at a time, and a promise per record would cost more than the record.
 */
import type { SyncCompressor } from '../compress/types.js';
import { METADATA_SIZE, METADATA_UNCOMPRESSED } from './format.js';
import { u64le } from './bytes.js';

/** Where an item starts: stored position of its chunk relative to the table start, offset inside the chunk. */
export interface MetadataRef {
  block: number;
  offset: number;
}

export const refToU64 = (r: MetadataRef): bigint => (BigInt(r.block) << 16n) | BigInt(r.offset);

/** What a metadata stream needs of a compressor. */
export type MetadataCompressor = Pick<SyncCompressor, 'compressSync'>;

/** Store one metadata chunk: compressed when that makes it smaller, raw otherwise. */
export function encodeMetadataChunk(compressor: MetadataCompressor | null, data: Uint8Array): Uint8Array {
  if (data.length === 0 || data.length > METADATA_SIZE) throw new RangeError(`metadata chunk of ${data.length} bytes`);
  const packed = compressor ? compressor.compressSync(data) : null;
  const raw = !packed || packed.length >= data.length;
  const payload = raw ? data : packed;
  const out = new Uint8Array(2 + payload.length);
  new DataView(out.buffer).setUint16(0, raw ? payload.length | METADATA_UNCOMPRESSED : payload.length, true);
  out.set(payload, 2);
  return out;
}

export class MetadataWriter {
  readonly #compressor: MetadataCompressor | null;
  readonly #sink: ((chunk: Uint8Array) => void) | null;
  readonly #stored: Uint8Array[] = [];
  /** Stored position of each finished chunk, relative to the table start. */
  readonly #chunkStarts: number[] = [];
  #storedSize = 0;
  #open = new Uint8Array(METADATA_SIZE);
  #fill = 0;

  /**
   * `compressor` null stores every chunk raw (tests with hand-computed offsets). With `sink`, finished chunks go
   * there at once instead of being kept (finish() then returns no chunks).
   */
  constructor(compressor: MetadataCompressor | null, sink?: (chunk: Uint8Array) => void) {
    this.#compressor = compressor;
    this.#sink = sink ?? null;
  }

  /** The ref the next written byte will have. */
  get ref(): MetadataRef {
    return { block: this.#storedSize, offset: this.#fill };
  }

  /** The ref's parts without an object: stored position of the open chunk, and the offset in it. */
  get block(): number {
    return this.#storedSize;
  }

  get offset(): number {
    return this.#fill;
  }

  /** Uncompressed bytes written so far. */
  get length(): number {
    return this.#chunkStarts.length * METADATA_SIZE + this.#fill;
  }

  write(data: Uint8Array): void {
    if (this.#fill + data.length < METADATA_SIZE) {
      this.#open.set(data, this.#fill);
      this.#fill += data.length;
      return;
    }
    let at = 0;
    while (at < data.length) {
      const n = Math.min(METADATA_SIZE - this.#fill, data.length - at);
      this.#open.set(data.subarray(at, at + n), this.#fill);
      this.#fill += n;
      at += n;
      if (this.#fill === METADATA_SIZE) this.#flush();
    }
  }

  #flush(): void {
    if (this.#fill === 0) return;
    const chunk = encodeMetadataChunk(this.#compressor, this.#open.subarray(0, this.#fill));
    this.#chunkStarts.push(this.#storedSize);
    if (this.#sink) this.#sink(chunk);
    else this.#stored.push(chunk);
    this.#storedSize += chunk.length;
    this.#fill = 0;
  }

  /** Close the stream: the stored chunks in order (none with a sink) and where each starts. */
  finish(): { chunks: Uint8Array[]; chunkStarts: number[]; size: number } {
    this.#flush();
    return { chunks: this.#stored, chunkStarts: this.#chunkStarts, size: this.#storedSize };
  }
}

/**
 * A table stored as a metadata stream followed by a headerless u64 array of absolute chunk positions (fragment,
 * export, id and xattr-id tables). Returns the pieces to write at `tableStart` and where the index array lands.
 */
export function encodeIndexedTable(
  compressor: MetadataCompressor | null,
  payload: Uint8Array,
  tableStart: number,
): { pieces: Uint8Array[]; indexStart: number; end: number } {
  const mw = new MetadataWriter(compressor);
  mw.write(payload);
  const { chunks, chunkStarts, size } = mw.finish();
  const index = u64le(chunkStarts.map((s) => tableStart + s));
  return { pieces: [...chunks, index], indexStart: tableStart + size, end: tableStart + size + index.length };
}
