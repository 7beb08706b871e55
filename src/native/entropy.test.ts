import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import zlib from 'node:zlib';
import { incompressibleCheck } from './entropy.js';

test('a block is judged not worth compressing only when it is evenly spread, lz4 saves nothing and nothing repeats', () => {
  const judge = incompressibleCheck({ name: 'zstd', blockSize: 131072 });
  assert.ok(judge, 'the addon has the check');
  const noise = randomBytes(131072);
  assert.equal(judge(noise), true, 'random bytes');
  // What compressors store: a deflate stream (of base64 text, which deflate shrinks by a quarter).
  const deflated = zlib.deflateSync(Buffer.from(randomBytes(1 << 20).toString('base64')), { level: 9 });
  for (let at = 0; at + 131072 <= deflated.length; at += 131072) {
    const block = deflated.subarray(at, at + 131072);
    assert.equal(judge(block), true, `a deflate stream at ${at}`);
    assert.ok(zlib.deflateSync(block).length >= block.length, 'which deflate does not shrink again');
  }
  const text = Buffer.from(readFileSync(new URL('../../README.md', import.meta.url)).toString().repeat(4));
  // Anything a compressor gains on is not skipped.
  assert.equal(judge(text.subarray(0, 131072)), false, 'text');
  assert.equal(judge(readFileSync(process.execPath).subarray(0, 131072)), false, 'machine code');
  const near = Buffer.concat([noise.subarray(0, 70_000), noise.subarray(0, 61_072)]);
  assert.equal(judge(near), false, 'noise repeated 70 000 bytes later (lz4 sees it)');
  const far = Buffer.concat([randomBytes(600_000), noise.subarray(0, 100_000), randomBytes(248_576), noise.subarray(0, 100_000)]);
  assert.equal(far.length, 1 << 20);
  assert.equal(judge(far), false, 'noise repeated 348 576 bytes later (beyond lz4, within a 1M block)');
  assert.equal(judge(Buffer.concat([randomBytes(948_576), noise.subarray(0, 100_000)])), true, 'a 1M block of noise');
  let s = 1;
  const weak = Uint8Array.from({ length: 131072 }, () => ((s = (s * 69069 + 1) >>> 0) >>> 24) & (s & 0x100 ? 0xff : 0xfe));
  assert.equal(judge(weak), false, 'a weak generator (its bytes are not evenly spread)');
  assert.equal(judge(noise.subarray(0, 20_000)), false, 'too small to judge');
  // Plain lz4 gives up on such a block faster than the check: it has none.
  assert.equal(incompressibleCheck({ name: 'lz4', blockSize: 131072 }), null);
  assert.ok(incompressibleCheck({ name: 'lz4', blockSize: 131072, hc: true }));
});
