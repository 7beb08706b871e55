/**
 * Deterministic test inputs for the compressor tests (not part of the library: only *.test.ts import it).
 */
import fs from 'node:fs';

/** xorshift32 bytes: incompressible, but the same on every run. */
export function randomBytes(n: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const WORDS = ['squashfs', 'portable', 'service', 'block', 'inode', 'fragment', 'kernel', 'mount', '\n', ' ', '/usr/lib/'];

/** Text-like data from a small vocabulary: compresses well with every compressor. */
export function textBytes(n: number, seed = 7): Uint8Array {
  const rnd = randomBytes(n, seed);
  const out = new Uint8Array(n);
  let at = 0;
  for (let i = 0; at < n; i++) {
    const w = WORDS[rnd[i % n] % WORDS.length] + (rnd[(i * 7) % n] & 1 ? String(rnd[(i * 13) % n]) : '');
    for (let j = 0; j < w.length && at < n; j++) out[at++] = w.charCodeAt(j);
  }
  return out;
}

/** Mostly zeros with a few random bytes: the "empty-ish" blocks of sparse or padded files. */
export function sparseBytes(n: number, seed = 3): Uint8Array {
  const out = new Uint8Array(n);
  const rnd = randomBytes(Math.ceil(n / 512) + 1, seed);
  for (let i = 0; i * 512 < n; i++) out[i * 512] = rnd[i];
  return out;
}

/** Machine code and data: a slice of the running node binary. */
export function binaryBytes(n: number, offset = 1 << 20): Uint8Array {
  const fd = fs.openSync(process.execPath, 'r');
  try {
    const out = new Uint8Array(n);
    const got = fs.readSync(fd, out, 0, n, offset);
    return got === n ? out : out.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

export const KINDS = { random: randomBytes, text: textBytes, sparse: sparseBytes, binary: binaryBytes } as const;
