/**
 * lz4 in squashfs: raw LZ4 blocks (no frame), LZ4_compress_default or, with -Xhc, LZ4_compress_HC at its default
 * level 9, as mksquashfs's lz4_wrapper.c does. Binding: the native part of the `lz4` package (liblz4 built from
 * source at install), called directly and synchronously; its JavaScript stream layer is not used.
 */
import { Compression } from '../squashfs/format.js';
import { BaseCompressor, checkMaxSize, corrupt, needOptions, optionsBlock, ownCopy, nativeAddon, trimOutput, type OptionWord } from './common.js';
import type { CompressorSpec } from './types.js';

interface Lz4Binding {
  /** Bytes written, 0 when the result would not fit in `limit` bytes. */
  compressLimited(input: Uint8Array, output: Uint8Array, limit: number): number;
  compressHCLimited(input: Uint8Array, output: Uint8Array, limit: number, level: number): number;
  /** LZ4_decompress_safe: bytes written, negative when corrupt or when `output` is too small. */
  uncompress(input: Uint8Array, output: Uint8Array): number;
}

export const lz4Binding = nativeAddon<Lz4Binding>('lz4/build/Release/lz4.node', "lz4 compression needs the lz4 package's native addon, which",
  'run `npm rebuild lz4` where mkportable is installed (it needs a C++ compiler: apt-get install build-essential)');

/** The options block's version field: the kernel knows only the "legacy" LZ4 block format. */
const LZ4_LEGACY = 1;
const LZ4_HC_FLAG = 1;
/** LZ4HC_CLEVEL_DEFAULT, what mksquashfs's LZ4_compressHC_limitedOutput uses. */
const LZ4_HC_LEVEL = 9;

export const lz4OptionWords: Record<string, OptionWord> = {
  '-Xhc': {
    takesValue: false,
    apply(spec) {
      spec.hc = true;
    },
  },
};

export function normalizeLz4(spec: CompressorSpec): CompressorSpec {
  return { name: 'lz4', blockSize: spec.blockSize, hc: spec.hc === true };
}

export function lz4SpecFromImage(options: Uint8Array | null, blockSize: number): CompressorSpec {
  if (!options) throw corrupt('lz4 image has no compressor options block; the kernel refuses to mount it');
  const v = needOptions('lz4', options, 8);
  const version = v.getUint32(0, true); // version
  const flags = v.getUint32(4, true); // flags
  if (version !== LZ4_LEGACY) throw corrupt(`lz4 compressor options: version ${version} is not 1 (the only one the kernel reads)`);
  if (flags & ~LZ4_HC_FLAG) throw corrupt(`lz4 compressor options: unknown flags 0x${flags.toString(16)}`);
  return normalizeLz4({ name: 'lz4', blockSize, hc: (flags & LZ4_HC_FLAG) !== 0 });
}

export class Lz4Compressor extends BaseCompressor {
  readonly id = Compression.LZ4;
  readonly spec: CompressorSpec;
  #scratch = new Uint8Array(0);

  constructor(spec: CompressorSpec) {
    super();
    this.spec = normalizeLz4(spec);
  }

  /** Always present: without it the kernel refuses to mount an lz4 image. */
  options(): Uint8Array {
    return optionsBlock([
      [4, LZ4_LEGACY], // version
      [4, this.spec.hc ? LZ4_HC_FLAG : 0], // flags
    ]);
  }

  compressSync(data: Uint8Array): Uint8Array | null {
    if (data.length < 2) return null;
    const limit = data.length - 1; // only a strictly smaller result is worth storing
    if (this.#scratch.length < limit) this.#scratch = new Uint8Array(Math.max(limit, this.spec.blockSize));
    const n = this.spec.hc
      ? lz4Binding().compressHCLimited(data, this.#scratch, limit, LZ4_HC_LEVEL)
      : lz4Binding().compressLimited(data, this.#scratch, limit);
    return n > 0 ? ownCopy(this.#scratch, n) : null;
  }

  decompressSync(data: Uint8Array, maxSize: number): Uint8Array {
    checkMaxSize(maxSize);
    if (data.length === 0) throw corrupt('lz4 block is empty');
    const out = new Uint8Array(maxSize);
    const n = lz4Binding().uncompress(data, out);
    // LZ4_decompress_safe never writes past `out`; it cannot tell "corrupt" from "needs more room".
    if (n < 0) throw corrupt(`lz4 block is corrupt or decompresses to more than ${maxSize} bytes`);
    return trimOutput(out, n);
  }
}
