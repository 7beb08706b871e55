/**
 * Copying bytes out of and into the writer's shared arena. V8 moves bytes between typed arrays over a
 * SharedArrayBuffer a word at a time with relaxed atomics, several times slower than memmove; for the tails packed
 * into fragment blocks and the blocks appended to the image that is most of the main thread's time on a tree of
 * small files. The native addon's memmove (native/copy.c) does it instead; without the addon, set() still works.
 */
import { optionalNative } from './optional.js';

type Copy = (dst: Uint8Array, at: number, src: Uint8Array, start: number, end: number) => void;

const slowCopy: Copy = (dst, at, src, start, end) => dst.set(src.subarray(start, end), at);
let copy: Copy | null = null;

/** dst[at..] = src[start, end). */
export function copyBytes(dst: Uint8Array, at: number, src: Uint8Array, start: number, end: number): void {
  copy ??= optionalNative<Copy>('copy') ?? slowCopy;
  copy(dst, at, src, start, end);
}
