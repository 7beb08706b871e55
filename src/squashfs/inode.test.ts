import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INVALID_FRAGMENT, INVALID_XATTR, InodeType } from './format.js';
import { encodeDeviceInode, encodeDirInode, encodeFileInode, encodeIpcInode, encodeRdev, encodeSymlinkInode } from './inode.js';

const h = { mode: 0o104755, uidIndex: 1, gidIndex: 2, mtime: 0x01020304, number: 7 };
const u16 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint16(at, true);
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const u64 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getBigUint64(at, true);

test('common header: type, permission bits only, id indexes, mtime, number', () => {
  const b = encodeIpcInode(h, { kind: 'fifo', nlink: 1, xattr: INVALID_XATTR });
  assert.deepEqual([...b], [6, 0, 0xed, 0x09, 1, 0, 2, 0, 4, 3, 2, 1, 7, 0, 0, 0, 1, 0, 0, 0]);
});

test('basic file inode with fragment and block list', () => {
  const b = encodeFileInode(h, { start: 96, size: 5000, sparse: 0, nlink: 1, fragment: 3, fragmentOffset: 904, xattr: INVALID_XATTR, blocks: [0x1000000 | 4096] });
  assert.equal(u16(b, 0), InodeType.FILE);
  assert.deepEqual([u32(b, 16), u32(b, 20), u32(b, 24), u32(b, 28), u32(b, 32)], [96, 3, 904, 5000, 0x1000000 | 4096]);
  assert.equal(b.length, 36);
});

test('extended file inode for hard links, 64-bit sizes, sparse bytes', () => {
  const size = 5 * 2 ** 30 + 1;
  const b = encodeFileInode(h, { start: 2 ** 33, size, sparse: 2 ** 32, nlink: 3, fragment: INVALID_FRAGMENT, fragmentOffset: 9, xattr: 4, blocks: [0, 5] });
  assert.equal(u16(b, 0), InodeType.LREG);
  assert.equal(u64(b, 16), 2n ** 33n);
  assert.equal(u64(b, 24), BigInt(size));
  assert.equal(u64(b, 32), 2n ** 32n);
  assert.deepEqual([u32(b, 40), u32(b, 44), u32(b, 48), u32(b, 52), u32(b, 56), u32(b, 60)], [3, INVALID_FRAGMENT, 0, 4, 0, 5]);
});

test('directory inode: basic when small, extended with xattrs or an index', () => {
  const basic = encodeDirInode(h, { startBlock: 8194, offset: 12, listingSize: 100, entries: 5, nlink: 3, parent: 9, xattr: INVALID_XATTR, index: [] });
  assert.equal(u16(basic, 0), InodeType.DIR);
  assert.deepEqual([u32(basic, 16), u32(basic, 20), u16(basic, 24), u16(basic, 26), u32(basic, 28)], [8194, 3, 103, 12, 9]);
  const ext = encodeDirInode(h, { startBlock: 0, offset: 0, listingSize: 70000, entries: 3000, nlink: 2, parent: 1, xattr: INVALID_XATTR,
    index: [{ index: 8000, startBlock: 4000, name: new TextEncoder().encode('abc') }] });
  assert.equal(u16(ext, 0), InodeType.LDIR);
  assert.deepEqual([u32(ext, 16), u32(ext, 20), u32(ext, 24), u32(ext, 28), u16(ext, 32), u16(ext, 34), u32(ext, 36)], [2, 70003, 0, 1, 1, 0, INVALID_XATTR]);
  assert.deepEqual([u32(ext, 40), u32(ext, 44), u32(ext, 48)], [8000, 4000, 2]);
  assert.equal(ext.length, 40 + 12 + 3);
  const many = encodeDirInode(h, { startBlock: 0, offset: 0, listingSize: 3108, entries: 257, nlink: 2, parent: 1, xattr: INVALID_XATTR, index: [] });
  assert.equal(u16(many, 0), InodeType.LDIR, 'more than 256 entries: extended, like mksquashfs');
});

test('sparse blocks alone keep a file basic', () => {
  const b = encodeFileInode(h, { start: 96, size: 8192, sparse: 4096, nlink: 1, fragment: INVALID_FRAGMENT, fragmentOffset: 0, xattr: INVALID_XATTR, blocks: [0, 100] });
  assert.equal(u16(b, 0), InodeType.FILE);
});

test('symlinks and devices', () => {
  const s = encodeSymlinkInode(h, { nlink: 1, target: new TextEncoder().encode('/x'), xattr: 5 });
  assert.equal(u16(s, 0), InodeType.LSYMLINK);
  assert.deepEqual([u32(s, 16), u32(s, 20), s[24], s[25], u32(s, 26)], [1, 2, 0x2f, 0x78, 5]);
  assert.equal(encodeRdev(8, 1), 0x801);
  assert.equal(encodeRdev(136, 1000), (136 << 8) | (1000 & 0xff) | ((1000 & ~0xff) << 12));
  assert.equal(encodeRdev(0xfff, 0xfffff), 0xfffffff0 + 0xf ); // all 32 bits used
  const d = encodeDeviceInode(h, { kind: 'block', nlink: 1, major: 8, minor: 1, xattr: INVALID_XATTR });
  assert.deepEqual([u16(d, 0), u32(d, 20), d.length], [InodeType.BLKDEV, 0x801, 24]);
});
