/**
 * Which decompressor an image needs, and the one checked way to run it: every failure (a corrupt stream, output
 * larger than the caller's cap) becomes IMAGE_CORRUPT naming the block's offset.
 */
import type { Compressor, CompressorName } from '../../compress/types.js';
import { Compression } from '../format.js';
import { MkportableError } from '../../errors.js';
import { plain } from './bytes.js';
import { corrupt, messageOf, unsupported } from './errors.js';
// The compressor factory (one line to swap for a stand-in while testing without the registry).
import { compressorFromImage, requireCompressorLibrary } from '../../compress/registry.js';

export const COMPRESSION_NAMES: Record<number, string> = {
  [Compression.GZIP]: 'gzip',
  [Compression.LZMA]: 'lzma',
  [Compression.LZO]: 'lzo',
  [Compression.XZ]: 'xz',
  [Compression.LZ4]: 'lz4',
  [Compression.ZSTD]: 'zstd',
};

/** Legacy compressors that squashfs-tools can still read but this project does not implement. */
const NOT_IMPLEMENTED = new Set<number>([Compression.LZMA, Compression.LZO]);

export async function imageCompressor(
  file: string,
  id: number,
  optionsBlock: Uint8Array | null,
  blockSize: number,
): Promise<Compressor> {
  const name = COMPRESSION_NAMES[id];
  if (name === undefined) throw corrupt(file, `unknown compression id ${id} in the superblock`, 20);
  if (NOT_IMPLEMENTED.has(id)) throw unsupported(file, `${name} compression is not supported (use gzip, xz, lz4 or zstd)`);
  try {
    requireCompressorLibrary(name as CompressorName);
    return await compressorFromImage(id, optionsBlock, blockSize);
  } catch (e) {
    // A missing addon says which and how to get it, whatever the image.
    if (e instanceof MkportableError && e.code === 'ADDON_MISSING') throw e;
    // The registry classifies what it refuses; name the image file around its message.
    if (e instanceof MkportableError && e.code === 'IMAGE_CORRUPT') throw corrupt(file, e.message, optionsBlock ? 96 : 20);
    if (e instanceof MkportableError && e.code === 'IMAGE_UNSUPPORTED') throw unsupported(file, e.message);
    // Anything else: tell a bad options block from a compressor that is not available.
    if (optionsBlock && (await buildsWithoutOptions(id, blockSize))) {
      throw corrupt(file, `invalid ${name} compressor options (${messageOf(e)})`, 96);
    }
    throw unsupported(file, `${name} compression is not available (${messageOf(e)})`);
  }
}

async function buildsWithoutOptions(id: number, blockSize: number): Promise<boolean> {
  try {
    await compressorFromImage(id, null, blockSize);
    return true;
  } catch {
    return false;
  }
}

/**
 * Decompress one stored block. `exact` demands the output be exactly `maxSize` bytes (data blocks); otherwise it
 * must be 1..maxSize bytes.
 */
export async function decompressBlock(
  compressor: Compressor,
  file: string,
  data: Uint8Array,
  maxSize: number,
  what: string,
  offset: number,
  exact = false,
): Promise<Uint8Array> {
  let out: Uint8Array;
  try {
    out = await compressor.decompress(data, maxSize);
  } catch (e) {
    throw corrupt(file, `${what} does not decompress (${messageOf(e)})`, offset);
  }
  if (!(out instanceof Uint8Array)) throw corrupt(file, `${what} does not decompress`, offset);
  out = plain(out);
  if (out.length > maxSize) throw corrupt(file, `${what} decompresses to more than ${maxSize} bytes`, offset);
  if (exact ? out.length !== maxSize : out.length === 0) {
    throw corrupt(file, `${what} decompresses to ${out.length} bytes, expected ${exact ? maxSize : 'at least 1'}`, offset);
  }
  return out;
}
