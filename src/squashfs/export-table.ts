/**
 * Export (NFS lookup) table: the inode ref of inode n at slot n-1, as a metadata stream plus index.
 * Sets lookup_table_start; the writer sets the EXPORT flag.
 */
import type { Compressor } from '../compress/types.js';
import { ByteBuilder } from './bytes.js';
import { EXPORT_ENTRY_SIZE, type Superblock } from './format.js';
import { encodeIndexedTable } from './metadata.js';
import type { ImageFile } from './output.js';

export function encodeExportEntries(refs: readonly bigint[]): Uint8Array {
  const b = new ByteBuilder(refs.length * EXPORT_ENTRY_SIZE);
  for (const r of refs) b.u64(r);
  return b.finish();
}

export async function writeExportTable(out: ImageFile, compressor: Compressor | null, refs: readonly bigint[], sb: Superblock): Promise<void> {
  const t = await encodeIndexedTable(compressor, encodeExportEntries(refs), out.position);
  await out.appendAll(t.pieces);
  sb.exportTable = BigInt(t.indexStart);
}
