/**
 * What Node's fs cannot do, from mkportable's native addon (src/native/fs.c): extended attributes and the holes
 * of sparse files, on byte-exact paths. Loaded on first use.
 */
import { nativeAddon } from '../compress/common.js';
import { fromBytes, toBytes } from '../formats/bytenames.js';
import { nativeAddonPath } from '../package-root.js';
import { optionalNative } from './optional.js';

interface NativeFs {
  listXattrs(path: Uint8Array): [Buffer, Buffer][];
  setXattr(path: Uint8Array, name: Uint8Array, value: Uint8Array): void;
  nextData(fd: number, offset: number): number;
  nextHole(fd: number, offset: number): number;
}

/**
 * Reads the file named paths[start, end) from its start into dst[at..], up to length + 1 bytes; returns the bytes
 * read, or -errno (fs.c).
 */
export type ReadFile = (paths: Uint8Array, start: number, end: number, dst: Uint8Array, at: number, length: number) => number;

const native = nativeAddon<NativeFs>(nativeAddonPath(), "reading extended attributes needs mkportable's native addon, which",
  'install liblzma-dev (apt-get install liblzma-dev) and run `npm rebuild mkportable` where mkportable is installed');

/** Every extended attribute of `path` (a final symlink not followed) that this process may read; undefined when none. */
export function readXattrs(path: Uint8Array): Record<string, Uint8Array> | undefined {
  const pairs = native().listXattrs(path);
  if (pairs.length === 0) return undefined;
  const out: Record<string, Uint8Array> = {};
  for (const [name, value] of pairs) out[fromBytes(name)] = new Uint8Array(value);
  return out;
}

/** lsetxattr(2): `name` in mkportable's string form of bytes (see formats/bytenames.ts). */
export function writeXattr(path: Uint8Array, name: string, value: Uint8Array): void {
  native().setXattr(path, toBytes(name), value);
}

/** Below this size a file is read whole: looking for holes would cost more than it saves. */
export const SPARSE_MIN = 1 << 20;

/**
 * The stretches [start, end) of an open file of `size` bytes that hold data, in order; the rest are holes
 * (zeros). A file system that cannot tell reports the whole file as data.
 */
export function dataRanges(fd: number, size: number): [number, number][] {
  const ranges: [number, number][] = [];
  try {
    for (let at = 0; at < size; ) {
      const start = native().nextData(fd, at);
      if (start < 0 || start >= size) break;
      const hole = native().nextHole(fd, start);
      const end = hole < 0 ? size : Math.min(hole, size);
      ranges.push([start, end]);
      at = end;
    }
  } catch {
    return [[0, size]];
  }
  return ranges;
}

/** The addon's one-call read of a small file, or null when the addon does not load (callers use Node's fs then). */
export const nativeReadFile = (): ReadFile | null => optionalNative<ReadFile>('readFile');
