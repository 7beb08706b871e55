import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMkportableError } from '../errors.js';
import { compressorFromImage, createCompressor, parseCompression } from './registry.js';
import { KINDS, randomBytes, sparseBytes, textBytes } from '../../test/support/compress-data.js';
import type { SyncCompressor } from './types.js';

const M = 1 << 20;

/** Every compressor and option combination, with the block size it is tried at. */
const CONFIGS: Array<[string[], number]> = [
  [['gzip'], M],
  [['gzip', '-Xcompression-level', '1', '-Xwindow-size', '8'], 128 * 1024],
  [['gzip', '-Xstrategy', 'default,filtered,huffman_only,run_length_encoded,fixed'], 128 * 1024],
  [['gzip', '-Xstrategy', 'huffman_only'], 4096],
  [['xz'], M],
  [['xz', '-Xbcj', 'x86,arm,armthumb,powerpc,sparc,ia64'], 128 * 1024],
  [['xz', '-Xdict-size', '50%', '-Xbcj', 'x86'], 64 * 1024],
  [['xz'], 4096],
  [['zstd'], M],
  [['zstd', '-Xcompression-level', '1'], 4096],
  [['zstd', '-Xcompression-level', '22'], 128 * 1024],
  [['lz4'], M],
  [['lz4', '-Xhc'], M],
  [['lz4'], 4096],
];

/** Sizes up to the block size, plus a full metadata chunk (8192, larger than a 4 KiB block). */
function sizesFor(blockSize: number): number[] {
  const sizes = [0, 1, 2, 3, 100, 4095, 4096, 8192, 65537, blockSize - 1, blockSize];
  return [...new Set(sizes.filter((n) => n <= Math.max(blockSize, 8192)))].sort((a, b) => a - b);
}

function isCorrupt(e: unknown): boolean {
  return isMkportableError(e) && e.code === 'IMAGE_CORRUPT';
}

/** Compress, check the result is smaller and stable, decompress it exactly; returns the compressed bytes. */
function roundTrip(c: SyncCompressor, data: Uint8Array, label: string): Uint8Array | null {
  const packed = c.compressSync(data);
  if (packed === null) return null;
  assert.ok(packed.length < data.length, `${label}: ${packed.length} >= ${data.length}`);
  assert.ok(packed instanceof Uint8Array);
  // Reproducible images need reproducible blocks.
  assert.deepEqual(c.compressSync(data), packed, `${label}: not deterministic`);
  assert.deepEqual(c.decompressSync(packed, data.length), data, `${label}: round trip`);
  assert.deepEqual(c.decompressSync(packed, data.length + 4096), data, `${label}: with room to spare`);
  assert.throws(() => c.decompressSync(packed, data.length - 1), isCorrupt, `${label}: maxSize one short`);
  return packed;
}

describe('round trips', () => {
  for (const [words, blockSize] of CONFIGS) {
    it(`${words.join(' ')} (block ${blockSize})`, () => {
      const c = createCompressor(parseCompression(words, blockSize));
      // The reader's compressor (built from the options block) decodes what the writer's encodes.
      const reader = compressorFromImage(c.id, c.options(), blockSize);
      for (const [kind, make] of Object.entries(KINDS)) {
        for (const size of sizesFor(blockSize)) {
          // Strong settings on big incompressible inputs only cost time; one random 64 KiB case covers them.
          if (kind === 'random' && size > 65537) continue;
          const data = make(size);
          const label = `${kind} ${size}`;
          const packed = roundTrip(c, data, label);
          if (size <= 3 || kind === 'random') assert.equal(packed, null, `${label}: should not shrink`);
          if ((kind === 'text' || kind === 'sparse') && size >= 4095) assert.notEqual(packed, null, `${label}: should shrink`);
          if (packed) assert.deepEqual(reader.decompressSync(packed, data.length), data, `${label}: reader`);
        }
      }
    });
  }
});

describe('async API', () => {
  it('resolves to what the sync calls return, and rejects instead of throwing', async () => {
    for (const words of [['gzip'], ['xz'], ['zstd'], ['lz4']]) {
      const c = createCompressor(parseCompression(words, 65536));
      const data = textBytes(50000);
      const packed = await c.compress(data);
      assert.deepEqual(packed, c.compressSync(data));
      assert.deepEqual(await c.decompress(packed!, data.length), data);
      assert.equal(await c.compress(randomBytes(1000)), null);
      const p = c.decompress(packed!, 10); // must not throw synchronously
      await assert.rejects(p, isCorrupt);
    }
  });
});

describe('decompression is bounded and checked', () => {
  const all = ['gzip', 'xz', 'zstd', 'lz4'].map((n) => createCompressor(parseCompression([n], M)));

  it('refuses a 1 MiB block when the caller allows 4 KiB', () => {
    const zeros = new Uint8Array(M);
    for (const c of all) {
      const packed = c.compressSync(zeros)!;
      assert.ok(packed.length < 10000, `${c.spec.name}: ${packed.length}`);
      assert.throws(() => c.decompressSync(packed, 4096), /more than 4096 bytes/, c.spec.name);
      assert.equal(c.decompressSync(packed, M).length, M);
    }
  });

  it('refuses an empty block', () => {
    for (const c of all) assert.throws(() => c.decompressSync(new Uint8Array(0), 100), isCorrupt, c.spec.name);
  });

  it('rejects corrupt input', () => {
    const data = textBytes(100000);
    for (const c of all) {
      const packed = c.compressSync(data)!;
      // Truncated: never the original data.
      for (const cut of [1, 8, packed.length >> 1]) {
        const short = packed.subarray(0, packed.length - cut);
        let out: Uint8Array | null = null;
        try {
          out = c.decompressSync(short, data.length);
        } catch (e) {
          assert.ok(isCorrupt(e), `${c.spec.name}: ${String(e)}`);
        }
        if (out) assert.notDeepEqual(out, data, `${c.spec.name} truncated by ${cut}`);
      }
      // Garbage: an error or, for formats without a checksum, some other output; never a crash.
      for (let seed = 1; seed < 20; seed++) {
        try {
          c.decompressSync(randomBytes(200, seed), data.length);
        } catch (e) {
          assert.ok(isCorrupt(e), `${c.spec.name}: ${String(e)}`);
        }
      }
    }
  });

  it('xz and gzip never return wrong data for a flipped byte (CRC32 / Adler-32)', () => {
    const data = textBytes(20000);
    for (const c of all.slice(0, 2)) {
      const packed = c.compressSync(data)!;
      let caught = 0;
      for (let i = 0; i < packed.length; i += 7) {
        const bad = packed.slice();
        bad[i] ^= 0x40;
        try {
          // A flip in the deflate stream's final padding bits changes nothing: the data must then be intact.
          assert.deepEqual(c.decompressSync(bad, data.length), data, `${c.spec.name} byte ${i}`);
        } catch (e) {
          if (!isCorrupt(e)) throw e;
          caught++;
        }
      }
      assert.ok(caught > packed.length / 7 - 2, `${c.spec.name}: only ${caught} flips noticed`);
    }
  });

  it('xz: refuses a dictionary larger than the kernel allows for the image', () => {
    const big = createCompressor(parseCompression(['xz'], M));
    const packed = big.compressSync(sparseBytes(300000))!; // 512 KiB dictionary: the input's size rounded up
    const image64k = compressorFromImage(4, null, 65536);
    assert.throws(() => image64k.decompressSync(packed, 300000), /524288-byte dictionary, more than the 65536 bytes/);
    // With an options block the kernel uses its dictionary size instead.
    const opts = new Uint8Array([0, 0, 8, 0, 0, 0, 0, 0]); // 512 KiB, no filters
    assert.equal(compressorFromImage(4, opts, 65536).decompressSync(packed, 300000).length, 300000);
  });

  it('xz: a smaller input gets a smaller dictionary, never more than the spec', () => {
    const c = createCompressor(parseCompression(['xz', '-Xdict-size', '25%'], M));
    const reader = compressorFromImage(4, c.options(), M);
    for (const size of [1000, 8192, 100000, M]) {
      const data = textBytes(size);
      const packed = c.compressSync(data)!;
      assert.deepEqual(reader.decompressSync(packed, size), data);
    }
    // Metadata chunks on a 4 KiB-block image: 8192 bytes, dictionary capped at the block size.
    const small = createCompressor(parseCompression(['xz'], 4096));
    const packed = small.compressSync(textBytes(8192))!;
    assert.deepEqual(compressorFromImage(4, null, 4096).decompressSync(packed, 8192), textBytes(8192));
  });

  it('zstd: refuses a frame whose window exceeds what the kernel allows', () => {
    // Written for 1 MiB blocks: the window is the input size; a 64 KiB-block image's kernel allows 64 KiB.
    const c = createCompressor(parseCompression(['zstd'], M));
    const data = textBytes(300000);
    const packed = c.compressSync(data)!;
    assert.throws(() => compressorFromImage(6, null, 65536).decompressSync(packed, M), isCorrupt);
    assert.deepEqual(compressorFromImage(6, null, 512 * 1024).decompressSync(packed, M), data);
  });

  it('lz4 -Xhc compresses better than plain lz4', () => {
    const data = textBytes(M);
    const plain = createCompressor(parseCompression(['lz4'], M)).compressSync(data)!;
    const hc = createCompressor(parseCompression(['lz4', '-Xhc'], M)).compressSync(data)!;
    assert.ok(hc.length < plain.length, `${hc.length} vs ${plain.length}`);
  });

  it('several gzip strategies or xz filters keep the smallest result', () => {
    const data = KINDS.binary(200000);
    const gzipAll = createCompressor(parseCompression(['gzip', '-Xstrategy', 'default,filtered,huffman_only,run_length_encoded,fixed'], M));
    const sizes = ['default', 'filtered', 'huffman_only', 'run_length_encoded', 'fixed'].map(
      (s) => createCompressor(parseCompression(['gzip', '-Xstrategy', s], M)).compressSync(data)?.length ?? Infinity,
    );
    assert.equal(gzipAll.compressSync(data)!.length, Math.min(...sizes));
    const xzBoth = createCompressor(parseCompression(['xz', '-Xbcj', 'x86,sparc'], M));
    // Each single-filter compressor also tries plain LZMA2, so the smallest of these is the smallest of all three.
    const xzSizes = [[], ['-Xbcj', 'x86'], ['-Xbcj', 'sparc']].map(
      (w) => createCompressor(parseCompression(['xz', ...w], M)).compressSync(data)!.length,
    );
    assert.equal(xzBoth.compressSync(data)!.length, Math.min(...xzSizes));
  });
});
