/**
 * The addon's functions that only make things faster (a memmove, a one-call read, a check that skips work): each
 * caller falls back to plain Node when the addon does not load or predates the function, so looking one up never
 * throws.
 */
import { nativeAddon } from '../compress/common.js';
import { nativeAddonPath } from '../package-root.js';

const addon = nativeAddon<Record<string, unknown>>(nativeAddonPath(), "mkportable's native addon", 'run `npm rebuild mkportable`');

/** The addon's function `name`, or null. */
export function optionalNative<F>(name: string): F | null {
  try {
    const f = addon()[name];
    return typeof f === 'function' ? (f as F) : null;
  } catch {
    return null;
  }
}
