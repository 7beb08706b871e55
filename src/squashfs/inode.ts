/**
 * Inodes: a common 16-byte header, then the type's fields. Each encoder picks the basic or the extended form
 * itself, as mksquashfs does: extended only for xattrs, nlink > 1 on a file, 64-bit sizes, and directories with
 * more than 256 entries, a directory index or a listing of 64 KiB or more.
 */
import { ByteBuilder } from './bytes.js';
import { DIR_HEADER_MAX_ENTRIES, DIR_SIZE_BIAS, INVALID_FRAGMENT, INVALID_XATTR, InodeType } from './format.js';

export interface InodeHeader {
  mode: number;
  uidIndex: number;
  gidIndex: number;
  mtime: number;
  number: number;
}

function header(b: ByteBuilder, type: InodeType, h: InodeHeader): void {
  b.u16(type); // inode_type
  b.u16(h.mode & 0o7777); // mode: permission bits only
  b.u16(h.uidIndex); // uid (id table index)
  b.u16(h.gidIndex); // guid (id table index)
  b.u32(h.mtime); // mtime
  b.u32(h.number); // inode_number
}

export interface DirIndexEntry {
  /** Byte offset of the header inside the listing. */
  index: number;
  /** Directory-table position of the chunk holding the header. */
  startBlock: number;
  /** Name of the header's first entry. */
  name: Uint8Array;
}

export interface DirInode {
  /** Directory-table position of the chunk where the listing starts, and the offset in it. */
  startBlock: number;
  offset: number;
  /** Listing bytes (headers + entries), without the bias of 3. */
  listingSize: number;
  /** Entries in the listing (more than one header's worth makes mksquashfs use the extended form; so do we). */
  entries: number;
  nlink: number;
  parent: number;
  xattr: number;
  index: DirIndexEntry[];
}

/** `into`: a builder to reuse (the result is then a view of it, valid until its next use). */
export function encodeDirInode(h: InodeHeader, d: DirInode, into?: ByteBuilder): Uint8Array {
  const fileSize = d.listingSize + DIR_SIZE_BIAS;
  const b = into ? into.reset() : new ByteBuilder(40);
  if (fileSize <= 0xffff && d.xattr === INVALID_XATTR && d.index.length === 0 && d.entries <= DIR_HEADER_MAX_ENTRIES) {
    header(b, InodeType.DIR, h);
    b.u32(d.startBlock); // start_block
    b.u32(d.nlink); // nlink
    b.u16(fileSize); // file_size
    b.u16(d.offset); // offset
    b.u32(d.parent); // parent_inode
    return b.finish();
  }
  header(b, InodeType.LDIR, h);
  b.u32(d.nlink); // nlink
  b.u32(fileSize); // file_size
  b.u32(d.startBlock); // start_block
  b.u32(d.parent); // parent_inode
  b.u16(d.index.length); // i_count
  b.u16(d.offset); // offset
  b.u32(d.xattr); // xattr
  for (const e of d.index) {
    b.u32(e.index); // index
    b.u32(e.startBlock); // start_block
    b.u32(e.name.length - 1); // size
    b.bytes(e.name); // name
  }
  return b.finish();
}

export interface FileInode {
  /** Absolute position of the first stored block (0 when there are none). */
  start: number;
  size: number;
  /** Bytes saved by sparse (all-zero) blocks. */
  sparse: number;
  nlink: number;
  fragment: number;
  fragmentOffset: number;
  xattr: number;
  /** Block list: stored size | DATA_UNCOMPRESSED when raw; 0 for a sparse block. */
  blocks: ArrayLike<number>;
}

const U32_LIMIT = 2 ** 32;

export function encodeFileInode(h: InodeHeader, f: FileInode, into?: ByteBuilder): Uint8Array {
  const b = into ? into.reset() : new ByteBuilder(56 + f.blocks.length * 4);
  // Sparse blocks alone do not call for the extended form (mksquashfs keeps such files basic too).
  const basic = f.nlink === 1 && f.xattr === INVALID_XATTR && f.start < U32_LIMIT && f.size < U32_LIMIT;
  if (basic) {
    header(b, InodeType.FILE, h);
    b.u32(f.start); // blocks_start
    b.u32(f.fragment); // fragment
    b.u32(f.fragment === INVALID_FRAGMENT ? 0 : f.fragmentOffset); // offset
    b.u32(f.size); // file_size
  } else {
    header(b, InodeType.LREG, h);
    b.u64(f.start); // blocks_start
    b.u64(f.size); // file_size
    b.u64(f.sparse); // sparse
    b.u32(f.nlink); // nlink
    b.u32(f.fragment); // fragment
    b.u32(f.fragment === INVALID_FRAGMENT ? 0 : f.fragmentOffset); // offset
    b.u32(f.xattr); // xattr
  }
  for (let i = 0; i < f.blocks.length; i++) b.u32(f.blocks[i]); // block_sizes[]
  return b.finish();
}

export function encodeSymlinkInode(h: InodeHeader, s: { nlink: number; target: Uint8Array; xattr: number }, into?: ByteBuilder): Uint8Array {
  const b = into ? into.reset() : new ByteBuilder(28 + s.target.length);
  header(b, s.xattr === INVALID_XATTR ? InodeType.SYMLINK : InodeType.LSYMLINK, h);
  b.u32(s.nlink); // nlink
  b.u32(s.target.length); // symlink_size
  b.bytes(s.target); // symlink (no NUL)
  if (s.xattr !== INVALID_XATTR) b.u32(s.xattr); // xattr
  return b.finish();
}

/** The kernel's "new" encoding of a device number in a u32. */
export function encodeRdev(major: number, minor: number): number {
  return ((major << 8) | (minor & 0xff) | ((minor & ~0xff) << 12)) >>> 0;
}

export function encodeDeviceInode(
  h: InodeHeader,
  d: { kind: 'char' | 'block'; nlink: number; major: number; minor: number; xattr: number },
  into?: ByteBuilder,
): Uint8Array {
  const ext = d.xattr !== INVALID_XATTR;
  const type = d.kind === 'char' ? (ext ? InodeType.LCHRDEV : InodeType.CHRDEV) : ext ? InodeType.LBLKDEV : InodeType.BLKDEV;
  const b = into ? into.reset() : new ByteBuilder(28);
  header(b, type, h);
  b.u32(d.nlink); // nlink
  b.u32(encodeRdev(d.major, d.minor)); // rdev
  if (ext) b.u32(d.xattr); // xattr
  return b.finish();
}

export function encodeIpcInode(h: InodeHeader, d: { kind: 'fifo' | 'socket'; nlink: number; xattr: number }, into?: ByteBuilder): Uint8Array {
  const ext = d.xattr !== INVALID_XATTR;
  const type = d.kind === 'fifo' ? (ext ? InodeType.LFIFO : InodeType.FIFO) : ext ? InodeType.LSOCKET : InodeType.SOCKET;
  const b = into ? into.reset() : new ByteBuilder(24);
  header(b, type, h);
  b.u32(d.nlink); // nlink
  if (ext) b.u32(d.xattr); // xattr
  return b.finish();
}

/** The basic type directory entries carry, whatever form the inode has. */
export function basicType(kind: 'dir' | 'file' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket'): InodeType {
  switch (kind) {
    case 'dir': return InodeType.DIR;
    case 'file': return InodeType.FILE;
    case 'symlink': return InodeType.SYMLINK;
    case 'block': return InodeType.BLKDEV;
    case 'char': return InodeType.CHRDEV;
    case 'fifo': return InodeType.FIFO;
    case 'socket': return InodeType.SOCKET;
  }
}
