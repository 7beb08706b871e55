/**
 * gzip in squashfs: zlib streams (RFC 1950), as mksquashfs's gzip_wrapper.c writes them with deflateInit2(level,
 * Z_DEFLATED, window, memLevel 8, strategy). Inflating (the reader) uses Node's zlib: any correct inflate reads any
 * stream. Deflating has three engines, all called through the addon (native/zlib.c), measured on 128 KiB blocks of
 * ELF files (/usr/lib/x86_64-linux-gnu, Node's binary), of /usr/share and of the generated tree (README, benchmarks):
 *
 *   libdeflate  the system libdeflate (the default where libdeflate.so.0 is installed): better matches than zlib
 *               in a fraction of its time. A zlib level keeps its meaning — level L compresses at least as well as
 *               zlib's level L did on each of those — through LIBDEFLATE_LEVEL; level 9 runs libdeflate's 7:
 *               0.6-0.9% smaller than zlib -9, in 0.17-0.52x its CPU. It has no smaller windows and no strategies: Node's
 *               zlib makes those streams (in a strategy list, libdeflate still makes the default one).
 *   node        Node's bundled zlib, Chromium's fork (the default without libdeflate): about 0.8x the CPU of the
 *               system zlib, images about 1.3% larger. Through the addon (the zlib Node exports to addons, one
 *               stream kept per thread) when it loads, zlib.deflateSync otherwise.
 *   system      the system libz, the library mksquashfs uses: the same deflate choices, so the same sizes as
 *               mksquashfs, at mksquashfs's speed.
 *
 * MKPORTABLE_GZIP=libdeflate|node|system picks one (libdeflate then must load).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import zlib from 'node:zlib';
import { Compression } from '../squashfs/format.js';
import {
  BaseCompressor,
  checkMaxSize,
  commaList,
  corrupt,
  invalid,
  needOptions,
  optionsBlock,
  nativeAddon,
  smallestEncoding,
  wholeNumber,
  type OptionWord,
} from './common.js';
import type { CompressorSpec } from './types.js';
import { MkportableError } from '../errors.js';
import { nativeAddonPath } from '../package-root.js';

interface ZlibBinding {
  /** Bytes written, or -1 when the stream does not fit in `out`. */
  deflate(input: Uint8Array, out: Uint8Array, level: number, windowBits: number, memLevel: number, strategy: number, engine?: number): number;
  zlibVersion(engine?: number): string;
}

/** The addon's engine numbers (native/zlib.c). */
const SYSTEM_ZLIB = 0;
const NODE_ZLIB = 1;
const LIBDEFLATE = 2;

/** The addon's deflate through Node's own zlib, or null when the addon or the export is missing. */
let nodeZlib: ZlibBinding | null | undefined;
function nodeZlibBinding(): ZlibBinding | null {
  if (nodeZlib === undefined) {
    try {
      const b = gzipBinding();
      b.zlibVersion(NODE_ZLIB);
      nodeZlib = b;
    } catch {
      nodeZlib = null;
    }
  }
  return nodeZlib;
}

/** Exported for the check that runs before a build starts (registry's requireCompressorLibrary). */
export const gzipBinding = nativeAddon<ZlibBinding>(nativeAddonPath(), "gzip with the system zlib or libdeflate needs mkportable's native addon, which",
  'install zlib1g-dev and liblzma-dev (apt-get install zlib1g-dev liblzma-dev) and run `npm rebuild mkportable` where mkportable is installed');

/**
 * libdeflate's level for zlib's level L (index L): the lowest whose blocks were no larger in total than zlib's at L on
 * each of the samples above (zlib-engines.test.ts checks it on Node's binary and mkportable's sources).
 */
export const LIBDEFLATE_LEVEL = [0, 1, 2, 2, 3, 6, 7, 7, 7, 7] as const;

/** The libdeflate file the addon loaded and the SHA-256 of its bytes (what decides its output), or null without it. */
let libdeflate: { path: string; digest: string } | null | undefined;
function libdeflateLibrary(): { path: string; digest: string } | null {
  if (libdeflate === undefined) {
    try {
      const file = gzipBinding().zlibVersion(LIBDEFLATE);
      libdeflate = { path: file, digest: createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16) };
    } catch {
      libdeflate = null;
    }
  }
  return libdeflate;
}

export type GzipEngine = 'libdeflate' | 'node' | 'system';
const ENGINE_CHOICE = process.env.MKPORTABLE_GZIP;

/** The strategy bits a (normalized) spec deflates with, in mksquashfs's order; none set is the default alone. */
const strategyBits = (spec: CompressorSpec): number[] =>
  spec.strategies === 0 ? [0] : GZIP_STRATEGIES.map((_, bit) => bit).filter((bit) => spec.strategies! & (1 << bit));

/**
 * The engine that deflates a (normalized) spec's streams with one strategy (its bit; 0, the default) in this
 * process. libdeflate makes only default-strategy streams with the 32 KiB window; Node's zlib the rest.
 */
export function gzipEngine(spec: CompressorSpec, strategyBit = 0): GzipEngine {
  if (ENGINE_CHOICE !== undefined && ENGINE_CHOICE !== '' && !['libdeflate', 'node', 'system'].includes(ENGINE_CHOICE)) {
    throw new MkportableError('CONFIG_INVALID', `MKPORTABLE_GZIP: "${ENGINE_CHOICE}" is not libdeflate, node or system`, 'MKPORTABLE_GZIP');
  }
  if (ENGINE_CHOICE === 'system') return 'system';
  if (ENGINE_CHOICE === 'node' || strategyBit !== 0 || spec.windowBits !== GZIP_DEFAULT_WINDOW) return 'node';
  if (ENGINE_CHOICE === 'libdeflate' || libdeflateLibrary()) return 'libdeflate';
  return 'node';
}

/** The engines a spec's strategies use, each once. */
const gzipEngines = (spec: CompressorSpec): GzipEngine[] => [...new Set(strategyBits(spec).map((bit) => gzipEngine(spec, bit)))];

/** The libraries doing a spec's deflating, with what identifies their output (a version, or libdeflate's digest). */
export function gzipLibraryVersion(spec: CompressorSpec): string {
  return gzipEngines(spec)
    .map((engine) => {
      switch (engine) {
        case 'system':
          return `system zlib ${gzipBinding().zlibVersion()}`;
        case 'libdeflate': {
          const lib = libdeflateLibrary();
          if (!lib) gzipBinding().zlibVersion(LIBDEFLATE); // throws: why libdeflate did not load
          return `libdeflate ${lib!.digest} level ${LIBDEFLATE_LEVEL[spec.level!]}`;
        }
        case 'node':
          return `node zlib ${process.versions.zlib}`;
      }
    })
    .join(' + ');
}

/** Load what a spec's engine needs now, so a missing library stops a build before any work (ADDON_MISSING). */
export function requireGzipEngine(spec: CompressorSpec): void {
  for (const engine of gzipEngines(normalizeGzip(spec))) {
    if (engine === 'node') continue;
    try {
      gzipBinding().zlibVersion(engine === 'system' ? SYSTEM_ZLIB : LIBDEFLATE);
    } catch (e) {
      if (e instanceof MkportableError) throw e;
      const fix = engine === 'system' ? 'install zlib1g (apt-get install zlib1g)' : 'install libdeflate0 (apt-get install libdeflate0), or unset MKPORTABLE_GZIP';
      throw new MkportableError('ADDON_MISSING', `MKPORTABLE_GZIP=${engine}: ${(e as Error).message}: ${fix}`, engine);
    }
  }
}

export const GZIP_DEFAULT_LEVEL = 9;
export const GZIP_DEFAULT_WINDOW = 15;
/** Index = the strategy's bit in the options block, as mksquashfs numbers them. */
export const GZIP_STRATEGIES = ['default', 'filtered', 'huffman_only', 'run_length_encoded', 'fixed'] as const;
const ZLIB_STRATEGY = [
  zlib.constants.Z_DEFAULT_STRATEGY,
  zlib.constants.Z_FILTERED,
  zlib.constants.Z_HUFFMAN_ONLY,
  zlib.constants.Z_RLE,
  zlib.constants.Z_FIXED,
];
const ALL_STRATEGIES = (1 << GZIP_STRATEGIES.length) - 1;

export const gzipOptionWords: Record<string, OptionWord> = {
  '-Xcompression-level': {
    takesValue: true,
    apply(spec, value) {
      const n = wholeNumber(value);
      if (n === null || n < 1 || n > 9) {
        throw invalid(`gzip -Xcompression-level "${value}" is not a whole number from 1 to 9`);
      }
      spec.level = n;
    },
  },
  '-Xwindow-size': {
    takesValue: true,
    apply(spec, value) {
      const n = wholeNumber(value);
      if (n === null || n < 8 || n > 15) throw invalid(`gzip -Xwindow-size "${value}" is not a whole number from 8 to 15`);
      spec.windowBits = n;
    },
  },
  '-Xstrategy': {
    takesValue: true,
    apply(spec, value) {
      for (const item of commaList('-Xstrategy', value)) {
        const bit = (GZIP_STRATEGIES as readonly string[]).indexOf(item);
        if (bit < 0) {
          throw invalid(
            `unknown gzip -Xstrategy "${item}" (expected default, filtered, huffman_only, run_length_encoded or fixed)`,
          );
        }
        spec.strategies = (spec.strategies ?? 0) | (1 << bit);
      }
    },
  },
};

/** Every field filled in; "default" alone is no strategy list at all (mksquashfs's gzip_options_post). */
export function normalizeGzip(spec: CompressorSpec): CompressorSpec {
  const level = spec.level ?? GZIP_DEFAULT_LEVEL;
  const windowBits = spec.windowBits ?? GZIP_DEFAULT_WINDOW;
  let strategies = spec.strategies ?? 0;
  if (!Number.isInteger(level) || level < 1 || level > 9) throw invalid(`gzip level ${level} is not 1 to 9`);
  if (!Number.isInteger(windowBits) || windowBits < 8 || windowBits > 15) {
    throw invalid(`gzip window size ${windowBits} is not 8 to 15`);
  }
  if (!Number.isInteger(strategies) || strategies < 0 || strategies > ALL_STRATEGIES) {
    throw invalid(`gzip strategy mask ${strategies} has bits other than the five strategies`);
  }
  if (strategies === 1) strategies = 0;
  return { name: 'gzip', blockSize: spec.blockSize, level, windowBits, strategies };
}

/** The spec an image's options block (or its absence) stands for; checks what unsquashfs checks. */
export function gzipSpecFromImage(options: Uint8Array | null, blockSize: number): CompressorSpec {
  if (!options) return normalizeGzip({ name: 'gzip', blockSize });
  const v = needOptions('gzip', options, 8);
  const level = v.getUint32(0, true); // compression_level
  const windowBits = v.getUint16(4, true); // window_size
  const strategies = v.getUint16(6, true) & ALL_STRATEGIES; // strategy bits; squashfs-tools ignores unknown ones
  if (level < 1 || level > 9) throw corrupt(`gzip compressor options: compression level ${level} is not 1 to 9`);
  if (windowBits < 8 || windowBits > 15) throw corrupt(`gzip compressor options: window size ${windowBits} is not 8 to 15`);
  return normalizeGzip({ name: 'gzip', blockSize, level, windowBits, strategies });
}

export class GzipCompressor extends BaseCompressor {
  readonly id = Compression.GZIP;
  readonly spec: CompressorSpec;
  /** The streams to try, smallest kept: each strategy (zlib's number) with the engine that deflates it. */
  readonly #streams: { strategy: number; engine: GzipEngine }[];
  #scratch: [Uint8Array, Uint8Array] | null = null;

  constructor(spec: CompressorSpec) {
    super();
    this.spec = normalizeGzip(spec);
    const bits = strategyBits(this.spec);
    this.#streams = bits.map((bit) => ({ strategy: ZLIB_STRATEGY[bit], engine: gzipEngine(this.spec, bit) }));
  }

  options(): Uint8Array | null {
    const { level, windowBits, strategies } = this.spec;
    if (level === GZIP_DEFAULT_LEVEL && windowBits === GZIP_DEFAULT_WINDOW && strategies === 0) return null;
    return optionsBlock([
      [4, level!], // compression_level
      [2, windowBits!], // window_size
      [2, strategies!], // strategy
    ]);
  }

  /** Deflate `data` into `out`: the length, or -1 when the stream does not fit. */
  #deflate(data: Uint8Array, out: Uint8Array, { strategy, engine }: { strategy: number; engine: GzipEngine }): number {
    if (engine === 'libdeflate') return gzipBinding().deflate(data, out, LIBDEFLATE_LEVEL[this.spec.level!], 15, 8, strategy, LIBDEFLATE);
    if (engine === 'system') return gzipBinding().deflate(data, out, this.spec.level!, this.spec.windowBits!, 8, strategy, SYSTEM_ZLIB);
    const native = nodeZlibBinding();
    if (native) return native.deflate(data, out, this.spec.level!, this.spec.windowBits!, 8, strategy, NODE_ZLIB);
    const z = zlib.deflateSync(data, { level: this.spec.level, windowBits: this.spec.windowBits, memLevel: 8, strategy });
    if (z.length > out.length) return -1;
    out.set(z);
    return z.length;
  }

  /** With several strategies, mksquashfs deflates with each and keeps the smallest (smallestEncoding). */
  compressSync(data: Uint8Array): Uint8Array | null {
    if (data.length < 2) return null;
    if (!this.#scratch || this.#scratch[0].length < data.length) {
      const n = Math.max(data.length, this.spec.blockSize);
      this.#scratch = [new Uint8Array(n), new Uint8Array(this.#streams.length > 1 ? n : 0)];
    }
    return smallestEncoding(data, this.#streams, this.#scratch, (stream, out) => this.#deflate(data, out, stream));
  }

  compressInto(data: Uint8Array, out: Uint8Array): number {
    if (this.#streams.length > 1 || data.length < 2 || out.length < data.length - 1) return super.compressInto(data, out);
    return this.#deflate(data, out.subarray(0, data.length - 1), this.#streams[0]);
  }

  /** Any zlib stream whose window fits 32 KiB (the kernel inflates with the largest window too). */
  decompressSync(data: Uint8Array, maxSize: number): Uint8Array {
    checkMaxSize(maxSize);
    let out: Buffer;
    try {
      // maxOutputLength makes zlib stop (and throw) as soon as the output passes the limit.
      out = zlib.inflateSync(data, { maxOutputLength: Math.max(1, maxSize) });
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw corrupt(`gzip block decompresses to more than ${maxSize} bytes`);
      }
      throw corrupt(`gzip block does not decompress (${(e as Error).message})`);
    }
    if (out.length > maxSize) throw corrupt(`gzip block decompresses to more than ${maxSize} bytes`);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }
}
