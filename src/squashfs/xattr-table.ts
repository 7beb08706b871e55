/**
 * Extended attributes: a key/value metadata stream holding each distinct set once, then the xattr id table
 * ({u64 kv ref, u32 count, u32 size} per set) as a metadata stream, then a 16-byte header {u64 kv table start,
 * u32 ids, u32 0} followed by the id table's chunk index. Sets xattr_id_table_start (the header).
 */
import type { Compressor } from '../compress/types.js';
import { ByteBuilder } from './bytes.js';
import { toBytes } from '../formats/bytenames.js';
import { XATTR_ID_ENTRY_SIZE, XATTR_PREFIXES, type Superblock } from './format.js';
import { MetadataWriter, encodeIndexedTable, refToU64 } from './metadata.js';
import type { ImageFile } from './output.js';

export interface Xattr {
  /** Prefix index: 0 user., 1 trusted., 2 security. */
  type: number;
  /** Name without the prefix. */
  name: Uint8Array;
  value: Uint8Array;
}

/** Split "security.capability" into its stored form; null when the prefix cannot be stored. */
export function parseXattrName(full: string): { type: number; name: Uint8Array } | null {
  for (let type = 0; type < XATTR_PREFIXES.length; type++) {
    const prefix = XATTR_PREFIXES[type];
    if (full.startsWith(prefix) && full.length > prefix.length) return { type, name: toBytes(full.slice(prefix.length)) };
  }
  return null;
}

export function encodeXattrSet(set: readonly Xattr[]): Uint8Array {
  const b = new ByteBuilder(64);
  for (const x of set) {
    b.u16(x.type); // type (value stored inline)
    b.u16(x.name.length); // name_size
    b.bytes(x.name); // name
    b.u32(x.value.length); // vsize
    b.bytes(x.value); // value
  }
  return b.finish();
}

export async function writeXattrTables(out: ImageFile, compressor: Compressor | null, sets: readonly Xattr[][], sb: Superblock): Promise<void> {
  if (sets.length === 0) {
    sb.xattrIdTable = 0xffffffffffffffffn;
    return;
  }
  const kv = new MetadataWriter(compressor);
  const ids = new ByteBuilder(sets.length * XATTR_ID_ENTRY_SIZE);
  for (const set of sets) {
    const ref = kv.ref;
    const bytes = encodeXattrSet(set);
    await kv.write(bytes);
    ids.u64(refToU64(ref)); // xattr (kv ref)
    ids.u32(set.length); // count
    ids.u32(bytes.length); // size
  }
  const kvStart = out.position;
  const kvTable = await kv.finish();
  await out.appendAll(kvTable.chunks);

  const idTable = await encodeIndexedTable(compressor, ids.finish(), out.position);
  const [idChunks, index] = [idTable.pieces.slice(0, -1), idTable.pieces[idTable.pieces.length - 1]];
  await out.appendAll(idChunks);
  const headerStart = out.position;
  const header = new ByteBuilder(16);
  header.u64(kvStart); // xattr_table_start
  header.u32(sets.length); // xattr_ids
  header.u32(0); // unused
  await out.append(header.finish());
  await out.append(index);
  sb.xattrIdTable = BigInt(headerStart);
}
