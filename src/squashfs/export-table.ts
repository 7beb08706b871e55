/**
 * Export (NFS lookup) table: the inode ref of inode n at slot n-1, as a metadata stream plus index.
 * Sets lookup_table_start; the writer sets the EXPORT flag.
 */
import type { MetadataCompressor } from './metadata.js';
import { ByteBuilder } from './bytes.js';
import { EXPORT_ENTRY_SIZE, type Superblock } from './format.js';
import { encodeIndexedTable } from './metadata.js';
import type { ImageFile } from './output.js';

export function encodeExportEntries(refs: ArrayLike<number | bigint>): Uint8Array {
  const b = new ByteBuilder(refs.length * EXPORT_ENTRY_SIZE);
  for (let i = 0; i < refs.length; i++) b.u64(refs[i]);
  return b.finish();
}

export async function writeExportTable(out: ImageFile, compressor: MetadataCompressor | null, refs: ArrayLike<number | bigint>, sb: Superblock): Promise<void> {
  const t = encodeIndexedTable(compressor, encodeExportEntries(refs), out.position);
  out.appendAll(t.pieces);
  sb.exportTable = BigInt(t.indexStart);
}
