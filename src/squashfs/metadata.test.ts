import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetadataWriter, encodeIndexedTable, encodeMetadataChunk, refToU64, type MetadataCompressor } from './metadata.js';

/** Compresses everything to its first half: lets a test predict stored sizes exactly. */
const halving: MetadataCompressor = { compressSync: (d) => d.slice(0, Math.ceil(d.length / 2)) };

test('raw chunks: header is size | 0x8000, refs are (chunk position << 16 | offset)', async () => {
  const mw = new MetadataWriter(null);
  assert.deepEqual(mw.ref, { block: 0, offset: 0 });
  await mw.write(new Uint8Array(8000).fill(1));
  assert.deepEqual(mw.ref, { block: 0, offset: 8000 });
  await mw.write(new Uint8Array(192).fill(2)); // exactly fills the first chunk
  assert.deepEqual(mw.ref, { block: 8194, offset: 0 }, 'an item starting at 8192 is (next chunk, 0)');
  await mw.write(new Uint8Array(10).fill(3));
  const { chunks, chunkStarts, size } = await mw.finish();
  assert.deepEqual(chunkStarts, [0, 8194]);
  assert.equal(size, 8194 + 12);
  assert.equal(new DataView(chunks[0].buffer).getUint16(0, true), 8192 | 0x8000);
  assert.equal(new DataView(chunks[1].buffer).getUint16(0, true), 10 | 0x8000);
  assert.equal(refToU64({ block: 8194, offset: 5 }), (8194n << 16n) | 5n);
});

test('compressed chunks: positions follow stored sizes; records straddle chunks', async () => {
  const mw = new MetadataWriter(halving);
  await mw.write(new Uint8Array(8192 + 100).fill(7));
  assert.deepEqual(mw.ref, { block: 2 + 4096, offset: 100 });
  const { chunkStarts, size } = await mw.finish();
  assert.deepEqual(chunkStarts, [0, 4098]);
  assert.equal(size, 4098 + 2 + 50);
});

test('a chunk that does not shrink is stored raw', async () => {
  const grow: MetadataCompressor = { compressSync: (d) => new Uint8Array(d.length + 1) };
  const c = encodeMetadataChunk(grow, new Uint8Array([1, 2, 3]));
  assert.deepEqual([...c], [3, 0x80, 1, 2, 3]);
});

test('indexed table: metadata chunks then u64 absolute chunk positions', async () => {
  const t = await encodeIndexedTable(null, new Uint8Array(8192 + 8), 1000);
  assert.equal(t.pieces.length, 3);
  assert.equal(t.indexStart, 1000 + 8194 + 10);
  const index = new DataView(t.pieces[2].buffer, t.pieces[2].byteOffset);
  assert.equal(index.getBigUint64(0, true), 1000n);
  assert.equal(index.getBigUint64(8, true), 1000n + 8194n);
  assert.equal(t.end, t.indexStart + 16);
});
