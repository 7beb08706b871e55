/**
 * From the user's words to a compressor, and from an image's superblock to one.
 *
 *   parseCompression(["xz", "-Xbcj", "x86"], 1 << 20)  -> CompressorSpec (plain data, safe to send to workers)
 *   createCompressor(spec)                               -> SyncCompressor (each worker makes its own)
 *   compressorFromImage(id, optionsBlock, blockSize)    -> SyncCompressor (for the reader)
 *
 * The words are mksquashfs's: a compressor name, then its -X options. Whatever mksquashfs would refuse is refused
 * here, and a few things it accepts but the kernel cannot read are refused too (xz -Xbcj arm64).
 */
import { Compression, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE } from '../squashfs/format.js';
import { corrupt, invalid, unsupported, type OptionWord } from './common.js';
import { GzipCompressor, gzipLibraryVersion, gzipOptionWords, gzipSpecFromImage, normalizeGzip, requireGzipEngine, GZIP_STRATEGIES } from './gzip.js';
import { Lz4Compressor, requireLz4, lz4LibraryVersion, lz4OptionWords, lz4SpecFromImage, normalizeLz4 } from './lz4.js';
import type { CompressorName, CompressorSpec, SyncCompressor } from './types.js';
import { XzCompressor, xzBinding, xzLibraryVersion, xzOptionWords, xzSpecFromImage, normalizeXz, XZ_BCJ_FILTERS } from './xz.js';
import { ZstdCompressor, zstdBinding, zstdLibraryVersion, zstdOptionWords, zstdSpecFromImage, normalizeZstd } from './zstd.js';

const OPTION_WORDS: Record<CompressorName, Record<string, OptionWord>> = {
  gzip: gzipOptionWords,
  xz: xzOptionWords,
  zstd: zstdOptionWords,
  lz4: lz4OptionWords,
};

const NORMALIZE: Record<CompressorName, (spec: CompressorSpec) => CompressorSpec> = {
  gzip: normalizeGzip,
  xz: normalizeXz,
  zstd: normalizeZstd,
  lz4: normalizeLz4,
};

/** Compressors mksquashfs knows that this writer does not, and why. */
const REFUSED: Record<string, string> = {
  lzo: 'lzo is not supported by the native writer; to build an lzo image, use mksquashfs (the squashfsTools backend)',
  lzma: 'lzma is not supported: the Linux kernel cannot mount lzma squashfs images (use xz)',
};

const KNOWN = 'gzip, xz, zstd or lz4';

function isName(word: string): word is CompressorName {
  return Object.hasOwn(OPTION_WORDS, word);
}

function checkBlockSize(blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw invalid(`block size ${blockSize} is not a power of two from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE}`);
  }
}

/**
 * mksquashfs compression words to a spec with every field of that compressor filled in. Options may repeat: a
 * later value wins, lists (-Xbcj, -Xstrategy) add up, as in mksquashfs.
 */
export function parseCompression(words: readonly string[], blockSize: number): CompressorSpec {
  checkBlockSize(blockSize);
  const [name, ...rest] = words;
  if (name === undefined || name === '') throw invalid(`no compressor named (expected ${KNOWN})`);
  if (Object.hasOwn(REFUSED, name)) throw invalid(REFUSED[name]);
  if (!isName(name)) throw invalid(`unknown compressor "${name}" (expected ${KNOWN})`);
  const table = OPTION_WORDS[name];
  const spec: CompressorSpec = { name, blockSize };
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i];
    if (!Object.hasOwn(table, word)) {
      const known = Object.keys(table);
      throw invalid(`unknown option "${word}" for ${name} (${name} takes ${known.join(', ')})`);
    }
    const option = table[word];
    if (option.takesValue) {
      const value = rest[i + 1];
      if (value === undefined || value === '') throw invalid(`${name} option "${word}" needs a value`);
      option.apply(spec, value);
      i++;
    } else {
      option.apply(spec, '');
    }
  }
  return NORMALIZE[name](spec);
}

/** The mksquashfs words for a spec (only non-default options); parseCompression(specWords(s)) gives s back. */
export function specWords(spec: CompressorSpec): string[] {
  const s = createCompressor(spec).spec;
  const words: string[] = [s.name];
  const bits = <T extends { toString(): string }>(mask: number, names: readonly T[]) =>
    names.filter((_, bit) => mask & (1 << bit)).join(',');
  switch (s.name) {
    case 'gzip':
      if (s.level !== 9) words.push('-Xcompression-level', String(s.level));
      if (s.windowBits !== 15) words.push('-Xwindow-size', String(s.windowBits));
      if (s.strategies) words.push('-Xstrategy', bits(s.strategies, GZIP_STRATEGIES));
      break;
    case 'xz':
      if (s.filters) words.push('-Xbcj', bits(s.filters, XZ_BCJ_FILTERS.map((f) => f.name)));
      if (s.dictSize !== s.blockSize) words.push('-Xdict-size', String(s.dictSize));
      break;
    case 'zstd':
      if (s.level !== 15) words.push('-Xcompression-level', String(s.level));
      break;
    case 'lz4':
      if (s.hc) words.push('-Xhc');
      break;
  }
  return words;
}

const LIBRARY_VERSION: Record<CompressorName, (spec: CompressorSpec) => string> = {
  gzip: gzipLibraryVersion,
  xz: xzLibraryVersion,
  zstd: zstdLibraryVersion,
  lz4: lz4LibraryVersion,
};

/**
 * Everything that decides the bytes a spec compresses to: the spec with every field filled in (block size
 * included) and the library doing the work, with its version. Equal identities give equal compressed blocks.
 */
export function compressorIdentity(spec: CompressorSpec): { spec: CompressorSpec; library: string } {
  const s = NORMALIZE[spec.name](spec);
  return { spec: s, library: `${s.name} ${LIBRARY_VERSION[s.name](s)}` };
}

/**
 * Plain lz4: it compresses a block in less time than it takes to hash, store and later check it, or to judge whether
 * the block is worth compressing, so neither the block cache nor that check is used for it.
 */
export const fastCompressor = (spec: CompressorSpec): boolean => spec.name === 'lz4' && !spec.hc;

/**
 * Load the native library a compressor needs now, so a missing addon stops a build before any work (ADDON_MISSING).
 * Given the spec to write (not just a name to read), gzip's deflate engine too: reading gzip needs only Node's zlib.
 */
export function requireCompressorLibrary(what: CompressorName | CompressorSpec): void {
  const name = typeof what === 'string' ? what : what.name;
  if (name === 'xz') xzBinding();
  else if (name === 'zstd') zstdBinding();
  else if (name === 'lz4') requireLz4();
  else if (name === 'gzip' && typeof what !== 'string') requireGzipEngine(what);
}

/** A compressor for a spec (from parseCompression, or hand-made: it is checked the same way). */
export function createCompressor(spec: CompressorSpec): SyncCompressor {
  checkBlockSize(spec.blockSize);
  switch (spec.name) {
    case 'gzip':
      return new GzipCompressor(spec);
    case 'xz':
      return new XzCompressor(spec);
    case 'zstd':
      return new ZstdCompressor(spec);
    case 'lz4':
      return new Lz4Compressor(spec);
    default:
      throw invalid(`unknown compressor "${String((spec as { name: unknown }).name)}" (expected ${KNOWN})`);
  }
}

/**
 * The compressor an image was written with, from its superblock's compression id and its options block payload
 * (null when the superblock has no COMP_OPT flag). Bad options: IMAGE_CORRUPT; lzo, lzma: IMAGE_UNSUPPORTED.
 */
export function compressorFromImage(id: number, options: Uint8Array | null, blockSize: number): SyncCompressor {
  switch (id) {
    case Compression.GZIP:
      return new GzipCompressor(gzipSpecFromImage(options, blockSize));
    case Compression.XZ: {
      const { spec, kernelDict } = xzSpecFromImage(options, blockSize);
      return new XzCompressor(spec, kernelDict);
    }
    case Compression.ZSTD:
      return new ZstdCompressor(zstdSpecFromImage(options, blockSize));
    case Compression.LZ4:
      return new Lz4Compressor(lz4SpecFromImage(options, blockSize));
    case Compression.LZO:
      throw unsupported('the image is lzo-compressed, which mkportable cannot read (unsquashfs can)');
    case Compression.LZMA:
      throw unsupported('the image is lzma-compressed, which mkportable cannot read and the kernel cannot mount');
    default:
      throw corrupt(`unknown compression id ${id} in the superblock`);
  }
}
