/**
 * squashfs 4.0 on-disk constants, named as the format describes them. Shared by the writer and the reader.
 * All integers are little-endian.
 */
export const SQUASHFS_MAGIC = 0x73717368; // "hsqs"
export const SUPERBLOCK_SIZE = 96;
export const VERSION_MAJOR = 4;
export const VERSION_MINOR = 0;

/** Metadata streams are cut into chunks of this many uncompressed bytes, each behind a u16 header. */
export const METADATA_SIZE = 8192;
/** Set in a metadata header or fragment/data size when the payload is stored uncompressed. */
export const METADATA_UNCOMPRESSED = 0x8000;
export const DATA_UNCOMPRESSED = 0x1000000;
export const INVALID_FRAGMENT = 0xffffffff;
export const NO_TABLE = 0xffffffffffffffffn;
/** Images are padded with zeros to a multiple of this (loop devices round sizes down to sectors). */
export const DEVICE_BLOCK = 4096;

export const MIN_BLOCK_SIZE = 4096;
export const MAX_BLOCK_SIZE = 1 << 20;
export const MAX_SYMLINK_TARGET = 4095;
export const MAX_NAME = 256;
export const DIR_HEADER_MAX_ENTRIES = 256;
export const FRAGMENT_ENTRY_SIZE = 16;
export const ID_ENTRY_SIZE = 4;
export const EXPORT_ENTRY_SIZE = 8;
export const XATTR_ID_ENTRY_SIZE = 16;

export const enum Compression {
  GZIP = 1,
  LZMA = 2,
  LZO = 3,
  XZ = 4,
  LZ4 = 5,
  ZSTD = 6,
}

export const enum SuperFlag {
  NOI = 0x1,
  NOD = 0x2,
  CHECK = 0x4,
  NOF = 0x8,
  NO_FRAG = 0x10,
  ALWAYS_FRAG = 0x20,
  DUPLICATE = 0x40,
  EXPORT = 0x80,
  NOX = 0x100,
  NO_XATTR = 0x200,
  COMP_OPT = 0x400,
  NOID = 0x800,
}

export const enum InodeType {
  DIR = 1,
  FILE = 2,
  SYMLINK = 3,
  BLKDEV = 4,
  CHRDEV = 5,
  FIFO = 6,
  SOCKET = 7,
  LDIR = 8,
  LREG = 9,
  LSYMLINK = 10,
  LBLKDEV = 11,
  LCHRDEV = 12,
  LFIFO = 13,
  LSOCKET = 14,
}

/** Xattr name prefixes as stored (type field); | XATTR_VALUE_OOL when the value is stored out of line. */
export const XATTR_PREFIXES = ['user.', 'trusted.', 'security.'] as const;
export const XATTR_VALUE_OOL = 0x100;

export interface Superblock {
  inodeCount: number;
  mkfsTime: number;
  blockSize: number;
  fragmentCount: number;
  compression: number;
  blockLog: number;
  flags: number;
  idCount: number;
  versionMajor: number;
  versionMinor: number;
  rootInode: bigint;
  bytesUsed: bigint;
  idTable: bigint;
  xattrIdTable: bigint;
  inodeTable: bigint;
  directoryTable: bigint;
  fragmentTable: bigint;
  exportTable: bigint;
}

export function encodeSuperblock(sb: Superblock): Uint8Array {
  const b = new Uint8Array(SUPERBLOCK_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, SQUASHFS_MAGIC, true); // s_magic
  v.setUint32(4, sb.inodeCount, true); // inodes
  v.setUint32(8, sb.mkfsTime, true); // mkfs_time
  v.setUint32(12, sb.blockSize, true); // block_size
  v.setUint32(16, sb.fragmentCount, true); // fragments
  v.setUint16(20, sb.compression, true); // compression
  v.setUint16(22, sb.blockLog, true); // block_log
  v.setUint16(24, sb.flags, true); // flags
  v.setUint16(26, sb.idCount, true); // no_ids
  v.setUint16(28, sb.versionMajor, true); // s_major
  v.setUint16(30, sb.versionMinor, true); // s_minor
  v.setBigUint64(32, sb.rootInode, true); // root_inode
  v.setBigUint64(40, sb.bytesUsed, true); // bytes_used
  v.setBigUint64(48, sb.idTable, true); // id_table_start
  v.setBigUint64(56, sb.xattrIdTable, true); // xattr_id_table_start
  v.setBigUint64(64, sb.inodeTable, true); // inode_table_start
  v.setBigUint64(72, sb.directoryTable, true); // directory_table_start
  v.setBigUint64(80, sb.fragmentTable, true); // fragment_table_start
  v.setBigUint64(88, sb.exportTable, true); // lookup_table_start
  return b;
}

export function decodeSuperblock(b: Uint8Array): Superblock {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    inodeCount: v.getUint32(4, true),
    mkfsTime: v.getUint32(8, true),
    blockSize: v.getUint32(12, true),
    fragmentCount: v.getUint32(16, true),
    compression: v.getUint16(20, true),
    blockLog: v.getUint16(22, true),
    flags: v.getUint16(24, true),
    idCount: v.getUint16(26, true),
    versionMajor: v.getUint16(28, true),
    versionMinor: v.getUint16(30, true),
    rootInode: v.getBigUint64(32, true),
    bytesUsed: v.getBigUint64(40, true),
    idTable: v.getBigUint64(48, true),
    xattrIdTable: v.getBigUint64(56, true),
    inodeTable: v.getBigUint64(64, true),
    directoryTable: v.getBigUint64(72, true),
    fragmentTable: v.getBigUint64(80, true),
    exportTable: v.getBigUint64(88, true),
  };
}

/** Inode xattr field when the inode has no extended attributes. */
export const INVALID_XATTR = 0xffffffff;
/** Fragment table entries per metadata chunk (8192 / 16). */
export const FRAGMENTS_PER_METADATA = METADATA_SIZE / FRAGMENT_ENTRY_SIZE;
/** Directory file_size counts the implicit "." and ".." as 3 bytes. */
export const DIR_SIZE_BIAS = 3;
export const DIR_HEADER_SIZE = 12;
export const DIR_ENTRY_SIZE = 8;
export const DIR_INDEX_SIZE = 12;
export const XATTR_ID_HEADER_SIZE = 16;
/** no_ids is a u16 that must not be 0. */
export const MAX_IDS = 65535;
export const MAX_DEVICE_MAJOR = 0xfff;
export const MAX_DEVICE_MINOR = 0xfffff;
