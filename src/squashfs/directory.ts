/**
 * Directory listings: runs of entries behind a header {count-1, inode chunk, base inode number}. A new run starts
 * at 256 entries, when the inode chunk changes, or when an inode number no longer fits the s16 delta. Entries must
 * come sorted by unsigned bytes (the caller's job: the plan sorts children).
 *
 * The entries come through an accessor (ListingEntries), so that the writer can list a directory straight from
 * the plan's columns without an object per entry; DirEntry arrays are the simple form tests and tools use.
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

/** A listing's entries by position. */
export interface ListingEntries {
  readonly count: number;
  nameLength(i: number): number;
  /** Entry i's name bytes (a view is fine: it is copied at once). */
  name(i: number): Uint8Array;
  /** Append entry i's name bytes to `b` (without making a view). */
  putName(i: number, b: ByteBuilder): void;
  /** Entry i's inode ref: chunk position and offset in the chunk. */
  block(i: number): number;
  offset(i: number): number;
  number(i: number): number;
  type(i: number): number;
}

export interface DirRun {
  startBlock: number;
  base: number;
  entries: DirEntry[];
  /** Listing offset of this run's header, when the run is in the directory index. */
  indexAt?: number;
}

/** A run as positions in a ListingEntries: entries [start, end). */
interface RunSpan {
  start: number;
  end: number;
  startBlock: number;
  base: number;
  indexAt?: number;
}

/**
 * Split a listing into runs. Besides the format's reasons (256 entries, another inode chunk, an s16 overflow),
 * a run also starts — and goes into the directory index — once the listing has grown more than 8 KiB since the
 * last indexed run, as mksquashfs does: lookups then skip ahead through the index.
 */
function spans(e: ListingEntries): RunSpan[] {
  const runs: RunSpan[] = [];
  let run: RunSpan | undefined;
  let length = 0;
  let lastIndexed = 0;
  for (let i = 0; i < e.count; i++) {
    const size = DIR_ENTRY_SIZE + e.nameLength(i);
    const number = e.number(i);
    const block = e.block(i);
    const delta = run ? number - run.base : 0;
    const stretch = run !== undefined && length + size - lastIndexed > METADATA_SIZE;
    if (!run || stretch || i - run.start === DIR_HEADER_MAX_ENTRIES || block !== run.startBlock || delta < -0x8000 || delta > 0x7fff) {
      if (run) run.end = i;
      run = { start: i, end: e.count, startBlock: block, base: number };
      if (stretch) {
        run.indexAt = length;
        lastIndexed = length;
      }
      runs.push(run);
      length += DIR_HEADER_SIZE;
    }
    length += size;
  }
  return runs;
}

function encodeSpan(e: ListingEntries, run: RunSpan, b: ByteBuilder): Uint8Array {
  b.reset();
  b.u32(run.end - run.start - 1); // count
  b.u32(run.startBlock); // start_block
  b.u32(run.base); // inode_number
  for (let i = run.start; i < run.end; i++) {
    b.u16(e.offset(i)); // offset
    b.s16(e.number(i) - run.base); // inode_number (delta)
    b.u16(e.type(i)); // type (basic)
    b.u16(e.nameLength(i) - 1); // name_size
    e.putName(i, b); // name
  }
  return b.finish();
}

/** DirEntry objects as ListingEntries. */
function fromArray(entries: readonly DirEntry[]): ListingEntries {
  return {
    count: entries.length,
    nameLength: (i) => entries[i].name.length,
    name: (i) => entries[i].name,
    putName: (i, b) => b.bytes(entries[i].name),
    block: (i) => entries[i].inode.block,
    offset: (i) => entries[i].inode.offset,
    number: (i) => entries[i].number,
    type: (i) => entries[i].type,
  };
}

export function groupDirEntries(entries: readonly DirEntry[]): DirRun[] {
  return spans(fromArray(entries)).map((s) => ({
    startBlock: s.startBlock, base: s.base, entries: entries.slice(s.start, s.end), ...(s.indexAt !== undefined ? { indexAt: s.indexAt } : {}),
  }));
}

export function encodeDirRun(run: DirRun): Uint8Array {
  const e = fromArray(run.entries);
  return encodeSpan(e, { start: 0, end: run.entries.length, startBlock: run.startBlock, base: run.base }, new ByteBuilder(64)).slice();
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

/** Append a directory's listing to the directory table (`b`: a builder to reuse). */
export function writeListing(table: MetadataWriter, e: ListingEntries, b = new ByteBuilder(4096)): WrittenDirectory {
  const start = table.ref;
  const index: DirIndexEntry[] = [];
  let size = 0;
  for (const run of spans(e)) {
    if (run.indexAt !== undefined) index.push({ index: run.indexAt, startBlock: table.block, name: e.name(run.start).slice() });
    const bytes = encodeSpan(e, run, b);
    table.write(bytes);
    size += bytes.length;
  }
  return { start, size, entries: e.count, index };
}

export function writeDirectory(table: MetadataWriter, entries: readonly DirEntry[]): WrittenDirectory {
  return writeListing(table, fromArray(entries));
}
