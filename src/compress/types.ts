/**
 * A squashfs compressor: the same object compresses blocks in the writer's workers and decompresses them in the
 * reader. Specs are plain data so they can be sent to worker threads.
 */
export type CompressorName = 'gzip' | 'xz' | 'zstd' | 'lz4';

export interface CompressorSpec {
  name: CompressorName;
  blockSize: number;
  /** gzip/zstd level; gzip window bits; xz dictionary size and BCJ filter mask; lz4 high-compression flag. */
  level?: number;
  windowBits?: number;
  strategies?: number;
  dictSize?: number;
  filters?: number;
  hc?: boolean;
}

export interface Compressor {
  readonly spec: CompressorSpec;
  /** The superblock's compression id. */
  readonly id: number;
  /** The compressor options block's payload, or null when every option is the default. */
  options(): Uint8Array | null;
  /** Compressed bytes, or null when compressing does not make the data smaller (it is then stored raw). */
  compress(data: Uint8Array): Promise<Uint8Array | null>;
  /** Decompress one block; throws when the output would exceed `maxSize` or the input is corrupt. */
  decompress(data: Uint8Array, maxSize: number): Promise<Uint8Array>;
}
