/**
 * The superblock and the table layout it implies, validated before anything else is read.
 *
 * Tables are checked from the end of the image backwards, the way the kernel does: each table's index array must
 * end where the next table's first metadata block starts (exactly for the id, export and xattr tables, at or
 * before for fragments), index entries are strictly increasing and at most one stored metadata block apart, and
 * inode table < directory table <= the first block of the next table. Every later read is confined to the region
 * found here, so an on-disk offset can never point outside its table.
 */
import {
  Compression,
  MAX_BLOCK_SIZE,
  METADATA_SIZE,
  METADATA_UNCOMPRESSED,
  MIN_BLOCK_SIZE,
  NO_TABLE,
  SQUASHFS_MAGIC,
  SUPERBLOCK_SIZE,
  SuperFlag,
  VERSION_MAJOR,
  VERSION_MINOR,
  XATTR_ID_ENTRY_SIZE,
  decodeSuperblock,
  type Superblock,
  EXPORT_ENTRY_SIZE,
  FRAGMENT_ENTRY_SIZE,
  ID_ENTRY_SIZE,
} from '../format.js';
import { copyBytes, view } from './bytes.js';
import { corrupt, unsupported } from './errors.js';
import type { ByteSource } from './source.js';

/** A stored metadata block is a u16 header plus at most METADATA_SIZE bytes. */
export const MAX_STORED_METADATA = METADATA_SIZE + 2;
/** Size of the xattr id table header in front of its index array. */
export const XATTR_TABLE_HEADER = 16;

/** Absolute byte range [start, end) of a metadata stream. */
export interface Region {
  start: number;
  end: number;
}

/** A metadata stream of fixed-size entries located through a u64 index array (id, fragment, export, xattr id). */
export interface IndexedTable {
  name: string;
  entrySize: number;
  count: number;
  /** Absolute position of each metadata block, from the index array. */
  blocks: number[];
  /** Where the index array starts: the last block must end before it. */
  indexStart: number;
}

export interface ImageLayout {
  superblock: Superblock;
  /** Bytes after the superblock and the compressor options block: where data blocks may start. */
  dataStart: number;
  optionsBlock: Uint8Array | null;
  inodeTable: Region;
  directoryTable: Region;
  fragments: IndexedTable | null;
  exports: IndexedTable | null;
  ids: IndexedTable;
  xattrs: { kv: Region; ids: IndexedTable } | null;
  /** Root inode: position of its metadata block relative to the inode table, and offset inside it. */
  root: { block: number; offset: number };
}

const FIELD = {
  inodeCount: 4,
  blockSize: 12,
  fragmentCount: 16,
  compression: 20,
  blockLog: 22,
  idCount: 26,
  version: 28,
  rootInode: 32,
  bytesUsed: 40,
  idTable: 48,
  xattrIdTable: 56,
  inodeTable: 64,
  directoryTable: 72,
  fragmentTable: 80,
  exportTable: 88,
} as const;

/** Number of metadata blocks (and so index entries) a table of `count` entries of `entrySize` bytes needs. */
export function tableBlocks(count: number, entrySize: number): number {
  return Math.ceil((count * entrySize) / METADATA_SIZE);
}

export async function readLayout(source: ByteSource, file: string): Promise<ImageLayout> {
  if (source.size < SUPERBLOCK_SIZE) {
    throw corrupt(file, `file is ${source.size} bytes, too small for a squashfs superblock`, 0);
  }
  const head = await source.read(0, SUPERBLOCK_SIZE, 'superblock');
  const sb = decodeSuperblock(head);
  const magic = view(head).getUint32(0, true); // s_magic
  if (magic !== SQUASHFS_MAGIC) throw corrupt(file, `not a squashfs image (magic 0x${magic.toString(16).padStart(8, '0')})`, 0);
  if (sb.versionMajor !== VERSION_MAJOR || sb.versionMinor !== VERSION_MINOR) {
    throw unsupported(file, `squashfs version ${sb.versionMajor}.${sb.versionMinor} is not supported (only 4.0)`);
  }
  if (sb.compression < Compression.GZIP || sb.compression > Compression.ZSTD) {
    throw corrupt(file, `unknown compression id ${sb.compression} in the superblock`, FIELD.compression);
  }
  const bs = sb.blockSize;
  if (bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) {
    throw corrupt(file, `block size ${bs} is not a power of two between ${MIN_BLOCK_SIZE} and ${MAX_BLOCK_SIZE}`, FIELD.blockSize);
  }
  if (2 ** sb.blockLog !== bs) throw corrupt(file, `block_log ${sb.blockLog} does not match block size ${bs}`, FIELD.blockLog);
  if (sb.inodeCount === 0) throw corrupt(file, 'inode count is 0 (the root directory needs one)', FIELD.inodeCount);
  if (sb.idCount === 0) throw corrupt(file, 'id count is 0 (the id table needs at least one entry)', FIELD.idCount);
  if (sb.bytesUsed < BigInt(SUPERBLOCK_SIZE) || sb.bytesUsed > BigInt(source.size)) {
    throw corrupt(file, `bytes_used ${sb.bytesUsed} is outside ${SUPERBLOCK_SIZE}..${source.size} (the file size)`, FIELD.bytesUsed);
  }
  const bytesUsed = Number(sb.bytesUsed);

  /** A table start from the superblock as a number: must lie inside [SUPERBLOCK_SIZE, limit]. */
  const pointer = (value: bigint, name: string, field: number, limit: number): number => {
    if (value < BigInt(SUPERBLOCK_SIZE) || value > BigInt(limit)) {
      throw corrupt(file, `${name} start ${value} is outside ${SUPERBLOCK_SIZE}..${limit}`, field);
    }
    return Number(value);
  };

  // Optional compressor options block right after the superblock: a raw metadata block.
  let optionsBlock: Uint8Array | null = null;
  let dataStart = SUPERBLOCK_SIZE;
  if (sb.flags & SuperFlag.COMP_OPT) {
    const head = await source.read(SUPERBLOCK_SIZE, 2, 'compressor options header');
    const h = head[0] | (head[1] << 8);
    const len = h & ~METADATA_UNCOMPRESSED;
    if (!(h & METADATA_UNCOMPRESSED)) throw corrupt(file, 'compressor options block is not stored uncompressed', SUPERBLOCK_SIZE);
    if (len === 0 || len > METADATA_SIZE) throw corrupt(file, `compressor options block length ${len} is invalid`, SUPERBLOCK_SIZE);
    optionsBlock = copyBytes(await source.read(SUPERBLOCK_SIZE + 2, len, 'compressor options block'));
    dataStart = SUPERBLOCK_SIZE + 2 + len;
  }

  // Walk the tables from the end backwards; `next` is where the following table's first block starts.
  let next = bytesUsed;
  let xattrs: ImageLayout['xattrs'] = null;
  let xattrHeaderAt = -1;
  let xattrCount = 0;
  let kvStart = -1;
  if (sb.xattrIdTable !== NO_TABLE) {
    xattrHeaderAt = pointer(sb.xattrIdTable, 'xattr id table', FIELD.xattrIdTable, bytesUsed - XATTR_TABLE_HEADER);
    const head = view(await source.read(xattrHeaderAt, XATTR_TABLE_HEADER, 'xattr id table header'));
    const kv = head.getBigUint64(0, true); // xattr_table_start
    xattrCount = head.getUint32(8, true); // xattr_ids
    if (xattrCount === 0) throw corrupt(file, 'xattr id table has 0 entries', xattrHeaderAt + 8);
    const indexStart = xattrHeaderAt + XATTR_TABLE_HEADER;
    const indexLen = tableBlocks(xattrCount, XATTR_ID_ENTRY_SIZE) * 8;
    if (indexStart + indexLen !== bytesUsed) {
      throw corrupt(file, `xattr id index (${xattrCount} ids) does not end at bytes_used ${bytesUsed}`, indexStart);
    }
    if (kv >= BigInt(xattrHeaderAt) || kv < BigInt(SUPERBLOCK_SIZE)) {
      throw corrupt(file, `xattr value table start ${kv} is not before the xattr id table`, xattrHeaderAt);
    }
    kvStart = Number(kv);
    next = kvStart;
  }

  const idIndexStart = pointer(sb.idTable, 'id table', FIELD.idTable, next);
  const idIndexLen = tableBlocks(sb.idCount, ID_ENTRY_SIZE) * 8;
  if (idIndexStart + idIndexLen !== next) {
    throw corrupt(file, `id index (${sb.idCount} ids) does not end where the next table starts (${next})`, idIndexStart);
  }
  const idBlocks = await readIndex(source, file, 'id', idIndexStart, tableBlocks(sb.idCount, ID_ENTRY_SIZE));
  next = idBlocks[0];

  let exportIndexStart = -1;
  let exportBlocks: number[] | null = null;
  if (sb.exportTable !== NO_TABLE) {
    exportIndexStart = pointer(sb.exportTable, 'export table', FIELD.exportTable, next);
    const n = tableBlocks(sb.inodeCount, EXPORT_ENTRY_SIZE);
    if (exportIndexStart + n * 8 !== next) {
      throw corrupt(file, `export index (${sb.inodeCount} inodes) does not end where the id table starts (${next})`, exportIndexStart);
    }
    exportBlocks = await readIndex(source, file, 'export', exportIndexStart, n);
    next = exportBlocks[0];
  }

  let fragmentIndexStart = -1;
  let fragmentBlocks: number[] | null = null;
  if (sb.fragmentCount > 0) {
    fragmentIndexStart = pointer(sb.fragmentTable, 'fragment table', FIELD.fragmentTable, next);
    const n = tableBlocks(sb.fragmentCount, FRAGMENT_ENTRY_SIZE);
    if (fragmentIndexStart + n * 8 > next) {
      throw corrupt(file, `fragment index (${sb.fragmentCount} fragments) runs into the next table (${next})`, fragmentIndexStart);
    }
    fragmentBlocks = await readIndex(source, file, 'fragment', fragmentIndexStart, n);
    next = fragmentBlocks[0];
  }

  const directoryStart = pointer(sb.directoryTable, 'directory table', FIELD.directoryTable, next);
  const inodeStart = pointer(sb.inodeTable, 'inode table', FIELD.inodeTable, bytesUsed);
  if (inodeStart >= directoryStart) {
    throw corrupt(file, `inode table (${inodeStart}) does not start before the directory table (${directoryStart})`, FIELD.inodeTable);
  }
  if (inodeStart < dataStart) {
    throw corrupt(file, `inode table (${inodeStart}) overlaps the compressor options block`, FIELD.inodeTable);
  }

  // Lower bounds: each table's blocks come after the previous table's index (layout order of the format).
  let lower = next; // directory table end == first block of the next table
  if (fragmentBlocks) {
    checkLower(file, 'fragment', fragmentBlocks, directoryStart, fragmentIndexStart);
    lower = fragmentIndexStart + fragmentBlocks.length * 8;
  }
  if (exportBlocks) {
    checkLower(file, 'export', exportBlocks, lower, exportIndexStart);
    lower = exportIndexStart + exportBlocks.length * 8;
  }
  checkLower(file, 'id', idBlocks, lower, idIndexStart);
  lower = idIndexStart + idIndexLen;
  if (xattrHeaderAt >= 0) {
    if (kvStart < lower) throw corrupt(file, `xattr value table (${kvStart}) overlaps the id table`, xattrHeaderAt);
    const indexStart = xattrHeaderAt + XATTR_TABLE_HEADER;
    const blocks = await readIndex(source, file, 'xattr id', indexStart, tableBlocks(xattrCount, XATTR_ID_ENTRY_SIZE), xattrHeaderAt);
    checkLower(file, 'xattr id', blocks, kvStart, xattrHeaderAt);
    xattrs = {
      kv: { start: kvStart, end: blocks[0] },
      ids: { name: 'xattr id', entrySize: XATTR_ID_ENTRY_SIZE, count: xattrCount, blocks, indexStart: xattrHeaderAt },
    };
  }

  const root = sb.rootInode;
  const inodeTable = { start: inodeStart, end: directoryStart };
  const rootBlock = Number((root >> 16n) & 0xffffffffn);
  const rootOffset = Number(root & 0xffffn);
  if (root >> 48n !== 0n || rootBlock >= inodeTable.end - inodeTable.start || rootOffset >= METADATA_SIZE) {
    throw corrupt(file, `root inode reference 0x${root.toString(16)} points outside the inode table`, FIELD.rootInode);
  }

  return {
    superblock: sb,
    dataStart,
    optionsBlock,
    inodeTable,
    directoryTable: { start: directoryStart, end: next },
    fragments: fragmentBlocks && {
      name: 'fragment',
      entrySize: FRAGMENT_ENTRY_SIZE,
      count: sb.fragmentCount,
      blocks: fragmentBlocks,
      indexStart: fragmentIndexStart,
    },
    exports: exportBlocks && {
      name: 'export',
      entrySize: EXPORT_ENTRY_SIZE,
      count: sb.inodeCount,
      blocks: exportBlocks,
      indexStart: exportIndexStart,
    },
    ids: { name: 'id', entrySize: ID_ENTRY_SIZE, count: sb.idCount, blocks: idBlocks, indexStart: idIndexStart },
    xattrs,
    root: { block: rootBlock, offset: rootOffset },
  };
}

/**
 * Read an index array of `n` u64 absolute block positions (its location was already checked against the file):
 * strictly increasing, each block at most one stored metadata block long, the last one ending before the index.
 */
async function readIndex(source: ByteSource, file: string, name: string, at: number, n: number, blocksEnd = at): Promise<number[]> {
  const v = view(await source.read(at, n * 8, `${name} index`));
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const p = v.getBigUint64(i * 8, true);
    if (p >= BigInt(blocksEnd)) throw corrupt(file, `${name} index entry ${i} (${p}) is not before the index`, at + i * 8);
    out[i] = Number(p);
  }
  for (let i = 0; i < n; i++) {
    const end = i + 1 < n ? out[i + 1] : blocksEnd;
    if (end <= out[i] || end - out[i] > MAX_STORED_METADATA) {
      throw corrupt(file, `${name} index entry ${i} (${out[i]}) is not followed by a valid metadata block`, at + i * 8);
    }
  }
  return out;
}

/** The first block of a table must come after the end of the previous table (layout order of the format). */
function checkLower(file: string, name: string, blocks: number[], lower: number, indexStart: number): void {
  if (blocks[0] < lower) {
    throw corrupt(file, `${name} table block 0 (${blocks[0]}) starts before the end of the previous table (${lower})`, indexStart);
  }
}
