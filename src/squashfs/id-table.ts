/**
 * Id table: the distinct uids and gids (u32 each); inodes refer to them by u16 index. Sets id_table_start and no_ids.
 */
import type { MetadataCompressor } from './metadata.js';
import { ByteBuilder } from './bytes.js';
import { ID_ENTRY_SIZE, MAX_IDS, type Superblock } from './format.js';
import { encodeIndexedTable } from './metadata.js';
import type { ImageFile } from './output.js';

export function encodeIds(ids: readonly number[]): Uint8Array {
  const b = new ByteBuilder(ids.length * ID_ENTRY_SIZE);
  for (const id of ids) b.u32(id);
  return b.finish();
}

export async function writeIdTable(out: ImageFile, compressor: MetadataCompressor | null, ids: readonly number[], sb: Superblock): Promise<void> {
  if (ids.length === 0 || ids.length > MAX_IDS) throw new RangeError(`id table with ${ids.length} ids`);
  const t = encodeIndexedTable(compressor, encodeIds(ids), out.position);
  out.appendAll(t.pieces);
  sb.idCount = ids.length;
  sb.idTable = BigInt(t.indexStart);
}
