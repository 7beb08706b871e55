import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { nativeAddonPath } from '../package-root.js';
import { lz4Binding, lz4LibraryVersion, Lz4Compressor } from './lz4.js';

const require = createRequire(import.meta.url);

/** Blocks of every kind: text, structured binary, noise, zeros, and the sizes around the limit. */
function blocks(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const elf = readFileSync(process.execPath);
  for (let i = 0; i < 40; i++) out.push(elf.subarray(i * 131072, (i + 1) * 131072));
  out.push(Buffer.from('portable service '.repeat(7000)), Buffer.alloc(65536), Buffer.from([1, 2]), Buffer.from('ab'.repeat(3)));
  let x = 7;
  out.push(Uint8Array.from({ length: 100_000 }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24)));
  return out;
}

test('lz4 compresses through the system liblz4 (the library mksquashfs uses), block for block as the lz4 package does', () => {
  const sys = require(nativeAddonPath()) as { lz4Compress(i: Uint8Array, o: Uint8Array, limit: number, level: number): number; lz4Version(): string };
  assert.match(lz4LibraryVersion(), /^system liblz4 1\.\d+\.\d+$/);
  const pkg = lz4Binding();
  const a = Buffer.alloc(140_000);
  const b = Buffer.alloc(140_000);
  for (const hc of [false, true]) {
    for (const block of blocks()) {
      const limit = block.length - 1;
      const n = sys.lz4Compress(block, a, limit, hc ? 9 : 0);
      const m = hc ? pkg.compressHCLimited(block, b, limit, 9) : pkg.compressLimited(block, b, limit);
      assert.equal(n, m, `${hc ? 'HC' : 'fast'}: ${block.length}-byte block, same size`);
      assert.ok(a.subarray(0, n).equals(b.subarray(0, m)), 'same bytes');
    }
  }
  // What the writer calls, and a result that decompresses back.
  const c = new Lz4Compressor({ name: 'lz4', blockSize: 131072 });
  const text = Buffer.from('a portable service image '.repeat(4000));
  const packed = c.compressSync(text)!;
  assert.ok(packed.length < text.length / 10);
  assert.ok(Buffer.from(c.decompressSync(packed, 131072)).equals(text));
  // Nothing fits in fewer bytes than noise takes: no result, not a truncated one.
  assert.equal(sys.lz4Compress(blocks().at(-1)!, a, 1000, 0), 0);
});
