import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import zlib from 'node:zlib';
import { gzipBinding, GzipCompressor } from './gzip.js';

/** Blocks of every kind: binary, text, noise, zeros, tiny ones. */
function blocks(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const elf = readFileSync(process.execPath);
  for (let i = 0; i < 12; i++) out.push(elf.subarray(i * 131072, (i + 1) * 131072));
  out.push(Buffer.from('portable service '.repeat(7000)), Buffer.alloc(65536), Buffer.from([1, 2]));
  let x = 7;
  out.push(Uint8Array.from({ length: 100_000 }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24)));
  return out;
}

const STRATEGIES = [zlib.constants.Z_DEFAULT_STRATEGY, zlib.constants.Z_FILTERED, zlib.constants.Z_RLE, zlib.constants.Z_FIXED];

test("the addon's deflate through Node's zlib (engine 1) gives zlib.deflateSync's bytes; the system zlib (engine 0) is another library", () => {
  const z = gzipBinding();
  assert.notEqual(z.zlibVersion(1), '', "Node's zlib is there");
  const out = Buffer.alloc(200_000);
  let differs = 0;
  for (const block of blocks()) {
    for (const strategy of STRATEGIES) {
      for (const [level, windowBits] of [[9, 15], [6, 12], [1, 9]]) {
        const want = zlib.deflateSync(block, { level, windowBits, memLevel: 8, strategy });
        const n = z.deflate(block, out, level, windowBits, 8, strategy, 1);
        assert.equal(n, want.length, `${block.length} bytes, strategy ${strategy}, level ${level}, window ${windowBits}`);
        assert.ok(out.subarray(0, n).equals(want), 'same bytes');
        const m = z.deflate(block, out, level, windowBits, 8, strategy, 0);
        assert.ok(Buffer.from(zlib.inflateSync(out.subarray(0, m))).equals(block), 'the system zlib inflates back');
        if (m !== n) differs++;
      }
    }
  }
  // Chromium's fork and the system zlib make other choices: the reason for two engines.
  assert.ok(differs > 0, 'the two engines are different libraries');
  // A stream that does not fit is -1, not a truncated stream.
  assert.equal(z.deflate(blocks().at(-1)!, out.subarray(0, 1000), 9, 15, 8, 0, 1), -1);
  assert.throws(() => z.deflate(Buffer.from('x'), out, 9, 15, 8, 0, 2), /engine must be 0/);
});

test('the gzip compressor writes through the addon: what it stores inflates back, and fits where it said', () => {
  const c = new GzipCompressor({ name: 'gzip', blockSize: 131072 });
  const out = new Uint8Array(new SharedArrayBuffer(140_000));
  for (const block of blocks()) {
    const n = c.compressInto(block, out);
    if (n < 0) continue; // did not shrink: stored raw by the writer
    assert.ok(n < block.length);
    assert.ok(Buffer.from(zlib.inflateSync(out.subarray(0, n))).equals(block));
  }
});
