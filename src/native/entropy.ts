/**
 * Whether a block is worth compressing (native/entropy.c): a block whose bytes are spread evenly over all 256
 * values and that repeats nothing is stored as it is, without running the compressor. Only for the compressors
 * that spend long failing (gzip, xz, zstd, lz4 -Xhc): plain lz4 gives up on such a block faster than the check.
 */
import { fastCompressor } from '../compress/registry.js';
import type { CompressorSpec } from '../compress/types.js';
import { optionalNative } from './optional.js';

type Judge = (block: Uint8Array) => boolean;

/** The check for blocks of this compressor, or null when it does not pay (plain lz4) or the addon is missing. */
export function incompressibleCheck(spec: CompressorSpec): Judge | null {
  return fastCompressor(spec) ? null : optionalNative<Judge>('incompressible');
}
