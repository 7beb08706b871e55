/**
 * Inodes: a 16-byte common header {u16 type, u16 mode, u16 uid index, u16 gid index, u32 mtime, u32 inode number}
 * and a type-specific body. Decoding checks every field against what the rest of the image allows: id indexes
 * against the id count, inode numbers against the inode count, directory positions against the directory table,
 * fragment indexes against the fragment count, xattr indexes against the xattr id count, sizes against the block
 * size. A file's block list is not read here (it can be long): the inode remembers where it starts.
 */
import { INVALID_FRAGMENT, InodeType, MAX_SYMLINK_TARGET, METADATA_SIZE } from '../format.js';
import { corrupt } from './errors.js';
import { fromBytes } from '../../formats/bytenames.js';
import { copyBytes, view } from './bytes.js';
import { MetadataCursor, type MetadataStore } from './metadata.js';
import type { ImageLayout } from './superblock.js';
import { NO_XATTR } from './xattr.js';

export type NodeType = 'dir' | 'file' | 'symlink' | 'block' | 'char' | 'fifo' | 'socket';

/** Basic inode type (1..7) to node type; extended types are basic + 7. */
export const NODE_TYPES: readonly NodeType[] = ['dir', 'file', 'symlink', 'block', 'char', 'fifo', 'socket'];
/** S_IFMT bits for each basic type, in NODE_TYPES order. */
const S_IFMT_OF = [0o040000, 0o100000, 0o120000, 0o060000, 0o020000, 0o010000, 0o140000];

export interface InodeRef {
  /** Position of the inode's metadata block relative to the inode table start. */
  block: number;
  offset: number;
}

interface InodeCommon {
  ref: InodeRef;
  /** Inode type as stored (1..14). */
  inodeType: number;
  type: NodeType;
  /** Permission bits (07777). */
  mode: number;
  uidIndex: number;
  gidIndex: number;
  mtime: number;
  ino: number;
  nlink: number;
  /** Xattr id, or NO_XATTR. */
  xattr: number;
}

export interface DirInode extends InodeCommon {
  type: 'dir';
  /** Listing position: block relative to the directory table, offset inside it. */
  listing: { block: number; offset: number };
  /** Directory file_size: listing bytes + 3. */
  size: number;
  parent: number;
}

export interface FileInode extends InodeCommon {
  type: 'file';
  /** Absolute position of the first stored data block. */
  start: number;
  size: number;
  /** Fragment index, or INVALID_FRAGMENT. */
  fragment: number;
  fragmentOffset: number;
  /** Number of entries in the block list. */
  blockCount: number;
  /** Where the block list starts in the inode table. */
  blockList: InodeRef;
  sparse: number;
}

export interface SymlinkInode extends InodeCommon {
  type: 'symlink';
  target: string;
  targetBytes: Uint8Array;
}

export interface DeviceInode extends InodeCommon {
  type: 'block' | 'char';
  rdev: number;
  major: number;
  minor: number;
}

export interface IpcInode extends InodeCommon {
  type: 'fifo' | 'socket';
}

export type Inode = DirInode | FileInode | SymlinkInode | DeviceInode | IpcInode;

export interface InodeContext {
  store: MetadataStore;
  file: string;
  layout: ImageLayout;
  xattrCount: number;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export async function readInode(ctx: InodeContext, ref: InodeRef): Promise<Inode> {
  const { file, layout } = ctx;
  const sb = layout.superblock;
  const table = layout.inodeTable;
  if (ref.block >= table.end - table.start || ref.offset >= METADATA_SIZE) {
    throw corrupt(file, `inode reference (block ${ref.block}, offset ${ref.offset}) points outside the inode table`, table.start);
  }
  const cur = new MetadataCursor(ctx.store, file, table, ref.block, ref.offset, 'inode table');
  const at = cur.position;
  const bad = (what: string) => corrupt(file, `inode at block ${ref.block} offset ${ref.offset}: ${what}`, at);

  const h = view(await cur.read(16));
  const inodeType = h.getUint16(0, true); // inode_type
  const rawMode = h.getUint16(2, true); // mode
  const uidIndex = h.getUint16(4, true); // uid
  const gidIndex = h.getUint16(6, true); // guid
  const mtime = h.getUint32(8, true); // mtime
  const ino = h.getUint32(12, true); // inode_number
  if (inodeType < InodeType.DIR || inodeType > InodeType.LSOCKET) throw bad(`unknown inode type ${inodeType}`);
  const basic = inodeType > InodeType.SOCKET ? inodeType - 7 : inodeType;
  const extended = inodeType > InodeType.SOCKET;
  const type = NODE_TYPES[basic - 1];
  const fmt = rawMode & 0o170000;
  if (fmt !== 0 && fmt !== S_IFMT_OF[basic - 1]) throw bad(`mode 0${rawMode.toString(8)} has file type bits that contradict inode type ${inodeType}`);
  if (uidIndex >= sb.idCount) throw bad(`uid index ${uidIndex} is not below the id count ${sb.idCount}`);
  if (gidIndex >= sb.idCount) throw bad(`gid index ${gidIndex} is not below the id count ${sb.idCount}`);
  if (ino === 0 || ino > sb.inodeCount) throw bad(`inode number ${ino} is outside 1..${sb.inodeCount}`);
  const common = { ref, inodeType, mode: rawMode & 0o7777, uidIndex, gidIndex, mtime, ino };

  const checkXattr = (x: number): number => {
    if (x !== NO_XATTR && x >= ctx.xattrCount) throw bad(`xattr index ${x} is not below the xattr id count ${ctx.xattrCount}`);
    return x;
  };
  const checkNlink = (n: number): number => {
    if (n === 0) throw bad('link count is 0');
    return n;
  };
  const dirTableLen = layout.directoryTable.end - layout.directoryTable.start;

  switch (type) {
    case 'dir': {
      let start: number, nlink: number, size: number, offset: number, parent: number, xattr = NO_XATTR;
      if (!extended) {
        const b = view(await cur.read(16));
        start = b.getUint32(0, true); // start_block
        nlink = b.getUint32(4, true); // nlink
        size = b.getUint16(8, true); // file_size
        offset = b.getUint16(10, true); // offset
        parent = b.getUint32(12, true); // parent_inode
      } else {
        const b = view(await cur.read(24));
        nlink = b.getUint32(0, true); // nlink
        size = b.getUint32(4, true); // file_size
        start = b.getUint32(8, true); // start_block
        parent = b.getUint32(12, true); // parent_inode
        offset = b.getUint16(18, true); // offset (after u16 i_count)
        xattr = checkXattr(b.getUint32(20, true)); // xattr
      }
      if (size > 3) {
        if (start >= dirTableLen) throw bad(`directory listing block ${start} is outside the directory table`);
        if (offset >= METADATA_SIZE) throw bad(`directory listing offset ${offset} is not below ${METADATA_SIZE}`);
      }
      return { ...common, type, nlink: checkNlink(nlink), xattr, listing: { block: start, offset }, size, parent };
    }
    case 'file': {
      let start: bigint, size: bigint, sparse = 0n, nlink = 1, fragment: number, fragmentOffset: number, xattr = NO_XATTR;
      if (!extended) {
        const b = view(await cur.read(16));
        start = BigInt(b.getUint32(0, true)); // start_block
        fragment = b.getUint32(4, true); // fragment
        fragmentOffset = b.getUint32(8, true); // offset
        size = BigInt(b.getUint32(12, true)); // file_size
      } else {
        const b = view(await cur.read(40));
        start = b.getBigUint64(0, true); // start_block
        size = b.getBigUint64(8, true); // file_size
        sparse = b.getBigUint64(16, true); // sparse
        nlink = checkNlink(b.getUint32(24, true)); // nlink
        fragment = b.getUint32(28, true); // fragment
        fragmentOffset = b.getUint32(32, true); // offset
        xattr = checkXattr(b.getUint32(36, true)); // xattr
      }
      if (size > MAX_SAFE) throw bad(`file size ${size} is too large`);
      if (start > MAX_SAFE) throw bad(`data start ${start} is too large`);
      if (sparse > size) throw bad(`sparse byte count ${sparse} exceeds the file size ${size}`);
      const n = Number(size);
      const bs = sb.blockSize;
      const tail = n % bs;
      let blockCount: number;
      if (fragment !== INVALID_FRAGMENT) {
        if (tail === 0) throw bad(`file of ${n} bytes has no tail but uses fragment ${fragment}`);
        if (fragment >= sb.fragmentCount) throw bad(`fragment index ${fragment} is not below the fragment count ${sb.fragmentCount}`);
        if (fragmentOffset >= bs || fragmentOffset + tail > bs) throw bad(`fragment offset ${fragmentOffset} + tail ${tail} exceeds the block size ${bs}`);
        blockCount = Math.floor(n / bs);
      } else {
        blockCount = Math.ceil(n / bs);
      }
      return {
        ...common, type, nlink, xattr, start: Number(start), size: n, fragment, fragmentOffset, blockCount,
        blockList: cur.ref, sparse: Number(sparse),
      };
    }
    case 'symlink': {
      const b = view(await cur.read(8));
      const nlink = checkNlink(b.getUint32(0, true)); // nlink
      const targetSize = b.getUint32(4, true); // symlink_size
      if (targetSize === 0 || targetSize > MAX_SYMLINK_TARGET) throw bad(`symlink target length ${targetSize} is outside 1..${MAX_SYMLINK_TARGET}`);
      const targetBytes = copyBytes(await cur.read(targetSize));
      if (targetBytes.includes(0)) throw bad('symlink target contains a NUL byte');
      const xattr = extended ? checkXattr(view(await cur.read(4)).getUint32(0, true)) : NO_XATTR;
      return { ...common, type, nlink, xattr, target: fromBytes(targetBytes), targetBytes };
    }
    case 'block':
    case 'char': {
      const b = view(await cur.read(extended ? 12 : 8));
      const nlink = checkNlink(b.getUint32(0, true)); // nlink
      const rdev = b.getUint32(4, true); // rdev
      const xattr = extended ? checkXattr(b.getUint32(8, true)) : NO_XATTR;
      const major = (rdev >>> 8) & 0xfff;
      const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
      return { ...common, type, nlink, xattr, rdev, major, minor };
    }
    default: {
      const b = view(await cur.read(extended ? 8 : 4));
      const nlink = checkNlink(b.getUint32(0, true)); // nlink
      const xattr = extended ? checkXattr(b.getUint32(4, true)) : NO_XATTR;
      return { ...common, type, nlink, xattr };
    }
  }
}
