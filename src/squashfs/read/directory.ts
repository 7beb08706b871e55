/**
 * Directory listings: runs of {u32 count-1, u32 start_block, u32 inode_number} headers, each followed by `count`
 * entries {u16 offset, s16 inode_number delta, u16 type, u16 name_size-1, name}. A listing occupies exactly
 * file_size - 3 bytes of the directory table.
 *
 * Checks: at most 256 entries per header, inode positions inside the inode table, inode numbers in 1..inode count,
 * basic types 1..7, names of 1..256 bytes without '/' or NUL and not '.' or '..', strictly ascending by bytes.
 */
import { DIR_HEADER_MAX_ENTRIES, MAX_NAME, METADATA_SIZE } from '../format.js';
import { corrupt, printable } from './errors.js';
import { fromBytes } from '../../formats/bytenames.js';
import { NODE_TYPES, type DirInode, type InodeRef, type NodeType } from './inode.js';
import { copyBytes, view } from './bytes.js';
import { MetadataCursor, type MetadataStore } from './metadata.js';
import type { ImageLayout } from './superblock.js';

export const DIR_HEADER_SIZE = 12;
export const DIR_ENTRY_SIZE = 8;

export interface ListingEntry {
  /** The name as a string of bytes (formats/bytenames.ts: bytes that are not UTF-8 kept as U+DC80..U+DCFF). */
  name: string;
  nameBytes: Uint8Array;
  type: NodeType;
  ino: number;
  ref: InodeRef;
}


/** Unsigned byte comparison, the order the format sorts names in. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export function checkName(name: Uint8Array): string | null {
  if (name.length === 0 || name.length > MAX_NAME) return `length ${name.length}`;
  if (name.includes(0x2f)) return "a '/'";
  if (name.includes(0)) return 'a NUL byte';
  if (name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e))) return 'a reserved name';
  return null;
}

export async function readListing(
  store: MetadataStore,
  file: string,
  layout: ImageLayout,
  dir: DirInode,
): Promise<ListingEntry[]> {
  const entries: ListingEntry[] = [];
  if (dir.size <= 3) return entries;
  const inodeTableLen = layout.inodeTable.end - layout.inodeTable.start;
  const inodeCount = layout.superblock.inodeCount;
  const cur = new MetadataCursor(store, file, layout.directoryTable, dir.listing.block, dir.listing.offset, 'directory table');
  const bad = (what: string) => corrupt(file, `directory inode ${dir.ino}: ${what}`, cur.position);
  let left = dir.size - 3;
  let prev: Uint8Array | null = null;
  while (left > 0) {
    if (left < DIR_HEADER_SIZE) throw bad(`listing has ${left} stray bytes at its end`);
    const h = view(await cur.read(DIR_HEADER_SIZE));
    left -= DIR_HEADER_SIZE;
    const count = h.getUint32(0, true) + 1; // count (stored minus one)
    const block = h.getUint32(4, true); // start_block
    const base = h.getUint32(8, true); // inode_number
    if (count > DIR_HEADER_MAX_ENTRIES) throw bad(`directory header announces ${count} entries (at most ${DIR_HEADER_MAX_ENTRIES})`);
    if (block >= inodeTableLen) throw bad(`directory header points at inode block ${block}, outside the inode table`);
    for (let i = 0; i < count; i++) {
      if (left < DIR_ENTRY_SIZE) throw bad('listing ends inside a directory entry');
      const e = view(await cur.read(DIR_ENTRY_SIZE));
      left -= DIR_ENTRY_SIZE;
      const offset = e.getUint16(0, true); // offset
      const delta = e.getInt16(2, true); // inode_offset
      const type = e.getUint16(4, true); // type
      const nameSize = e.getUint16(6, true) + 1; // name_size (stored minus one)
      if (offset >= METADATA_SIZE) throw bad(`entry inode offset ${offset} is not below ${METADATA_SIZE}`);
      if (type < 1 || type > NODE_TYPES.length) throw bad(`entry type ${type} is not a basic inode type`);
      if (nameSize > MAX_NAME) throw bad(`entry name length ${nameSize} exceeds ${MAX_NAME}`);
      if (left < nameSize) throw bad('listing ends inside a name');
      const nameBytes = copyBytes(await cur.read(nameSize));
      left -= nameSize;
      const problem = checkName(nameBytes);
      if (problem) throw bad(`entry name "${printable(fromBytes(nameBytes))}" has ${problem}`);
      const ino = base + delta;
      if (ino < 1 || ino > inodeCount) throw bad(`entry "${printable(fromBytes(nameBytes))}" has inode number ${ino}, outside 1..${inodeCount}`);
      if (prev && compareBytes(prev, nameBytes) >= 0) {
        throw bad(`names are not sorted: "${printable(fromBytes(nameBytes))}" follows "${printable(fromBytes(prev))}"`);
      }
      prev = nameBytes;
      entries.push({ name: fromBytes(nameBytes), nameBytes, type: NODE_TYPES[type - 1], ino, ref: { block, offset } });
    }
  }
  return entries;
}

/** Binary search a sorted listing for an exact name. */
export function findEntry(entries: ListingEntry[], name: Uint8Array): ListingEntry | undefined {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareBytes(entries[mid].nameBytes, name);
    if (c === 0) return entries[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}
