/**
 * Ranged reads (SquashfsImage.read): the same bytes as the whole file's, for ranges at and across block
 * boundaries, in the tail fragment, in sparse blocks and past the end; and only the blocks the range touches are
 * read from the image (inspect parses a big program's headers without inflating all of it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { SquashfsImage } from './image.js';
import { BufferSource, type ByteSource } from './source.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const skip = hasTool('mksquashfs') ? false : 'mksquashfs not installed';

const BS = 4096;

/** Deterministic bytes that compress a little (so blocks are stored compressed, not raw). */
function bytes(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    out[i] = 0x61 + ((a >>> 24) & 15);
  }
  return out;
}

/** The image's bytes, with every read's description recorded. */
function recording(buf: Uint8Array): { source: ByteSource; reads: string[] } {
  const inner = new BufferSource(buf, 'ranged.sqfs');
  const reads: string[] = [];
  return {
    reads,
    source: { size: inner.size, read: (o, l, what) => (reads.push(what), inner.read(o, l, what)), close: () => inner.close() },
  };
}

for (const fragments of [true, false]) {
  test(`ranged reads give the file's bytes and read only the blocks they touch (${fragments ? '-always-use-fragments' : '-no-fragments'})`, { skip }, async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-ranged-'));
    try {
      const tree = path.join(work, 'tree');
      fs.mkdirSync(tree);
      const files: Record<string, Buffer> = {
        '/ten-and-a-tail': bytes(1, 10 * BS + 100),
        '/exact': bytes(2, 6 * BS),
        '/small': bytes(3, 700),
        '/holey': Buffer.concat([Buffer.alloc(3 * BS), bytes(4, BS + 5), Buffer.alloc(2 * BS)]),
        '/empty': Buffer.alloc(0),
      };
      for (const [name, data] of Object.entries(files)) fs.writeFileSync(path.join(tree, name), data);
      const image = path.join(work, 'img.sqfs');
      const r = spawnSync('mksquashfs', [tree, image, '-noappend', '-quiet', '-no-progress', '-comp', 'gzip', '-b', String(BS), fragments ? '-always-use-fragments' : '-no-fragments']);
      assert.equal(r.status, 0, r.stderr.toString());
      const { source, reads } = recording(fs.readFileSync(image));
      const img = await SquashfsImage.fromSource(source, 'ranged.sqfs');
      try {
        for (const [name, data] of Object.entries(files)) {
          assert.deepEqual(Buffer.from(await img.readFile(name)), data, `${name} whole`);
          const edges = [0, 1, BS - 1, BS, BS + 1, 3 * BS - 7, data.length - 100, data.length - 1, data.length, data.length + 5].filter((o) => o >= 0);
          for (const offset of edges) {
            for (const length of [0, 1, 64, BS, BS + 2, 3 * BS, 1 << 20]) {
              const got = Buffer.from(await img.read(name, offset, length));
              assert.deepEqual(got, data.subarray(offset, offset + length), `${name} at ${offset}, ${length} bytes`);
            }
          }
        }
        // Which data blocks a read fetches: the two a range across one boundary touches, none before or after.
        const blockReads = () => reads.filter((w) => / block \d+$/.test(w) && w.startsWith('file inode'));
        const st = await img.stat('/ten-and-a-tail');
        reads.length = 0;
        await img.read('/ten-and-a-tail', 5 * BS - 10, 20);
        assert.deepEqual(blockReads(), [`file inode ${st.ino} block 4`, `file inode ${st.ino} block 5`]);
        // Kept: reading inside them again fetches nothing.
        reads.length = 0;
        await img.read('/ten-and-a-tail', 5 * BS + 1, 100);
        assert.deepEqual(blockReads(), []);
        // The tail: no data block at all.
        reads.length = 0;
        const tail = await img.read('/ten-and-a-tail', 10 * BS + 50, 1000);
        assert.deepEqual(Buffer.from(tail), files['/ten-and-a-tail'].subarray(10 * BS + 50));
        assert.deepEqual(blockReads(), fragments ? [] : [`file inode ${st.ino} block 10`]);
        // Sparse blocks are never read.
        reads.length = 0;
        assert.deepEqual(Buffer.from(await img.read('/holey', BS, 2 * BS)), Buffer.alloc(2 * BS));
        assert.deepEqual(blockReads(), []);
      } finally {
        await img.close();
      }
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
}
