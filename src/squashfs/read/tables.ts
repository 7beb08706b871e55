/**
 * Tables of fixed-size entries reached through an index array: ids, fragments (and the xattr id table, see
 * xattr.ts). Every block but the last holds exactly METADATA_SIZE bytes; the last holds the remainder.
 */
import { DATA_UNCOMPRESSED, METADATA_SIZE } from '../format.js';
import { corrupt } from './errors.js';
import { view } from './bytes.js';
import type { MetadataStore } from './metadata.js';
import type { IndexedTable } from './superblock.js';

/** Bits a data or fragment block size may use: 24 bits of length and the raw flag. */
export const BLOCK_SIZE_MASK = DATA_UNCOMPRESSED - 1;
export const VALID_BLOCK_BITS = DATA_UNCOMPRESSED | BLOCK_SIZE_MASK;

/** The bytes of entry `i` of an indexed table (a view into the cached block: do not modify). */
export async function tableEntry(store: MetadataStore, file: string, table: IndexedTable, i: number): Promise<Uint8Array> {
  if (!Number.isInteger(i) || i < 0 || i >= table.count) {
    throw corrupt(file, `${table.name} index ${i} is out of range (the table has ${table.count} entries)`, table.indexStart);
  }
  const at = i * table.entrySize;
  const n = Math.floor(at / METADATA_SIZE);
  const pos = table.blocks[n];
  const end = n + 1 < table.blocks.length ? table.blocks[n + 1] : table.indexStart;
  const block = await store.block(pos, end, `${table.name} table`);
  const expected = n + 1 < table.blocks.length ? METADATA_SIZE : table.count * table.entrySize - n * METADATA_SIZE;
  if (block.data.length !== expected) {
    throw corrupt(file, `${table.name} table block ${n} holds ${block.data.length} bytes, expected ${expected}`, pos);
  }
  if (block.next !== end) {
    throw corrupt(file, `${table.name} table block ${n} does not end where the next one starts (${end})`, pos);
  }
  const within = at - n * METADATA_SIZE;
  return block.data.subarray(within, within + table.entrySize);
}

/** The whole id table (at most 65536 u32 entries, so it is read at open). */
export async function readIds(store: MetadataStore, file: string, table: IndexedTable): Promise<Uint32Array> {
  const ids = new Uint32Array(table.count);
  for (let i = 0; i < table.count; i++) {
    const e = await tableEntry(store, file, table, i);
    ids[i] = (e[0] | (e[1] << 8) | (e[2] << 16) | (e[3] << 24)) >>> 0;
  }
  return ids;
}

export interface FragmentEntry {
  /** Absolute position of the stored fragment block. */
  start: number;
  /** Stored size in bytes. */
  storedSize: number;
  raw: boolean;
}

/**
 * Fragment entry `i`: {u64 start, u32 size (| DATA_UNCOMPRESSED), u32 unused}. The stored block must lie in the data
 * area [dataStart, inode table) and be at most one block long.
 */
export async function readFragment(
  store: MetadataStore,
  file: string,
  table: IndexedTable | null,
  i: number,
  limits: { dataStart: number; dataEnd: number; blockSize: number },
  usedAt: number,
): Promise<FragmentEntry> {
  if (!table) throw corrupt(file, `fragment index ${i} used but the image has no fragment table`, usedAt);
  const e = await tableEntry(store, file, table, i);
  const v = view(e);
  const start = v.getBigUint64(0, true); // start_block
  const size = v.getUint32(8, true); // size
  const where = table.blocks[Math.floor((i * table.entrySize) / METADATA_SIZE)];
  if ((size & ~VALID_BLOCK_BITS) !== 0) throw corrupt(file, `fragment ${i} has an invalid size field 0x${size.toString(16)}`, where);
  const storedSize = size & BLOCK_SIZE_MASK;
  if (storedSize === 0 || storedSize > limits.blockSize) {
    throw corrupt(file, `fragment ${i} stored size ${storedSize} is outside 1..${limits.blockSize}`, where);
  }
  if (start < BigInt(limits.dataStart) || start + BigInt(storedSize) > BigInt(limits.dataEnd)) {
    throw corrupt(file, `fragment ${i} block (${start}, ${storedSize} bytes) lies outside the data area`, where);
  }
  return { start: Number(start), storedSize, raw: (size & DATA_UNCOMPRESSED) !== 0 };
}
