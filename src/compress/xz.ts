/**
 * xz in squashfs: one .xz stream per block with a CRC32 check, an LZMA2 filter at liblzma's preset 6 with the
 * dictionary replaced, and optionally one BCJ filter before it; exactly what mksquashfs's xz_wrapper.c does. The
 * work happens in the system liblzma through our own small binding (native/xz.c), synchronously.
 */
import { Compression } from '../squashfs/format.js';
import {
  BaseCompressor,
  checkMaxSize,
  commaList,
  corrupt,
  invalid,
  needOptions,
  optionsBlock,
  smallestEncoding,
  nativeAddon,
  trimOutput,
  type OptionWord,
} from './common.js';
import type { CompressorSpec } from './types.js';
import { nativeAddonPath } from '../package-root.js';

interface XzBinding {
  /** Bytes written to `out`, or -1 when the stream does not fit in `out`. */
  encode(input: Uint8Array, bcjFilterId: number, dictSize: number, out: Uint8Array): number;
  /** Bytes written to `out`; throws (error code LZMA_BUF_ERROR when `out` is too small, ...). */
  decode(input: Uint8Array, out: Uint8Array): number;
  version(): string;
  /** An encoder for one .xz stream of any length, fed in pieces by xzStreamCode (liblzma's lzma_stream_encoder). */
  xzStreamEncoder(dictSize: number): XzStreamHandle;
  /** [bytes of input taken, bytes written to out, whether the stream ended]; input null finishes the stream. */
  xzStreamCode(encoder: XzStreamHandle, input: Uint8Array | null, out: Uint8Array): [number, number, boolean];
}

declare const xzStream: unique symbol;
type XzStreamHandle = { readonly [xzStream]: true };

/** Exported for the check that runs before a build starts (registry's requireCompressorLibrary). */
export const xzBinding = nativeAddon<XzBinding>(nativeAddonPath(), "xz compression needs mkportable's native addon (liblzma binding), which",
  'install liblzma-dev (apt-get install liblzma-dev) and run `npm rebuild mkportable` where mkportable is installed');

/** liblzma's version, for reports. */
export const xzLibraryVersion = (): string => xzBinding().version();

/** Index = the filter's bit in the options block; id = liblzma's filter id. */
export const XZ_BCJ_FILTERS = [
  { name: 'x86', id: 0x04 },
  { name: 'powerpc', id: 0x05 },
  { name: 'ia64', id: 0x06 },
  { name: 'arm', id: 0x07 },
  { name: 'armthumb', id: 0x08 },
  { name: 'sparc', id: 0x09 },
] as const;
const ALL_FILTERS = (1 << XZ_BCJ_FILTERS.length) - 1;
/** liblzma has these, the kernel's xz decoder did not when squashfs-tools 4.5 was written: an image would not mount. */
const KERNEL_LACKS = new Set(['arm64', 'riscv']);

/** mksquashfs's lower bound for -Xdict-size. */
export const XZ_MIN_DICT = 8192;
/** liblzma's own lower bound (LZMA_DICT_SIZE_MIN). */
const LZMA_MIN_DICT = 4096;
/** The kernel's buffer when an image has no options block: max(block size, metadata chunk). */
const METADATA_SIZE = 8192;

/** The dictionary sizes an xz header stores exactly: 2^n or 3 * 2^(n-1) (mksquashfs: "2^n or 2^n+2^(n+1)"). */
export function isXzDictSize(n: number): boolean {
  if (!Number.isSafeInteger(n) || n <= 0) return false;
  let low = 1;
  while (n % (low * 2) === 0) low *= 2;
  return n === low || n === low * 3;
}

/** Valid dictionary sizes from 8 KiB up to the block size, for suggestions. */
function dictSizesUpTo(blockSize: number): number[] {
  const out: number[] = [];
  for (let p = XZ_MIN_DICT / 2; p <= blockSize; p *= 2) out.push(p, p * 1.5);
  return out.filter((s) => s >= XZ_MIN_DICT && s <= blockSize);
}

function describeDict(bytes: number, blockSize: number): string {
  return `${bytes} (${+((bytes / blockSize) * 100).toFixed(2)}%)`;
}

/**
 * -Xdict-size: "N%" of the block size (fractions allowed, truncated to whole bytes as mksquashfs does) or bytes
 * "N", "NK", "NM". Like mksquashfs 4.5 we refuse a size the xz header cannot store instead of rounding it, and
 * name the nearest sizes that work.
 */
function parseDictSize(spec: CompressorSpec, value: string): number {
  const blockSize = spec.blockSize;
  let size: number;
  const pct = /^([0-9]{1,3}(?:\.[0-9]+)?)%$/.exec(value);
  if (pct) {
    const p = Number(pct[1]);
    if (!(p > 0 && p <= 100)) throw invalid(`xz -Xdict-size "${value}" is not a percentage above 0 and at most 100`);
    size = Math.floor((blockSize * p) / 100);
  } else {
    const m = /^([0-9]{1,10})([kKmM]?)$/.exec(value);
    if (!m) {
      throw invalid(
        `xz -Xdict-size "${value}" is not a size (a percentage of the block size like "100%", or bytes like "65536", "512K", "1M")`,
      );
    }
    const unit = m[2].toLowerCase() === 'k' ? 1024 : m[2].toLowerCase() === 'm' ? 1 << 20 : 1;
    size = Number(m[1]) * unit;
    if (size > blockSize) {
      throw invalid(`xz -Xdict-size "${value}" (${size} bytes) is larger than the block size (${blockSize} bytes)`);
    }
  }
  if (size < XZ_MIN_DICT) {
    throw invalid(`xz -Xdict-size "${value}" gives ${size} bytes; the dictionary must be at least ${XZ_MIN_DICT} bytes`);
  }
  if (!isXzDictSize(size)) {
    const sizes = dictSizesUpTo(blockSize);
    const below = sizes.filter((s) => s < size).pop();
    const above = sizes.find((s) => s > size);
    const near = [below, above].filter((s): s is number => s !== undefined).map((s) => describeDict(s, blockSize));
    throw invalid(
      `xz -Xdict-size "${value}" gives ${size} bytes, which an xz header cannot store: it must be 2^n or 3*2^n bytes` +
        (near.length ? `; nearest: ${near.join(' or ')}` : ''),
    );
  }
  return size;
}

export const xzOptionWords: Record<string, OptionWord> = {
  '-Xbcj': {
    takesValue: true,
    apply(spec, value) {
      for (const item of commaList('-Xbcj', value)) {
        if (KERNEL_LACKS.has(item)) {
          throw invalid(
            `xz -Xbcj filter "${item}" is refused: the kernel's squashfs xz decoder has no ${item} filter, so the image would not mount`,
          );
        }
        const bit = XZ_BCJ_FILTERS.findIndex((f) => f.name === item);
        if (bit < 0) throw invalid(`unknown xz -Xbcj filter "${item}" (expected x86, powerpc, ia64, arm, armthumb or sparc)`);
        spec.filters = (spec.filters ?? 0) | (1 << bit);
      }
    },
  },
  '-Xdict-size': {
    takesValue: true,
    apply(spec, value) {
      spec.dictSize = parseDictSize(spec, value);
    },
  },
};

/** Every field filled in and checked: what a writer may compress with. */
export function normalizeXz(spec: CompressorSpec): CompressorSpec {
  const dictSize = spec.dictSize ?? spec.blockSize;
  const filters = spec.filters ?? 0;
  // The default (the block size) is fine even below 8 KiB; a chosen size must be one mksquashfs accepts.
  if (dictSize !== spec.blockSize && (!isXzDictSize(dictSize) || dictSize < XZ_MIN_DICT || dictSize > spec.blockSize)) {
    throw invalid(`xz dictionary size ${dictSize} must be 2^n or 3*2^n bytes, at least 8192 and at most the block size`);
  }
  if (!Number.isInteger(filters) || filters < 0 || filters > ALL_FILTERS) {
    throw invalid(`xz filter mask ${filters} has bits other than the six BCJ filters`);
  }
  return { name: 'xz', blockSize: spec.blockSize, dictSize, filters };
}

/** The spec an image's options block stands for, checked as unsquashfs checks it; plus the kernel's dictionary limit. */
export function xzSpecFromImage(options: Uint8Array | null, blockSize: number): { spec: CompressorSpec; kernelDict: number } {
  if (!options) {
    return { spec: { name: 'xz', blockSize, dictSize: blockSize, filters: 0 }, kernelDict: Math.max(blockSize, METADATA_SIZE) };
  }
  const v = needOptions('xz', options, 8, true);
  const dictSize = v.getUint32(0, true); // dictionary_size
  const filters = v.getUint32(4, true) & ALL_FILTERS; // flags: BCJ filter bits; unknown bits are ignored
  if (!isXzDictSize(dictSize)) throw corrupt(`xz compressor options: dictionary size ${dictSize} is not 2^n or 3*2^n bytes`);
  return { spec: { name: 'xz', blockSize, dictSize, filters }, kernelDict: dictSize };
}

/**
 * The dictionary for one input: the spec's, or less when the input is smaller (a dictionary larger than the data
 * only costs time to set up, and the kernel accepts any size up to its buffer). Always a power of two or the spec's.
 */
function dictFor(length: number, max: number): number {
  let d = LZMA_MIN_DICT;
  while (d < length && d < max) d *= 2;
  return Math.min(d, max);
}

/** What the kernel checks before decoding: the check type and the LZMA2 dictionary, from the first block header. */
interface XzHeader {
  check: number;
  dictSize: number | null;
}

const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const CHECK_NAMES: Record<number, string> = { 0: 'none', 1: 'CRC32', 4: 'CRC64', 10: 'SHA-256' };

/** Reads the stream and first block headers far enough; null when they don't parse (liblzma then reports why). */
function xzHeader(b: Uint8Array): XzHeader | null {
  if (b.length < 13 || XZ_MAGIC.some((x, i) => b[i] !== x)) return null;
  const check = b[7] & 0x0f; // stream flags, second byte
  const headerSize = b[12]; // block header size / 4 - 1; 0 = the index: a stream with no blocks
  if (headerSize === 0) return { check, dictSize: null };
  const end = 12 + (headerSize + 1) * 4;
  if (end > b.length) return null;
  let p = 14;
  const vli = (): number | null => {
    let value = 0;
    for (let i = 0; i < 9 && p < end; i++) {
      const byte = b[p++];
      value += (byte & 0x7f) * 2 ** (7 * i);
      if ((byte & 0x80) === 0) return value;
    }
    return null;
  };
  const flags = b[13];
  if (flags & 0x40 && vli() === null) return null; // compressed size
  if (flags & 0x80 && vli() === null) return null; // uncompressed size
  let dictSize: number | null = null;
  for (let i = 0; i <= (flags & 3); i++) {
    const id = vli();
    const propsSize = vli();
    if (id === null || propsSize === null || p + propsSize > end) return null;
    if (id === 0x21 && propsSize === 1 && b[p] <= 40) {
      const bits = b[p];
      dictSize = bits === 40 ? 0xffffffff : (2 | (bits & 1)) * 2 ** ((bits >> 1) + 11);
    }
    p += propsSize;
  }
  return { check, dictSize };
}

export class XzCompressor extends BaseCompressor {
  readonly id = Compression.XZ;
  readonly spec: CompressorSpec;
  /** The largest dictionary the kernel decodes for this image: its options' size, or max(block size, 8192). */
  readonly #kernelDict: number;
  readonly #bcjIds: number[];
  /** Two output buffers, reused: the best result so far lives in one while the next filter tries the other. */
  #scratch: [Uint8Array, Uint8Array] | null = null;

  /** `kernelDict` given: a reader's compressor, whose spec comes from an image and is taken as the image has it. */
  constructor(spec: CompressorSpec, kernelDict?: number) {
    super();
    this.spec = kernelDict === undefined ? normalizeXz(spec) : spec;
    const { dictSize, filters, blockSize } = this.spec;
    this.#kernelDict = kernelDict ?? (dictSize === blockSize && filters === 0 ? Math.max(blockSize, METADATA_SIZE) : dictSize!);
    this.#bcjIds = XZ_BCJ_FILTERS.filter((_, bit) => filters! & (1 << bit)).map((f) => f.id);
  }

  options(): Uint8Array | null {
    const { dictSize, filters, blockSize } = this.spec;
    if (dictSize === blockSize && filters === 0) return null;
    return optionsBlock([
      [4, dictSize!], // dictionary_size
      [4, filters!], // flags
    ]);
  }

  #buffers(size: number): [Uint8Array, Uint8Array] {
    if (!this.#scratch || this.#scratch[0].length < size) {
      const n = Math.max(size, this.spec.blockSize, METADATA_SIZE);
      this.#scratch = [new Uint8Array(n), new Uint8Array(this.#bcjIds.length ? n : 0)];
    }
    return this.#scratch;
  }

  /** Plain LZMA2 first, then each BCJ filter, keeping the smallest (smallestEncoding), as mksquashfs does. */
  compressSync(data: Uint8Array): Uint8Array | null {
    if (data.length < 2) return null;
    const dict = dictFor(data.length, this.spec.dictSize!);
    return smallestEncoding(data, [0, ...this.#bcjIds], this.#buffers(data.length), (bcj, out) => xzBinding().encode(data, bcj, dict, out));
  }

  /** One filter chain (no BCJ): liblzma writes straight into `out`. */
  compressInto(data: Uint8Array, out: Uint8Array): number {
    if (this.#bcjIds.length > 0 || data.length < 2 || out.length < data.length - 1) return super.compressInto(data, out);
    const n = xzBinding().encode(data, 0, dictFor(data.length, this.spec.dictSize!), out.subarray(0, data.length - 1));
    return n >= 0 ? n : -1;
  }

  decompressSync(data: Uint8Array, maxSize: number): Uint8Array {
    checkMaxSize(maxSize);
    if (data.length === 0) throw corrupt('xz block is empty');
    const header = xzHeader(data);
    if (header && header.check !== 0 && header.check !== 1) {
      throw corrupt(`xz block uses check type ${CHECK_NAMES[header.check] ?? header.check}; the kernel reads only CRC32 or none`);
    }
    if (header?.dictSize != null && header.dictSize > this.#kernelDict) {
      throw corrupt(
        `xz block uses a ${header.dictSize}-byte dictionary, more than the ${this.#kernelDict} bytes the kernel allows for this image`,
      );
    }
    // liblzma writes no further than the buffer: a stream that would produce more fails with LZMA_BUF_ERROR.
    const out = new Uint8Array(Math.max(1, maxSize));
    let n: number;
    try {
      n = xzBinding().decode(data, out);
    } catch (e) {
      if ((e as { code?: string }).code === 'LZMA_BUF_ERROR') throw corrupt(`xz block decompresses to more than ${maxSize} bytes`);
      throw corrupt(`xz block does not decompress (${(e as Error).message})`);
    }
    if (n > maxSize) throw corrupt(`xz block decompresses to more than ${maxSize} bytes`);
    return trimOutput(out, n);
  }
}

/** A whole file as one .xz stream (preset 6, 8 MiB dictionary, CRC32): what `xz -6` makes, for release folders. */
/**
 * A whole file as one .xz stream (preset 6, 8 MiB dictionary, CRC32), read and written a piece at a time: memory
 * is liblzma's encoder and a 1 MiB buffer, whatever the file's size. Each piece goes to `write` as it is made (and
 * must be written before `write` resolves: the buffer is reused).
 */
export async function xzStreamFile(chunks: AsyncIterable<Uint8Array>, write: (bytes: Uint8Array) => Promise<void>): Promise<void> {
  const xz = xzBinding();
  const encoder = xz.xzStreamEncoder(8 << 20);
  const out = new Uint8Array(1 << 20);
  const drain = async (input: Uint8Array | null): Promise<void> => {
    let rest = input;
    for (;;) {
      const [taken, written, ended] = xz.xzStreamCode(encoder, rest, out);
      if (written > 0) await write(out.subarray(0, written)); // written before the next call reuses `out`
      if (ended) return;
      if (rest) {
        rest = rest.subarray(taken);
        if (rest.length === 0 && written < out.length) return;
      } else if (written === 0) {
        throw new Error('xz: the encoder stopped before the end of the stream');
      }
    }
  };
  for await (const chunk of chunks) await drain(chunk);
  await drain(null);
}
