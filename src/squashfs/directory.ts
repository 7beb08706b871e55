/**
 * Directory listings: runs of entries behind a header {count-1, inode chunk, base inode number}. A new run starts
 * at 256 entries, when the inode chunk changes, or when an inode number no longer fits the s16 delta. Entries must
 * come sorted by unsigned bytes (the caller's job: the plan sorts children).
 */
import { ByteBuilder } from './bytes.js';
import { DIR_ENTRY_SIZE, DIR_HEADER_MAX_ENTRIES, DIR_HEADER_SIZE, METADATA_SIZE, type InodeType } from './format.js';
import type { DirIndexEntry } from './inode.js';
import type { MetadataRef, MetadataWriter } from './metadata.js';

export interface DirEntry {
  name: Uint8Array;
  /** The entry's inode ref. */
  inode: MetadataRef;
  number: number;
  type: InodeType;
}

export interface DirRun {
  startBlock: number;
  base: number;
  entries: DirEntry[];
  /** Listing offset of this run's header, when the run is in the directory index. */
  indexAt?: number;
}

/**
 * Split a listing into runs. Besides the format's reasons (256 entries, another inode chunk, an s16 overflow),
 * a run also starts — and goes into the directory index — once the listing has grown more than 8 KiB since the
 * last indexed run, as mksquashfs does: lookups then skip ahead through the index.
 */
export function groupDirEntries(entries: readonly DirEntry[]): DirRun[] {
  const runs: DirRun[] = [];
  let run: DirRun | undefined;
  let length = 0;
  let lastIndexed = 0;
  for (const e of entries) {
    const size = DIR_ENTRY_SIZE + e.name.length;
    const delta = run ? e.number - run.base : 0;
    const stretch = run !== undefined && length + size - lastIndexed > METADATA_SIZE;
    if (!run || stretch || run.entries.length === DIR_HEADER_MAX_ENTRIES || e.inode.block !== run.startBlock || delta < -0x8000 || delta > 0x7fff) {
      run = { startBlock: e.inode.block, base: e.number, entries: [] };
      if (stretch) {
        run.indexAt = length;
        lastIndexed = length;
      }
      runs.push(run);
      length += DIR_HEADER_SIZE;
    }
    run.entries.push(e);
    length += size;
  }
  return runs;
}

export function encodeDirRun(run: DirRun): Uint8Array {
  let size = DIR_HEADER_SIZE;
  for (const e of run.entries) size += DIR_ENTRY_SIZE + e.name.length;
  const b = new ByteBuilder(size);
  b.u32(run.entries.length - 1); // count
  b.u32(run.startBlock); // start_block
  b.u32(run.base); // inode_number
  for (const e of run.entries) {
    b.u16(e.inode.offset); // offset
    b.s16(e.number - run.base); // inode_number (delta)
    b.u16(e.type); // type (basic)
    b.u16(e.name.length - 1); // name_size
    b.bytes(e.name); // name
  }
  return b.finish();
}

export interface WrittenDirectory {
  /** Where the listing starts in the directory table. */
  start: MetadataRef;
  /** Listing bytes, without the bias of 3. */
  size: number;
  entries: number;
  /** The index: one entry per indexed run, pointing at the chunk holding its header. */
  index: DirIndexEntry[];
}

/** Append a directory's listing to the directory table. */
export function writeDirectory(table: MetadataWriter, entries: readonly DirEntry[]): WrittenDirectory {
  const start = table.ref;
  const index: DirIndexEntry[] = [];
  let size = 0;
  for (const run of groupDirEntries(entries)) {
    if (run.indexAt !== undefined) index.push({ index: run.indexAt, startBlock: table.ref.block, name: run.entries[0].name });
    const bytes = encodeDirRun(run);
    table.write(bytes);
    size += bytes.length;
  }
  return { start, size, entries: entries.length, index };
}
