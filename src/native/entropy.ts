/**
 * Whether a block is worth compressing (native/entropy.c): a block whose bytes are spread evenly over all 256
 * values and that repeats nothing is stored as it is, without running the compressor. Only for the compressors
 * that spend long failing (gzip, xz, zstd, lz4 -Xhc): plain lz4 gives up on such a block faster than the check.
 */
import type { CompressorSpec } from '../compress/types.js';
import { nativeAddon } from '../compress/common.js';
import { nativeAddonPath } from '../package-root.js';

type Judge = (block: Uint8Array) => boolean;

const native = nativeAddon<{ incompressible?: Judge }>(nativeAddonPath(), "mkportable's native addon", 'run `npm rebuild mkportable`');

/** The check for blocks of this compressor, or null when it does not pay (plain lz4) or the addon is missing. */
export function incompressibleCheck(spec: CompressorSpec): Judge | null {
  if (spec.name === 'lz4' && !spec.hc) return null;
  try {
    return native().incompressible ?? null;
  } catch {
    return null;
  }
}
