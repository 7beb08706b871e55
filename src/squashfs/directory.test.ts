import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeDirRun, groupDirEntries, writeDirectory, type DirEntry } from './directory.js';
import { MetadataWriter } from './metadata.js';

const enc = new TextEncoder();
const entry = (name: string, number: number, block = 0, offset = 0): DirEntry => ({ name: enc.encode(name), inode: { block, offset }, number, type: 2 });

test('golden bytes of one run', () => {
  const bytes = encodeDirRun({ startBlock: 0x1234, base: 10, entries: [entry('a', 10, 0x1234, 32), entry('bc', 9, 0x1234, 64)] });
  assert.deepEqual([...bytes], [
    1, 0, 0, 0, 0x34, 0x12, 0, 0, 10, 0, 0, 0, // count-1, start_block, inode_number
    32, 0, 0, 0, 2, 0, 0, 0, 0x61, // offset, delta 0, type, name_size-1, "a"
    64, 0, 0xff, 0xff, 2, 0, 1, 0, 0x62, 0x63, // offset, delta -1, type, name_size-1, "bc"
  ]);
});

test('new run at 256 entries, on a new inode chunk, and when the delta leaves s16', () => {
  const many = Array.from({ length: 300 }, (_, i) => entry(`f${i}`, i + 1));
  assert.deepEqual(groupDirEntries(many).map((r) => r.entries.length), [256, 44]);
  const chunks = [entry('a', 1, 0), entry('b', 2, 0), entry('c', 3, 8000), entry('d', 4, 8000)];
  assert.deepEqual(groupDirEntries(chunks).map((r) => [r.startBlock, r.base, r.entries.length]), [[0, 1, 2], [8000, 3, 2]]);
  const far = [entry('a', 1), entry('b', 1 + 0x7fff), entry('c', 1 + 0x8000)];
  assert.deepEqual(groupDirEntries(far).map((r) => r.entries.length), [2, 1]);
});

test('an indexed run starts each time the listing grows past 8 KiB, as in mksquashfs images', async () => {
  const mw = new MetadataWriter(null);
  await mw.write(new Uint8Array(100)); // the listing starts at offset 100 of chunk 0
  // 200 entries of 104-byte names: mksquashfs 4.5 puts index entries at listing offsets 8188 and 16376.
  const names = Array.from({ length: 200 }, (_, i) => `f${String(i + 1).padStart(3, '0')}${'L'.repeat(100)}`);
  const written = await writeDirectory(mw, names.map((n, i) => entry(n, i + 1)));
  assert.deepEqual(written.start, { block: 0, offset: 100 });
  assert.equal(written.size + 3, 22439, 'listing size mksquashfs reports for the same directory');
  // Raw chunks are stored as 8194 bytes: the headers sit at 100+8188 (chunk 1) and 100+16376 (chunk 2).
  assert.deepEqual(written.index.map((i) => [i.index, i.startBlock, new TextDecoder().decode(i.name)]), [
    [8188, 8194, names[73]],
    [16376, 2 * 8194, names[146]],
  ]);
  assert.equal(written.entries, 200);
});

test('short listings have no index', () => {
  const runs = groupDirEntries(Array.from({ length: 60 }, (_, i) => entry(`f${i}${'L'.repeat(120)}`, i + 1)));
  assert.equal(runs.length, 1);
  assert.equal(runs[0].indexAt, undefined);
});
