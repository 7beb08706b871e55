/**
 * A squashfs compressor: the same object compresses blocks in the writer's workers and decompresses them in the
 * reader. Specs are plain data so they can be sent to worker threads.
 */
export type CompressorName = 'gzip' | 'xz' | 'zstd' | 'lz4';

export interface CompressorSpec {
  name: CompressorName;
  blockSize: number;
  /**
   * gzip/zstd level; gzip window bits; gzip strategy mask (the options block's bits: default 1, filtered 2,
   * huffman_only 4, run_length_encoded 8, fixed 16; 0 = default only); xz dictionary size and BCJ filter mask
   * (x86 1, powerpc 2, ia64 4, arm 8, armthumb 0x10, sparc 0x20); lz4 high-compression flag. Unset = mksquashfs's
   * default; parseCompression fills every field of its compressor in.
   */
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

/**
 * What createCompressor and compressorFromImage return. Every compressor here works synchronously in the calling
 * thread (native code, no libuv pool), so the async methods just wrap these; a worker can call them directly.
 */
export interface SyncCompressor extends Compressor {
  compressSync(data: Uint8Array): Uint8Array | null;
  /**
   * Compress straight into `out` (which has room for at least data.length bytes): the compressed length, or -1
   * when compressing does not make the data smaller. Same bytes as compressSync, without its copy.
   */
  compressInto(data: Uint8Array, out: Uint8Array): number;
  decompressSync(data: Uint8Array, maxSize: number): Uint8Array;
}
