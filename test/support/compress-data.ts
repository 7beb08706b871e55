/**
 * Deterministic test inputs for the compressor tests (not part of the library: only *.test.ts import it).
 */
import fs from 'node:fs';
import { requireNative } from '../../src/compress/common.js';

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

/**
 * Raw LZ4 blocks (squashfs stores them without a frame) wrapped so the lz4 tool can decode them: magic, FLG
 * (version 1, independent blocks, no checksums), BD (4 MiB maximum block size), header checksum, each block as
 * u32 size (high bit clear: compressed) plus its bytes unchanged, then the end mark.
 */
export function lz4Frame(blocks: Uint8Array[]): Uint8Array {
  const xxh = requireNative('lz4/build/Release/xxhash.node') as { xxHash(b: Uint8Array, seed: number): number };
  const descriptor = Uint8Array.of(0x60, 0x70);
  const out = new Uint8Array(7 + blocks.reduce((n, b) => n + 4 + b.length, 0) + 4);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x184d2204, true);
  out.set(descriptor, 4);
  out[6] = (xxh.xxHash(descriptor, 0) >>> 8) & 0xff;
  let at = 7;
  for (const b of blocks) {
    v.setUint32(at, b.length, true);
    out.set(b, at + 4);
    at += 4 + b.length;
  }
  v.setUint32(at, 0, true);
  return out;
}
