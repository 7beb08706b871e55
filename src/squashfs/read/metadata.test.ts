/**
 * Metadata blocks and cursors on hand-built bytes: lengths, compression bombs, table bounds, short blocks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { compressorFromImage } from '../../compress/registry.js';
import { Compression, METADATA_SIZE, METADATA_UNCOMPRESSED } from '../format.js';
import { MetadataCursor, MetadataStore } from './metadata.js';
import { BufferSource } from './source.js';

const gzip = compressorFromImage(Compression.GZIP, null, 131072);

/** Concatenate stored blocks: [raw?, payload]. */
function blocks(...parts: Array<{ raw: boolean; payload: Uint8Array; header?: number }>): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    const h = p.header ?? (p.payload.length | (p.raw ? METADATA_UNCOMPRESSED : 0));
    out.push(h & 0xff, h >> 8, ...p.payload);
  }
  return Uint8Array.from(out);
}

function store(bytes: Uint8Array) {
  return new MetadataStore(new BufferSource(bytes, 'x.sqfs'), gzip, 'x.sqfs', 4);
}

const fill = (n: number, v = 0xab) => new Uint8Array(n).fill(v);

test('a raw block is read as stored; a compressed one is inflated', async () => {
  const deflated = zlib.deflateSync(Buffer.from('hello metadata'));
  const bytes = blocks({ raw: true, payload: Uint8Array.from([1, 2, 3]) }, { raw: false, payload: deflated });
  const s = store(bytes);
  const a = await s.block(0, bytes.length, 'test');
  assert.deepEqual([...a.data], [1, 2, 3]);
  assert.equal(a.next, 5);
  const b = await s.block(5, bytes.length, 'test');
  assert.equal(Buffer.from(b.data).toString(), 'hello metadata');
});

test('block length 0 and > 8192 are IMAGE_CORRUPT with the offset', async () => {
  const zero = blocks({ raw: true, payload: new Uint8Array(0), header: METADATA_UNCOMPRESSED });
  await assert.rejects(store(zero).block(0, 2, 'inode table'), { code: 'IMAGE_CORRUPT', message: /inode table: metadata block length 0 is invalid at offset 0/ });
  const big = blocks({ raw: true, payload: fill(8193), header: 8193 | METADATA_UNCOMPRESSED });
  await assert.rejects(store(big).block(0, big.length, 't'), { code: 'IMAGE_CORRUPT', message: /length 8193 is invalid/ });
});

test('a compressed metadata block that inflates past 8192 bytes (a bomb) is refused', async () => {
  const bomb = zlib.deflateSync(Buffer.alloc(1 << 20));
  assert.ok(bomb.length < 8192);
  const bytes = blocks({ raw: false, payload: bomb });
  await assert.rejects(store(bytes).block(0, bytes.length, 't'), { code: 'IMAGE_CORRUPT', message: /does not decompress|more than 8192/ });
});

test('compressed garbage is IMAGE_CORRUPT, not a zlib error', async () => {
  const bytes = blocks({ raw: false, payload: fill(100, 0x5a) });
  await assert.rejects(store(bytes).block(0, bytes.length, 't'), { code: 'IMAGE_CORRUPT', message: /at offset 0/ });
});

test('a block running past its table end is refused even when the file goes on', async () => {
  const bytes = blocks({ raw: true, payload: fill(100) }, { raw: true, payload: fill(10) });
  await assert.rejects(store(bytes).block(0, 50, 't'), { code: 'IMAGE_CORRUPT', message: /runs past the end of its table \(50\)/ });
  await assert.rejects(store(bytes).block(49, 50, 't'), { code: 'IMAGE_CORRUPT', message: /header lies outside/ });
  // Cached with a generous limit, still checked against a tighter one.
  const s = store(bytes);
  await s.block(0, bytes.length, 't');
  await assert.rejects(s.block(0, 50, 't'), { code: 'IMAGE_CORRUPT' });
});

test('a cursor reads records straddling full blocks', async () => {
  const first = fill(METADATA_SIZE, 1);
  first[METADATA_SIZE - 1] = 7;
  const bytes = blocks({ raw: true, payload: first }, { raw: true, payload: Uint8Array.from([8, 9, 10]) });
  const c = new MetadataCursor(store(bytes), 'x.sqfs', { start: 0, end: bytes.length }, 0, METADATA_SIZE - 1, 't');
  assert.deepEqual([...(await c.read(3))], [7, 8, 9]);
  assert.deepEqual([...(await c.read(1))], [10]);
  await assert.rejects(c.read(1), { code: 'IMAGE_CORRUPT', message: /short/ });
});

test('a record may not continue past a short block, the table end, or start past a block end', async () => {
  const bytes = blocks({ raw: true, payload: fill(100) }, { raw: true, payload: fill(100) });
  const region = { start: 0, end: bytes.length };
  const c = new MetadataCursor(store(bytes), 'x.sqfs', region, 0, 90, 't');
  await assert.rejects(c.read(20), { code: 'IMAGE_CORRUPT', message: /only the last block of a table may be short/ });
  const past = new MetadataCursor(store(bytes), 'x.sqfs', region, 0, 150, 't');
  await assert.rejects(past.read(1), { code: 'IMAGE_CORRUPT', message: /offset 150 is past the end of a 100-byte metadata block/ });
  const full = blocks({ raw: true, payload: fill(METADATA_SIZE) });
  const end = new MetadataCursor(store(full), 'x.sqfs', { start: 0, end: full.length }, 0, METADATA_SIZE - 2, 't');
  await assert.rejects(end.read(4), { code: 'IMAGE_CORRUPT', message: /runs past the end of its table/ });
  assert.throws(() => new MetadataCursor(store(full), 'x.sqfs', { start: 0, end: full.length }, full.length, 0, 't'), {
    code: 'IMAGE_CORRUPT',
  });
});
