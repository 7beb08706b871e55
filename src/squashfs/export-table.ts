/**
 * Export (NFS lookup) table: the inode ref of inode n at slot n-1, as a metadata stream plus index.
 * Sets lookup_table_start; the writer sets the EXPORT flag.
 */
import type { MetadataCompressor } from './metadata.js';
import { ByteBuilder } from './bytes.js';
import { EXPORT_ENTRY_SIZE, type Superblock } from './format.js';
import { encodeIndexedTable } from './metadata.js';
import type { ImageFile } from './output.js';

/** The entries of inodes 1..count: `refOf(i)` is the ref of inode i + 1 (read in order, never copied out). */
export function encodeExportEntries(count: number, refOf: (i: number) => number | bigint): Uint8Array {
  const b = new ByteBuilder(count * EXPORT_ENTRY_SIZE);
  for (let i = 0; i < count; i++) b.u64(refOf(i));
  return b.finish();
}

export async function writeExportTable(out: ImageFile, compressor: MetadataCompressor | null, count: number, refOf: (i: number) => number | bigint, sb: Superblock): Promise<void> {
  const t = encodeIndexedTable(compressor, encodeExportEntries(count, refOf), out.position);
  out.appendAll(t.pieces);
  sb.exportTable = BigInt(t.indexStart);
}
