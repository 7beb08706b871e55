/**
 * Pieces every compressor module shares: the error constructors, option-word handling and the async wrappers.
 */
import { createRequire } from 'node:module';
import { MkportableError } from '../errors.js';
import type { CompressorSpec, SyncCompressor } from './types.js';

/** A bad compression setting (the user's words or a hand-made spec). */
export function invalid(what: string): MkportableError {
  return new MkportableError('COMPRESSION_INVALID', `squashCompression: ${what}`, 'squashCompression');
}

/** An image's compressor options block, or a block's bytes, that cannot be right. */
export function corrupt(what: string): MkportableError {
  return new MkportableError('IMAGE_CORRUPT', what);
}

export function unsupported(what: string): MkportableError {
  return new MkportableError('IMAGE_UNSUPPORTED', what);
}

/** Loads a native binding (CommonJS) from an ESM module. */
export const requireNative = createRequire(import.meta.url);

/**
 * A native binding loaded on first use, so that a missing addon fails only the compressor that needs it, and
 * as one line saying what is missing and how to get it (`fix`), not as a module-loader stack trace.
 */
export function nativeAddon<T>(id: string, what: string, fix: string): () => T {
  let loaded: T | undefined;
  return () => {
    if (loaded === undefined) {
      try {
        loaded = requireNative(id) as T;
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code !== 'MODULE_NOT_FOUND' && err.code !== 'ERR_DLOPEN_FAILED') throw e;
        const why = err.code === 'MODULE_NOT_FOUND' ? 'is not built or not installed' : 'does not load';
        const detail = (err.message.split('\n')[0] ?? '').trim();
        throw new MkportableError('ADDON_MISSING', `${what} ${why} (${detail}): ${fix}`, id);
      }
    }
    return loaded;
  };
}

/** One -X option of a compressor: `value` is the next word when the option takes one. */
export interface OptionWord {
  takesValue: boolean;
  apply(spec: CompressorSpec, value: string): void;
}

/** A whole number written in plain decimal digits (no sign, no exponent, no "0x"). */
export function wholeNumber(word: string): number | null {
  return /^[0-9]{1,9}$/.test(word) ? Number(word) : null;
}

/** Splits a mksquashfs comma list, quoting the option in any complaint. */
export function commaList(option: string, value: string): string[] {
  const items = value.split(',');
  if (items.some((i) => i === '')) throw invalid(`${option} list "${value}" has an empty entry`);
  return items;
}

export function dataView(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** The options block payload as mksquashfs lays it out: little-endian fields in order. */
export function optionsBlock(fields: Array<[bytes: 2 | 4, value: number]>): Uint8Array {
  const out = new Uint8Array(fields.reduce((n, [b]) => n + b, 0));
  const v = dataView(out);
  let at = 0;
  for (const [bytes, value] of fields) {
    if (bytes === 4) v.setUint32(at, value, true);
    else v.setUint16(at, value, true);
    at += bytes;
  }
  return out;
}

/** Checks an image's options block is at least `size` bytes (squashfs-tools reads the struct it expects). */
export function needOptions(name: string, options: Uint8Array, size: number, exact = false): DataView {
  if (exact ? options.length !== size : options.length < size) {
    throw corrupt(`${name} compressor options block is ${options.length} bytes, expected ${size}`);
  }
  return dataView(options);
}

/**
 * The decompressed bytes of a block decoded into a `maxSize` buffer: the buffer itself when it is mostly used,
 * else a copy, so a small metadata chunk does not pin a 1 MiB allocation.
 */
export function trimOutput(out: Uint8Array, length: number): Uint8Array {
  return length * 2 >= out.length ? out.subarray(0, length) : out.slice(0, length);
}

/** A copy of the first `length` bytes in a buffer of its own, so a worker can transfer it without neighbours. */
export function ownCopy(src: Uint8Array, length: number): Uint8Array {
  return src.slice(0, length);
}

/**
 * `data` encoded with each variant in turn, the smallest kept (the first on a tie), as mksquashfs does. Each try may
 * only use fewer bytes than the best so far, so a losing variant stops as soon as it has lost. `encode` writes into
 * `out` and returns the length, negative when it does not fit; the two buffers take turns (the second may be empty
 * with one variant). Null when no variant is smaller than the data.
 */
export function smallestEncoding<V>(
  data: Uint8Array,
  variants: readonly V[],
  buffers: readonly [Uint8Array, Uint8Array],
  encode: (variant: V, out: Uint8Array) => number,
): Uint8Array | null {
  let limit = data.length - 1;
  let best: Uint8Array | null = null;
  let bestLength = -1;
  for (const variant of variants) {
    const out: Uint8Array = best === buffers[0] ? buffers[1] : buffers[0];
    const n = encode(variant, out.subarray(0, limit));
    if (n >= 0) {
      best = out;
      bestLength = n;
      limit = n - 1;
      if (limit <= 0) break;
    }
  }
  return best ? ownCopy(best, bestLength) : null;
}

export function checkMaxSize(maxSize: number): void {
  if (!Number.isSafeInteger(maxSize) || maxSize < 0) throw new RangeError(`maxSize ${maxSize} is not a byte count`);
}

/** Gives the sync compressors their Promise API; errors become rejections, never synchronous throws. */
export abstract class BaseCompressor implements SyncCompressor {
  abstract readonly spec: CompressorSpec;
  abstract readonly id: number;
  abstract options(): Uint8Array | null;
  abstract compressSync(data: Uint8Array): Uint8Array | null;
  abstract decompressSync(data: Uint8Array, maxSize: number): Uint8Array;

  /** Through compressSync and a copy; compressors that can write into `out` directly override this. */
  compressInto(data: Uint8Array, out: Uint8Array): number {
    const packed = this.compressSync(data);
    if (!packed || packed.length >= data.length) return -1;
    out.set(packed);
    return packed.length;
  }

  compress(data: Uint8Array): Promise<Uint8Array | null> {
    try {
      return Promise.resolve(this.compressSync(data));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  decompress(data: Uint8Array, maxSize: number): Promise<Uint8Array> {
    try {
      return Promise.resolve(this.decompressSync(data, maxSize));
    } catch (e) {
      return Promise.reject(e);
    }
  }
}
