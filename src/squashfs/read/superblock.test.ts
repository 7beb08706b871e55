/**
 * Superblock and table layout validation: a valid mksquashfs image with one field patched at a time must fail with
 * the right code, a message naming the problem, and the superblock offset of the field.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { MkportableError } from '../../errors.js';
import { decodeSuperblock } from '../format.js';
import { openImageBuffer } from './index.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const skip = hasTool('mksquashfs') ? false : 'mksquashfs not installed';

let work = '';
let image: Buffer;
let xattrImage: Buffer;

before(() => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-sb-'));
  const tree = path.join(work, 'tree');
  fs.mkdirSync(path.join(tree, 'd'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'small'), 'small file\n');
  fs.writeFileSync(path.join(tree, 'd', 'f'), Buffer.alloc(10000, 1));
  const build = (out: string, extra: string[]) => {
    const r = spawnSync('mksquashfs', [tree, out, '-noappend', '-quiet', '-no-progress', '-b', '4096', ...extra]);
    assert.equal(r.status, 0, r.stderr.toString());
    return fs.readFileSync(out);
  };
  image = build(path.join(work, 'a.sqfs'), ['-noI', '-noD', '-noF']);
  const setfattr = spawnSync('setfattr', ['-n', 'user.a', '-v', 'b', path.join(tree, 'small')]);
  assert.equal(setfattr.status, 0, `setfattr: ${setfattr.stderr ?? setfattr.error}`);
  xattrImage = build(path.join(work, 'x.sqfs'), []);
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

type Patch = (b: Buffer) => Buffer | void;

async function expectError(bytes: Buffer, code: MkportableError['code'], message: RegExp): Promise<void> {
  await assert.rejects(openImageBuffer(bytes, { name: 'p.sqfs' }), (e: unknown) => {
    assert.ok(e instanceof MkportableError, `not a MkportableError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    assert.match(e.message, /^p\.sqfs: /);
    return true;
  });
}

function patched(base: Buffer, patch: Patch): Buffer {
  const b = Buffer.from(base);
  return patch(b) ?? b;
}

const sbOf = (b: Buffer) => decodeSuperblock(b);

test('the unpatched images open and read back their files (and the xattr)', { skip }, async () => {
  for (const bytes of [image, xattrImage]) {
    const img = await openImageBuffer(bytes);
    assert.deepEqual((await img.readdir('/')).map((e) => e.name), ['d', 'small']);
    assert.equal(Buffer.from(await img.readFile('/small')).toString(), 'small file\n');
    assert.deepEqual(Buffer.from(await img.readFile('/d/f')), Buffer.alloc(10000, 1));
    if (bytes === xattrImage) assert.equal(Buffer.from((await img.stat('/small')).xattrs['user.a']).toString(), 'b');
    await img.close();
  }
});

const cases: Array<[string, Patch, MkportableError['code'], RegExp]> = [
  ['bad magic', (b) => void b.writeUInt32LE(0x73717369, 0), 'IMAGE_CORRUPT', /not a squashfs image \(magic 0x73717369\) at offset 0$/],
  ['version 4.1', (b) => void b.writeUInt16LE(1, 30), 'IMAGE_UNSUPPORTED', /version 4\.1 is not supported/],
  ['version 3.0', (b) => void b.writeUInt16LE(3, 28), 'IMAGE_UNSUPPORTED', /version 3\.0/],
  ['lzo', (b) => void b.writeUInt16LE(3, 20), 'IMAGE_UNSUPPORTED', /lzo compression is not supported/],
  ['lzma', (b) => void b.writeUInt16LE(2, 20), 'IMAGE_UNSUPPORTED', /lzma/],
  ['unknown compression 9', (b) => void b.writeUInt16LE(9, 20), 'IMAGE_CORRUPT', /unknown compression id 9 .*at offset 20$/],
  ['block size not a power of two', (b) => void b.writeUInt32LE(3000, 12), 'IMAGE_CORRUPT', /block size 3000 .* at offset 12$/],
  ['block size 2 MiB', (b) => (b.writeUInt32LE(1 << 21, 12), void b.writeUInt16LE(21, 22)), 'IMAGE_CORRUPT', /block size 2097152/],
  ['block_log mismatch', (b) => void b.writeUInt16LE(13, 22), 'IMAGE_CORRUPT', /block_log 13 does not match block size 4096 at offset 22$/],
  ['inode count 0', (b) => void b.writeUInt32LE(0, 4), 'IMAGE_CORRUPT', /inode count is 0 .* at offset 4$/],
  ['id count 0', (b) => void b.writeUInt16LE(0, 26), 'IMAGE_CORRUPT', /id count is 0/],
  ['bytes_used past the end', (b) => void b.writeBigUInt64LE(BigInt(b.length + 1), 40), 'IMAGE_CORRUPT', /bytes_used .* at offset 40$/],
  ['truncated inside the tables', (b) => b.subarray(0, Number(sbOf(b).bytesUsed) - 1), 'IMAGE_CORRUPT', /bytes_used/],
  ['truncated to the superblock', (b) => b.subarray(0, 96), 'IMAGE_CORRUPT', /bytes_used/],
  ['shorter than a superblock', (b) => b.subarray(0, 95), 'IMAGE_CORRUPT', /too small for a squashfs superblock at offset 0$/],
  ['id table moved by 8', (b) => void b.writeBigUInt64LE(sbOf(b).idTable + 8n, 48), 'IMAGE_CORRUPT', /id (table start|index)/],
  ['id table past bytes_used', (b) => void b.writeBigUInt64LE(1n << 40n, 48), 'IMAGE_CORRUPT', /id table start 1099511627776 is outside .* at offset 48$/],
  ['inode table after directory table', (b) => void b.writeBigUInt64LE(sbOf(b).directoryTable, 64), 'IMAGE_CORRUPT', /inode table .* does not start before the directory table/],
  ['inode table inside the superblock', (b) => void b.writeBigUInt64LE(10n, 64), 'IMAGE_CORRUPT', /inode table start 10 is outside/],
  ['directory table past the fragments', (b) => void b.writeBigUInt64LE(sbOf(b).fragmentTable + 1n, 72), 'IMAGE_CORRUPT', /directory table start/],
  ['fragment count 2^32-1', (b) => void b.writeUInt32LE(0xffffffff, 16), 'IMAGE_CORRUPT', /fragment (index|table)/],
  ['fragment count + 512 (index one block longer)', (b) => void b.writeUInt32LE(b.readUInt32LE(16) + 512, 16), 'IMAGE_CORRUPT', /fragment/],
  ['export table moved', (b) => void b.writeBigUInt64LE(sbOf(b).exportTable - 8n, 88), 'IMAGE_CORRUPT', /export index/],
  ['inode count + 1024 (export index longer)', (b) => void b.writeUInt32LE(b.readUInt32LE(4) + 1024, 4), 'IMAGE_CORRUPT', /export index/],
  ['root ref outside the inode table', (b) => void b.writeBigUInt64LE(0xffffn << 16n, 32), 'IMAGE_CORRUPT', /root inode reference .* at offset 32$/],
  ['root ref with high bits', (b) => void b.writeBigUInt64LE(1n << 50n, 32), 'IMAGE_CORRUPT', /root inode reference/],
  ['root ref pointing at a file inode', (b) => void b.writeBigUInt64LE(0n, 32), 'IMAGE_CORRUPT', /root inode is a file/],
  ['id index entry zeroed', (b) => void b.writeBigUInt64LE(0n, Number(sbOf(b).idTable)), 'IMAGE_CORRUPT', /id index entry 0 \(0\) is not followed by a valid metadata block/],
  ['id index entry pointing at itself', (b) => void b.writeBigUInt64LE(sbOf(b).idTable, Number(sbOf(b).idTable)), 'IMAGE_CORRUPT', /id index entry 0 .* is not before the index/],
  ['compressor options flag without a valid block', (b) => void b.writeUInt16LE(b.readUInt16LE(24) | 0x400, 24), 'IMAGE_CORRUPT', /compressor options/],
];

for (const [name, patch, code, message] of cases) {
  test(`superblock: ${name}`, { skip }, async () => {
    await expectError(patched(image, patch), code, message);
  });
}

const xattrCases: Array<[string, Patch, RegExp]> = [
  ['xattr table moved by 1', (b) => void b.writeBigUInt64LE(sbOf(b).xattrIdTable + 1n, 56), /xattr id (index|table)/],
  ['xattr id count 0', (b) => void b.writeUInt32LE(0, Number(sbOf(b).xattrIdTable) + 8), /xattr id table has 0 entries/],
  ['xattr id count 1000', (b) => void b.writeUInt32LE(1000, Number(sbOf(b).xattrIdTable) + 8), /does not end at bytes_used/],
  ['xattr value table start after its id table', (b) => void b.writeBigUInt64LE(sbOf(b).xattrIdTable, Number(sbOf(b).xattrIdTable)), /xattr value table start/],
  ['xattr table pointer ~0 - 1', (b) => void b.writeBigUInt64LE(0xfffffffffffffffen, 56), /xattr id table start/],
];

for (const [name, patch, message] of xattrCases) {
  test(`superblock: ${name}`, { skip }, async () => {
    await expectError(patched(xattrImage, patch), 'IMAGE_CORRUPT', message);
  });
}

test('superblock: no xattr table while an inode names an xattr id', { skip }, async () => {
  // Drop the xattr tables the way an image without xattrs has none: no xattr id table, and bytes_used ending where
  // the xattr value table began (so the layout is consistent and the inode's xattr index is what is wrong).
  const b = patched(xattrImage, (x) => {
    const kv = x.readBigUInt64LE(Number(sbOf(x).xattrIdTable));
    x.writeBigUInt64LE(0xffffffffffffffffn, 56);
    x.writeBigUInt64LE(kv, 40);
  });
  const img = await openImageBuffer(b, { name: 'p.sqfs' });
  try {
    assert.deepEqual((await img.readdir('/')).map((e) => e.name), ['d', 'small']);
    await assert.rejects(img.stat('/small'), (e: unknown) => {
      assert.ok(e instanceof MkportableError, `not a MkportableError: ${String(e)}`);
      assert.equal(e.code, 'IMAGE_CORRUPT');
      assert.match(e.message, /^p\.sqfs: inode at block \d+ offset \d+: xattr index 0 is not below the xattr id count 0 at offset \d+$/);
      return true;
    });
  } finally {
    await img.close();
  }
});
