/**
 * zstd in squashfs: standard zstd frames, one per block, as mksquashfs's zstd_wrapper.c writes them
 * (ZSTD_compressCCtx at the chosen level). Binding: zstd-napi's low-level CCtx/DCtx (libzstd built from source at
 * install), synchronous in the calling thread, writing into buffers we own.
 */
import { Compression } from '../squashfs/format.js';
import {
  BaseCompressor,
  checkMaxSize,
  corrupt,
  invalid,
  needOptions,
  optionsBlock,
  ownCopy,
  nativeAddon,
  trimOutput,
  wholeNumber,
  type OptionWord,
} from './common.js';
import type { CompressorSpec } from './types.js';

interface ZstdBinding {
  CCtx: new () => {
    setParameter(param: number, value: number): void;
    compress2(dst: Uint8Array, src: Uint8Array): number;
  };
  DCtx: new () => {
    setParameter(param: number, value: number): void;
    reset(directive: number): void;
    /** [hint (0 = frame done), bytes written, bytes read]; throws on corrupt input. */
    decompressStream(dst: Uint8Array, src: Uint8Array): [number, number, number];
  };
  CParameter: { compressionLevel: number; windowLog: number };
  DParameter: { windowLogMax: number };
  ResetDirective: { sessionOnly: number };
  versionString(): string;
}

export const zstdBinding = nativeAddon<ZstdBinding>('zstd-napi/binding.js', "zstd compression needs the zstd-napi package's native addon, which",
  'run `npm rebuild zstd-napi` where mkportable is installed (it needs a C++ compiler: apt-get install build-essential)');

export const zstdLibraryVersion = (): string => zstdBinding().versionString();

export const ZSTD_DEFAULT_LEVEL = 15;
export const ZSTD_MAX_LEVEL = 22;
const METADATA_SIZE = 8192;

export const zstdOptionWords: Record<string, OptionWord> = {
  '-Xcompression-level': {
    takesValue: true,
    apply(spec, value) {
      const n = wholeNumber(value);
      if (n === null || n < 1 || n > ZSTD_MAX_LEVEL) {
        throw invalid(`zstd -Xcompression-level "${value}" is not a whole number from 1 to ${ZSTD_MAX_LEVEL}`);
      }
      spec.level = n;
    },
  },
};

export function normalizeZstd(spec: CompressorSpec): CompressorSpec {
  const level = spec.level ?? ZSTD_DEFAULT_LEVEL;
  if (!Number.isInteger(level) || level < 1 || level > ZSTD_MAX_LEVEL) {
    throw invalid(`zstd level ${level} is not 1 to ${ZSTD_MAX_LEVEL}`);
  }
  return { name: 'zstd', blockSize: spec.blockSize, level };
}

export function zstdSpecFromImage(options: Uint8Array | null, blockSize: number): CompressorSpec {
  if (!options) return normalizeZstd({ name: 'zstd', blockSize });
  const level = needOptions('zstd', options, 4).getUint32(0, true); // compression_level
  if (level < 1 || level > ZSTD_MAX_LEVEL) {
    throw corrupt(`zstd compressor options: compression level ${level} is not 1 to ${ZSTD_MAX_LEVEL}`);
  }
  return normalizeZstd({ name: 'zstd', blockSize, level });
}

const ZSTD_MAGIC = 0xfd2fb528;

/**
 * The window a frame asks for (RFC 8878 3.1.1.1), or null when `b` does not start with a zstd frame header. zstd's
 * own one-shot path skips its window limit when the output fits, so the kernel's limit is checked here.
 */
export function zstdFrameWindow(b: Uint8Array): number | null {
  if (b.length < 6) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0, true) !== ZSTD_MAGIC) return null;
  const fhd = b[4]; // frame header descriptor
  const singleSegment = (fhd & 0x20) !== 0;
  if (!singleSegment) {
    const wd = b[5]; // window descriptor
    const base = 2 ** (10 + (wd >> 3));
    return base + (base / 8) * (wd & 7);
  }
  // Single segment: the window is the content size, which follows the dictionary id.
  const at = 5 + [0, 1, 2, 4][fhd & 3];
  const fcsBytes = [1, 2, 4, 8][fhd >> 6];
  if (b.length < at + fcsBytes) return null;
  let size: number;
  if (fcsBytes === 1) size = b[at];
  else if (fcsBytes === 2) size = v.getUint16(at, true) + 256;
  else if (fcsBytes === 4) size = v.getUint32(at, true);
  else size = Number(v.getBigUint64(at, true));
  return Math.max(size, 1024); // zstd never uses a window under 1 KiB
}

/** log2 of a power of two. */
const log2 = (n: number): number => Math.round(Math.log2(n));

export class ZstdCompressor extends BaseCompressor {
  readonly id = Compression.ZSTD;
  readonly spec: CompressorSpec;
  #cctx: InstanceType<ZstdBinding['CCtx']> | null = null;
  #dctx: InstanceType<ZstdBinding['DCtx']> | null = null;
  #scratch = new Uint8Array(0);

  constructor(spec: CompressorSpec) {
    super();
    this.spec = normalizeZstd(spec);
  }

  options(): Uint8Array | null {
    return this.spec.level === ZSTD_DEFAULT_LEVEL ? null : optionsBlock([[4, this.spec.level!]]);
  }

  compressSync(data: Uint8Array): Uint8Array | null {
    if (data.length < 2) return null;
    if (!this.#cctx) {
      // Contexts are reused (parameters stick). The window never exceeds the block size: the kernel decodes with a
      // window of max(block size, 8192). zstd shrinks it further to fit the input, as ZSTD_compressCCtx does.
      this.#cctx = new (zstdBinding().CCtx)();
      this.#cctx.setParameter(zstdBinding().CParameter.compressionLevel, this.spec.level!);
      this.#cctx.setParameter(zstdBinding().CParameter.windowLog, log2(this.spec.blockSize));
    }
    // ZSTD_compressBound(n) = n + n/256 + (n < 128 KiB ? (128 KiB - n) >> 11 : 0) <= n + n/256 + 64.
    const bound = data.length + (data.length >> 8) + 128;
    if (this.#scratch.length < bound) this.#scratch = new Uint8Array(Math.max(bound, this.spec.blockSize + (this.spec.blockSize >> 8) + 128));
    const n = this.#cctx.compress2(this.#scratch, data);
    return n < data.length ? ownCopy(this.#scratch, n) : null;
  }

  /**
   * Streaming decode, as the kernel does it (a frame whose window exceeds max(block size, 8192) fails as it fails at
   * mount time); output stops at `maxSize`.
   */
  decompressSync(data: Uint8Array, maxSize: number): Uint8Array {
    checkMaxSize(maxSize);
    if (data.length === 0) throw corrupt('zstd block is empty');
    if (!this.#dctx) {
      this.#dctx = new (zstdBinding().DCtx)();
      this.#dctx.setParameter(zstdBinding().DParameter.windowLogMax, log2(Math.max(this.spec.blockSize, METADATA_SIZE)));
    }
    const window = zstdFrameWindow(data);
    const kernelWindow = Math.max(this.spec.blockSize, METADATA_SIZE);
    if (window !== null && window > kernelWindow) {
      throw corrupt(`zstd block uses a ${window}-byte window, more than the ${kernelWindow} bytes the kernel allows for this image`);
    }
    const dctx = this.#dctx;
    dctx.reset(zstdBinding().ResetDirective.sessionOnly); // a previous corrupt block may have left a frame half-read
    const out = new Uint8Array(maxSize);
    let inPos = 0;
    let outPos = 0;
    try {
      for (;;) {
        const [hint, wrote, read] = dctx.decompressStream(out.subarray(outPos), data.subarray(inPos));
        outPos += wrote;
        inPos += read;
        if (hint === 0) {
          if (inPos === data.length) break; // the last frame is complete
          continue; // another frame follows
        }
        // No progress: either the output is full and the frame wants more room, or the input ran out mid-frame.
        if (wrote === 0 && read === 0) {
          throw corrupt(outPos === maxSize ? `zstd block decompresses to more than ${maxSize} bytes` : 'zstd block is truncated');
        }
      }
    } catch (e) {
      if ((e as { code?: string }).code === 'IMAGE_CORRUPT') throw e;
      throw corrupt(`zstd block does not decompress (${(e as Error).message})`);
    }
    return trimOutput(out, outPos);
  }
}
