/**
 * Hostile inodes, directories, data blocks and xattrs: an uncompressed mksquashfs image (-noI -noD -noF -noX) is
 * parsed here independently of the reader, one field is patched, and reading everything must fail with
 * IMAGE_CORRUPT naming the problem (never another exception type, never success with wrong data).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { MkportableError } from '../../errors.js';
import { decodeSuperblock } from '../format.js';
import { openImageBuffer, type SquashfsImage } from './index.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const skip = hasTool('mksquashfs') ? false : 'mksquashfs not installed';
const BS = 4096;

interface RawInode {
  type: number;
  /** Absolute position of the inode in the image. */
  pos: number;
  /** Offset in the (single) inode table block. */
  offset: number;
  ino: number;
  blockListPos?: number;
}
interface RawEntry {
  name: string;
  /** Absolute position of the entry {offset, delta, type, size} and of its header. */
  pos: number;
  headerPos: number;
  base: number;
  inode: RawInode;
}

let work = '';
let image: Buffer;
const inodes: RawInode[] = [];
const entries = new Map<string, RawEntry>();
let root: RawInode;
let xattrEntryPos = 0;

/** Independent parse of a small uncompressed image: every table is one raw metadata block. */
function parse(b: Buffer): void {
  const sb = decodeSuperblock(b);
  const rawBlock = (at: number) => {
    const h = b.readUInt16LE(at);
    assert.ok(h & 0x8000, 'fixture table block is stored raw');
    return { start: at + 2, len: h & 0x7fff };
  };
  const it = rawBlock(Number(sb.inodeTable));
  let off = 0;
  while (off < it.len) {
    const pos = it.start + off;
    const type = b.readUInt16LE(pos);
    const inode: RawInode = { type, pos, offset: off, ino: b.readUInt32LE(pos + 12) };
    inodes.push(inode);
    let size: number;
    switch (type) {
      case 1: size = 32; break;
      case 8: size = 40 + 0; assert.equal(b.readUInt16LE(pos + 32), 0); break;
      case 2: case 9: {
        const ext = type === 9;
        const fileSize = ext ? Number(b.readBigUInt64LE(pos + 24)) : b.readUInt32LE(pos + 28);
        const frag = b.readUInt32LE(pos + (ext ? 44 : 20));
        const blocks = frag === 0xffffffff ? Math.ceil(fileSize / BS) : Math.floor(fileSize / BS);
        inode.blockListPos = pos + (ext ? 56 : 32);
        size = (ext ? 56 : 32) + 4 * blocks;
        break;
      }
      case 3: case 10: size = 24 + b.readUInt32LE(pos + 20) + (type === 10 ? 4 : 0); break;
      case 4: case 5: size = 24; break;
      case 11: case 12: size = 28; break;
      case 6: case 7: size = 20; break;
      default: size = 24;
    }
    off += size;
  }
  const rootOffset = Number(sb.rootInode & 0xffffn);
  root = inodes.find((i) => i.offset === rootOffset)!;
  const dt = rawBlock(Number(sb.directoryTable));
  const byOffset = new Map(inodes.map((i) => [i.offset, i]));
  for (const dir of inodes.filter((i) => i.type === 1)) {
    const fileSize = b.readUInt16LE(dir.pos + 24);
    let at = dt.start + b.readUInt16LE(dir.pos + 26);
    const end = at + fileSize - 3;
    while (at < end) {
      const headerPos = at;
      const count = b.readUInt32LE(at) + 1;
      const base = b.readUInt32LE(at + 8);
      at += 12;
      for (let i = 0; i < count; i++) {
        const nameLen = b.readUInt16LE(at + 6) + 1;
        const name = b.toString('utf8', at + 8, at + 8 + nameLen);
        entries.set(name, { name, pos: at, headerPos, base, inode: byOffset.get(b.readUInt16LE(at))! });
        at += 8 + nameLen;
      }
    }
  }
  const xattrHeader = Number(sb.xattrIdTable);
  const kv = rawBlock(Number(b.readBigUInt64LE(xattrHeader)));
  xattrEntryPos = kv.start;
}

before(() => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-hostile-'));
  const tree = path.join(work, 'tree');
  for (const d of ['a/loopdir', 'b/twin']) fs.mkdirSync(path.join(tree, d), { recursive: true });
  const big = Buffer.alloc(10000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
  fs.writeFileSync(path.join(tree, 'big'), big);
  fs.symlinkSync('target-of-link', path.join(tree, 'link'));
  fs.writeFileSync(path.join(tree, 'name1'), 'one');
  fs.writeFileSync(path.join(tree, 'name2'), 'two');
  fs.writeFileSync(path.join(tree, 'x'), 'has an xattr');
  fs.writeFileSync(path.join(tree, 'zz'), 'zz');
  const r1 = spawnSync('setfattr', ['-n', 'user.note', '-v', 'a note long enough for a ref', path.join(tree, 'x')]);
  assert.equal(r1.status, 0, 'setfattr');
  const out = path.join(work, 'h.sqfs');
  const r = spawnSync('mksquashfs', [tree, out, '-noappend', '-quiet', '-no-progress', '-b', String(BS), '-noI', '-noD', '-noF', '-noX']);
  assert.equal(r.status, 0, r.stderr.toString());
  image = fs.readFileSync(out);
  parse(image);
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

async function readEverything(img: SquashfsImage): Promise<number> {
  let n = 0;
  for await (const { path: p, stat } of img.walk()) {
    n++;
    if (stat.type === 'file') for await (const c of img.chunks(p)) void c;
    if (stat.type === 'file' && stat.size < 1 << 20) await img.readFile(p);
    if (stat.type === 'symlink') await img.readlink(p);
    if (stat.type === 'dir') await img.readdir(p);
  }
  return n;
}

async function expectCorrupt(patch: (b: Buffer) => void, message: RegExp): Promise<void> {
  const b = Buffer.from(image);
  patch(b);
  await assert.rejects(
    (async () => {
      const img = await openImageBuffer(b, { name: 'h.sqfs' });
      await readEverything(img);
    })(),
    (e: unknown) => {
      assert.ok(e instanceof MkportableError, `not a MkportableError: ${(e as Error)?.stack ?? String(e)}`);
      assert.equal(e.code, 'IMAGE_CORRUPT', e.message);
      assert.match(e.message, message);
      assert.match(e.message, /^h\.sqfs: /);
      return true;
    },
  );
}

const entry = (name: string) => {
  const e = entries.get(name);
  assert.ok(e, `fixture has an entry ${name}`);
  return e;
};

test('the fixture reads completely', { skip }, async () => {
  const img = await openImageBuffer(image);
  assert.equal(await readEverything(img), 11);
  assert.equal(entries.size, 10);
});

const cases: Array<[string, (b: Buffer) => void, RegExp]> = [
  ['a directory entry pointing at the root (loop)', (b) => {
    const e = entry('loopdir');
    b.writeUInt16LE(root.offset, e.pos);
    b.writeInt16LE(root.ino - e.base, e.pos + 2);
  }, /directory loop: \/a\/loopdir is its own ancestor .* at offset \d+$/],
  ['a directory linked from two places', (b) => {
    const e = entry('twin');
    const a = entry('a').inode;
    b.writeUInt16LE(a.offset, e.pos);
    b.writeInt16LE(a.ino - e.base, e.pos + 2);
  }, /directory inode \d+ is linked twice \(again at \/b\/twin\)/],
  ['unsorted names', (b) => {
    b.write('name2', entry('name1').pos + 8);
    b.write('name1', entry('name2').pos + 8);
  }, /names are not sorted: "name1" follows "name2"/],
  ["a '/' in a name", (b) => void b.write('z/', entry('zz').pos + 8), /has a '\/'/],
  ["a name '..'", (b) => void b.write('..', entry('zz').pos + 8), /has a reserved name/],
  ['a header announcing 300 entries', (b) => void b.writeUInt32LE(299, entry('zz').headerPos), /announces 300 entries \(at most 256\)/],
  ['a header pointing outside the inode table', (b) => void b.writeUInt32LE(0x10000, entry('zz').headerPos + 4), /outside the inode table/],
  ['an entry whose inode number disagrees with the inode', (b) => {
    const e = entry('name1');
    b.writeInt16LE(b.readInt16LE(e.pos + 2) + 1, e.pos + 2);
  }, /says inode \d+ but the inode is number \d+/],
  ['an entry inode number beyond the inode count', (b) => void b.writeInt16LE(30000, entry('zz').pos + 2), /inode number \d+, outside 1\.\.\d+/],
  ['an entry type that disagrees with the inode', (b) => void b.writeUInt16LE(2, entry('a').pos + 4), /says file but the inode is a dir/],
  ['an entry type 9', (b) => void b.writeUInt16LE(9, entry('zz').pos + 4), /entry type 9 is not a basic inode type/],
  ['a name length of 300', (b) => void b.writeUInt16LE(299, entry('zz').pos + 6), /name length 300 exceeds 256/],
  ['a uid index beyond the id table', (b) => void b.writeUInt16LE(200, entry('zz').inode.pos + 4), /uid index 200 is not below the id count/],
  ['a gid index beyond the id table', (b) => void b.writeUInt16LE(201, entry('zz').inode.pos + 6), /gid index 201/],
  ['inode number 0', (b) => void b.writeUInt32LE(0, entry('zz').inode.pos + 12), /inode number 0 is outside/],
  ['an unknown inode type', (b) => void b.writeUInt16LE(15, entry('zz').inode.pos), /unknown inode type 15/],
  ['directory type bits in a file mode', (b) => void b.writeUInt16LE(0o40644, entry('zz').inode.pos + 2), /contradict inode type 2/],
  ['a symlink target of 5000 bytes', (b) => void b.writeUInt32LE(5000, entry('link').inode.pos + 20), /symlink target length 5000 is outside 1\.\.4095/],
  ['a symlink target of 0 bytes', (b) => void b.writeUInt32LE(0, entry('link').inode.pos + 20), /symlink target length 0/],
  ['a NUL in a symlink target', (b) => void b.writeUInt8(0, entry('link').inode.pos + 24 + 3), /NUL/],
  ['a link count of 0', (b) => void b.writeUInt32LE(0, entry('link').inode.pos + 16), /link count is 0/],
  ['a fragment index beyond the fragment count', (b) => void b.writeUInt32LE(99, entry('name1').inode.pos + 20), /fragment index 99 is not below the fragment count/],
  ['a fragment offset past the block', (b) => void b.writeUInt32LE(BS - 1, entry('name1').inode.pos + 24), /fragment offset 4095 \+ tail 3 exceeds/],
  ['a directory listing outside the directory table', (b) => void b.writeUInt32LE(0xffff, entry('a').inode.pos + 16), /directory listing block 65535/],
  ['a directory listing longer than the table', (b) => void b.writeUInt16LE(0xfff0, root.pos + 24), /^h\.sqfs: directory table runs past the end of a \d+-byte metadata block \(only the last block of a table may be short\) at offset \d+$/],
  // 2 GiB in 4 KiB blocks needs a 524288-entry block list, which cannot fit in the inode table.
  ['a file size of 2 GiB on a 3-block file: its block list runs past the inode table', (b) => void b.writeUInt32LE(2 ** 31, entry('big').inode.pos + 28), /^h\.sqfs: inode table runs past the end of a \d+-byte metadata block \(only the last block of a table may be short\) at offset \d+$/],
  ['a data block larger than the block size', (b) => void b.writeUInt32LE(0x00ffffff, entry('big').inode.blockListPos!), /stored size 16777215 exceeds the block size 4096/],
  ['a data block size with bit 25 set', (b) => void b.writeUInt32LE(0x02000000 | 100, entry('big').inode.blockListPos!), /invalid size field 0x2000064/],
  ['a raw data block of the wrong length', (b) => void b.writeUInt32LE(0x01000000 | 100, entry('big').inode.blockListPos!), /raw block 0 holds 100 bytes, expected 4096/],
  ['a raw data block marked compressed', (b) => {
    const at = entry('big').inode.blockListPos!;
    b.writeUInt32LE(b.readUInt32LE(at) & 0xffffff, at);
  }, /block 0 does not decompress/],
  ['a raw 0-byte data block', (b) => void b.writeUInt32LE(0x01000000, entry('big').inode.blockListPos!), /raw block of 0 bytes/],
  ['data start outside the data area', (b) => void b.writeUInt32LE(10, entry('big').inode.pos + 16), /lies outside the data area/],
  ['data start inside the inode table', (b) => void b.writeUInt32LE(entry('big').inode.pos, entry('big').inode.pos + 16), /lies outside the data area/],
  ['an xattr index beyond the xattr table', (b) => void b.writeUInt32LE(5, entry('x').inode.pos + 52), /xattr index 5 is not below the xattr id count 1/],
  ['an unknown xattr prefix', (b) => void b.writeUInt16LE(7, xattrEntryPos), /unknown type 0x7/],
  ['an xattr name of 0 bytes', (b) => void b.writeUInt16LE(0, xattrEntryPos + 2), /invalid name length 0/],
  ['an xattr value over 64 KiB', (b) => {
    const nameLen = b.readUInt16LE(xattrEntryPos + 2);
    b.writeUInt32LE(70000, xattrEntryPos + 4 + nameLen);
  }, /value size 70000 exceeds 65536/],
  ['an out-of-line xattr value with a bad reference', (b) => {
    const nameLen = b.readUInt16LE(xattrEntryPos + 2);
    b.writeUInt16LE(0x100, xattrEntryPos);
    b.writeUInt32LE(8, xattrEntryPos + 4 + nameLen);
    b.writeBigUInt64LE(0xffffn << 16n, xattrEntryPos + 8 + nameLen);
  }, /points outside the xattr value table/],
];

for (const [name, patch, message] of cases) {
  test(`hostile: ${name}`, { skip }, async () => {
    await expectCorrupt(patch, message);
  });
}

test('hostile: a corrupt block surfaces as an error event on createReadStream', { skip }, async () => {
  const b = Buffer.from(image);
  b.writeUInt32LE(0x00ffffff, entry('big').inode.blockListPos!);
  const img = await openImageBuffer(b, { name: 'h.sqfs' });
  const stream = img.createReadStream('/big');
  await assert.rejects(
    (async () => {
      for await (const chunk of stream) void chunk;
    })(),
    { code: 'IMAGE_CORRUPT', message: /exceeds the block size/ },
  );
  await img.close();
});
