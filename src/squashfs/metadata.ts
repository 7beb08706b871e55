/**
 * Metadata streams: cut into 8192-byte uncompressed chunks, each stored behind a u16 header holding the stored
 * length (| METADATA_UNCOMPRESSED when stored raw). A chunk is compressed as soon as it is full, so the stored
 * position of the open chunk — and with it the ref of the next byte — is always known.
 */
import type { Compressor } from '../compress/types.js';
import { METADATA_SIZE, METADATA_UNCOMPRESSED } from './format.js';
import { u64le } from './bytes.js';

/** Where an item starts: stored position of its chunk relative to the table start, offset inside the chunk. */
export interface MetadataRef {
  block: number;
  offset: number;
}

export const refToU64 = (r: MetadataRef): bigint => (BigInt(r.block) << 16n) | BigInt(r.offset);

/** Store one metadata chunk: compressed when that makes it smaller, raw otherwise. */
export async function encodeMetadataChunk(compressor: Compressor | null, data: Uint8Array): Promise<Uint8Array> {
  if (data.length === 0 || data.length > METADATA_SIZE) throw new RangeError(`metadata chunk of ${data.length} bytes`);
  const packed = compressor ? await compressor.compress(data) : null;
  const raw = !packed || packed.length >= data.length;
  const payload = raw ? data : packed;
  const out = new Uint8Array(2 + payload.length);
  new DataView(out.buffer).setUint16(0, raw ? payload.length | METADATA_UNCOMPRESSED : payload.length, true);
  out.set(payload, 2);
  return out;
}

export class MetadataWriter {
  readonly #compressor: Compressor | null;
  readonly #stored: Uint8Array[] = [];
  /** Stored position of each finished chunk, relative to the table start. */
  readonly #chunkStarts: number[] = [];
  #storedSize = 0;
  #open = new Uint8Array(METADATA_SIZE);
  #fill = 0;

  /** `compressor` null stores every chunk raw (tests with hand-computed offsets). */
  constructor(compressor: Compressor | null) {
    this.#compressor = compressor;
  }

  /** The ref the next written byte will have. */
  get ref(): MetadataRef {
    return { block: this.#storedSize, offset: this.#fill };
  }

  /** Uncompressed bytes written so far. */
  get length(): number {
    return this.#chunkStarts.length * METADATA_SIZE + this.#fill;
  }

  async write(data: Uint8Array): Promise<void> {
    let at = 0;
    while (at < data.length) {
      const n = Math.min(METADATA_SIZE - this.#fill, data.length - at);
      this.#open.set(data.subarray(at, at + n), this.#fill);
      this.#fill += n;
      at += n;
      if (this.#fill === METADATA_SIZE) await this.#flush();
    }
  }

  async #flush(): Promise<void> {
    if (this.#fill === 0) return;
    const chunk = await encodeMetadataChunk(this.#compressor, this.#open.subarray(0, this.#fill));
    this.#chunkStarts.push(this.#storedSize);
    this.#stored.push(chunk);
    this.#storedSize += chunk.length;
    this.#fill = 0;
  }

  /** Close the stream: the stored chunks in order and where each starts. */
  async finish(): Promise<{ chunks: Uint8Array[]; chunkStarts: number[]; size: number }> {
    await this.#flush();
    return { chunks: this.#stored, chunkStarts: this.#chunkStarts, size: this.#storedSize };
  }
}

/**
 * A table stored as a metadata stream followed by a headerless u64 array of absolute chunk positions (fragment,
 * export, id and xattr-id tables). Returns the pieces to write at `tableStart` and where the index array lands.
 */
export async function encodeIndexedTable(
  compressor: Compressor | null,
  payload: Uint8Array,
  tableStart: number,
): Promise<{ pieces: Uint8Array[]; indexStart: number; end: number }> {
  const mw = new MetadataWriter(compressor);
  await mw.write(payload);
  const { chunks, chunkStarts, size } = await mw.finish();
  const index = u64le(chunkStarts.map((s) => tableStart + s));
  return { pieces: [...chunks, index], indexStart: tableStart + size, end: tableStart + size + index.length };
}
