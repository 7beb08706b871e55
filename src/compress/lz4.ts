/**
 * lz4 in squashfs: raw LZ4 blocks (no frame), LZ4_compress_default or, with -Xhc, LZ4_compress_HC at its default
 * level 9, as mksquashfs's lz4_wrapper.c does. Compression goes through the system liblz4 (native/lz4.c, the library
 * mksquashfs uses, about twice as fast here as the copy the `lz4` package builds); where mkportable's addon or
 * liblz4.so.1 is missing, through the native part of the `lz4` package, called directly and synchronously (its
 * JavaScript stream layer is not used). Both give the same blocks; the block cache keeps them apart anyway (the
 * library is part of its key). Decompression (the reader) always uses the `lz4` package.
 */
import { Compression } from '../squashfs/format.js';
import { BaseCompressor, checkMaxSize, corrupt, needOptions, optionsBlock, ownCopy, nativeAddon, requireNative, trimOutput, type OptionWord } from './common.js';
import type { CompressorSpec } from './types.js';
import { nativeAddonPath } from '../package-root.js';

interface Lz4Binding {
  /** Bytes written, 0 when the result would not fit in `limit` bytes. */
  compressLimited(input: Uint8Array, output: Uint8Array, limit: number): number;
  compressHCLimited(input: Uint8Array, output: Uint8Array, limit: number, level: number): number;
  /** LZ4_decompress_safe: bytes written, negative when corrupt or when `output` is too small. */
  uncompress(input: Uint8Array, output: Uint8Array): number;
}

export const lz4Binding = nativeAddon<Lz4Binding>('lz4/build/Release/lz4.node', "lz4 compression needs the lz4 package's native addon, which",
  'run `npm rebuild lz4` where mkportable is installed (it needs a C++ compiler: apt-get install build-essential)');

interface SystemLz4 {
  /** Bytes written (at most `limit`), 0 when the result would not fit; level 0: LZ4_compress_default, else HC. */
  lz4Compress(input: Uint8Array, out: Uint8Array, limit: number, level: number): number;
  lz4Version(): string;
}

let systemLz4: SystemLz4 | null | undefined;
/** mkportable's binding to the system liblz4, or null where the addon or liblz4.so.1 is missing. */
function systemLz4Binding(): SystemLz4 | null {
  if (systemLz4 === undefined) {
    try {
      const addon = requireNative(nativeAddonPath()) as Partial<SystemLz4>;
      addon.lz4Version!();
      systemLz4 = addon as SystemLz4;
    } catch {
      systemLz4 = null;
    }
  }
  return systemLz4;
}

/** Compress with the system liblz4 when there, else the lz4 package's copy: bytes written, 0 when over `limit`. */
function compressBlock(data: Uint8Array, out: Uint8Array, limit: number, hc: boolean): number {
  const sys = systemLz4Binding();
  if (sys) return sys.lz4Compress(data, out, limit, hc ? LZ4_HC_LEVEL : 0);
  return hc ? lz4Binding().compressHCLimited(data, out, limit, LZ4_HC_LEVEL) : lz4Binding().compressLimited(data, out, limit);
}

/** The library that compresses: the system liblz4's version, or the lz4 package's (it builds its own liblz4). */
export const lz4LibraryVersion = (): string => {
  const sys = systemLz4Binding();
  return sys ? `system liblz4 ${sys.lz4Version()}` : `lz4 package ${(requireNative('lz4/package.json') as { version: string }).version}`;
};

/** Load what lz4 needs before a build starts: the system liblz4, or else the lz4 package's addon (ADDON_MISSING). */
export function requireLz4(): void {
  if (!systemLz4Binding()) lz4Binding();
}

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
    const n = compressBlock(data, this.#scratch, limit, this.spec.hc === true);
    return n > 0 ? ownCopy(this.#scratch, n) : null;
  }

  compressInto(data: Uint8Array, out: Uint8Array): number {
    if (data.length < 2) return -1;
    const limit = data.length - 1;
    if (out.length < limit) return super.compressInto(data, out);
    const n = compressBlock(data, out, limit, this.spec.hc === true);
    return n > 0 ? n : -1;
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
