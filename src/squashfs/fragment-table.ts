/**
 * Fragment table: one 16-byte entry per fragment block {u64 start, u32 stored size (| DATA_UNCOMPRESSED), u32 0},
 * as a metadata stream followed by the index of its chunks. Sets fragment_table_start and fragments.
 */
import type { MetadataCompressor } from './metadata.js';
import { ByteBuilder } from './bytes.js';
import { FRAGMENT_ENTRY_SIZE, type Superblock } from './format.js';
import { encodeIndexedTable } from './metadata.js';
import type { ImageFile } from './output.js';

export interface FragmentEntry {
  /** Absolute position of the fragment block. */
  start: number;
  /** Block list style size: stored bytes, | DATA_UNCOMPRESSED when raw. */
  size: number;
}

export function encodeFragmentEntries(entries: readonly FragmentEntry[]): Uint8Array {
  const b = new ByteBuilder(entries.length * FRAGMENT_ENTRY_SIZE);
  for (const e of entries) {
    b.u64(e.start); // start_block
    b.u32(e.size); // size
    b.u32(0); // unused
  }
  return b.finish();
}

export async function writeFragmentTable(
  out: ImageFile,
  compressor: MetadataCompressor | null,
  entries: readonly FragmentEntry[],
  sb: Superblock,
): Promise<void> {
  sb.fragmentCount = entries.length;
  if (entries.length === 0) {
    // Nothing to point at; readers ignore the start when the count is 0, but it must not precede the directory table.
    sb.fragmentTable = BigInt(out.position);
    return;
  }
  const t = encodeIndexedTable(compressor, encodeFragmentEntries(entries), out.position);
  out.appendAll(t.pieces);
  sb.fragmentTable = BigInt(t.indexStart);
}
