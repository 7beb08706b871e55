/**
 * Files of 4 GiB and more (sparse on disk and in the image) are read block by block: the reader streams 5 GiB
 * without allocating more than a few blocks, gets the one non-zero block right, and readFile refuses it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { openImage } from './index.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const skip = hasTool('mksquashfs') ? false : 'mksquashfs not installed';

const GiB = 2 ** 30;
const MARK_AT = 3 * GiB + 12345;
const MARK = Buffer.from('hello from the middle of a hole');

{
  const blockSize = 128 << 10;
  test('a 5 GiB sparse file streams (u64 sizes, sparse blocks, bounded memory)', { skip, timeout: 300_000 }, async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-sparse-'));
    try {
      const tree = path.join(work, 'tree');
      fs.mkdirSync(tree);
      const big = path.join(tree, 'big');
      fs.writeFileSync(big, '');
      fs.truncateSync(big, 5 * GiB);
      const fd = fs.openSync(big, 'r+');
      fs.writeSync(fd, MARK, 0, MARK.length, MARK_AT);
      fs.closeSync(fd);
      const image = path.join(work, 'sparse.sqfs');
      const r = spawnSync('mksquashfs', [tree, image, '-noappend', '-quiet', '-no-progress', '-b', String(blockSize)]);
      assert.equal(r.status, 0, r.stderr.toString());
      assert.ok(fs.statSync(image).size < 16 << 20, 'the image itself is small');

      const img = await openImage(image);
      try {
        const st = await img.stat('/big');
        assert.equal(st.size, 5 * GiB);
        await assert.rejects(img.readFile('/big'), { code: 'IMAGE_UNSUPPORTED', message: /stream it/ });
        // A ranged read in the middle walks the block list only.
        assert.deepEqual(Buffer.from(await img.read('/big', MARK_AT - 3, MARK.length + 6)), Buffer.concat([Buffer.alloc(3), MARK, Buffer.alloc(3)]));

        const rss0 = process.memoryUsage().rss;
        let maxRss = rss0;
        let total = 0;
        let chunks = 0;
        const zero = Buffer.alloc(blockSize);
        for await (const c of img.chunks('/big')) {
          assert.ok(c.length <= blockSize);
          const b = Buffer.from(c.buffer, c.byteOffset, c.length);
          const markStart = MARK_AT - total;
          if (markStart >= 0 && markStart < c.length) {
            assert.deepEqual(b.subarray(markStart, markStart + MARK.length), MARK);
            assert.equal(b.subarray(0, markStart).compare(zero, 0, markStart), 0);
            assert.equal(b.subarray(markStart + MARK.length).compare(zero, 0, c.length - markStart - MARK.length), 0);
          } else {
            assert.equal(b.compare(zero, 0, c.length), 0, `zeros at ${total}`);
          }
          total += c.length;
          if (++chunks % 256 === 0) maxRss = Math.max(maxRss, process.memoryUsage().rss);
        }
        assert.equal(total, 5 * GiB);
        assert.ok(maxRss - rss0 < 256 << 20, `rss grew by ${(maxRss - rss0) >> 20} MiB while streaming 5 GiB`);
      } finally {
        await img.close();
      }
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
}
