/**
 * The native squashfs 4.0 writer: plan → data (parallel, streamed) → inode and directory tables → fragment,
 * export, id and xattr tables → superblock, in exactly the order readers expect:
 *
 *   superblock, [compressor options], data + fragment blocks, inode table, directory table, fragment table,
 *   export table, id table, xattr tables, (bytes_used), zero padding to 4 KiB.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import { compressorIdentity, createCompressor, fastCompressor } from '../compress/registry.js';
import type { CompressorSpec } from '../compress/types.js';
import { MkportableError, isMkportableError, systemReason } from '../errors.js';
import { Kind, nameOf, type PackedTree } from '../plan/packed.js';
import type { ImageTree } from '../plan/tree.js';
import { incompressibleCheck } from '../native/entropy.js';
import { cacheFolder, recordAndTrim, DEFAULT_CACHE_CAP, type TrimResult } from './block-cache.js';
import { ByteBuilder } from './bytes.js';
import { arenaLayout, blockCount, writeData, type DataProgress, type FileLayouts } from './data.js';
import { writeListing, type ListingEntries } from './directory.js';
import { writeExportTable } from './export-table.js';
import {
  DEVICE_BLOCK,
  MAX_BLOCK_SIZE,
  METADATA_UNCOMPRESSED,
  MIN_BLOCK_SIZE,
  NO_TABLE,
  SUPERBLOCK_SIZE,
  SuperFlag,
  VERSION_MAJOR,
  VERSION_MINOR,
  encodeSuperblock,
  type Superblock,
} from './format.js';
import { writeFragmentTable } from './fragment-table.js';
import { writeIdTable } from './id-table.js';
import {
  basicType,
  encodeDeviceInode,
  encodeDirInode,
  encodeFileInode,
  encodeIpcInode,
  encodeSymlinkInode,
  type DirIndexEntry,
  type InodeHeader,
} from './inode.js';
import { MetadataWriter } from './metadata.js';
import { ImageFile } from './output.js';
import { clampTime, planImage, xattrIndex, type Plan } from './plan.js';
import { NativeTaskPool, nativeDataPath } from './native-pool.js';
import { CompressionPool, type OwnedRunner, type TaskRunner } from './pool.js';
import { createArena, type Arena, type WorkerCounters } from './task.js';
import { writeXattrTables } from './xattr-table.js';

export interface BlockCacheOptions {
  /** The cache root ($XDG_CACHE_HOME/mkportable by default; see block-cache.ts). */
  dir: string;
  /** Bytes the cache may hold before its least recently used entries go (default 1 GiB). */
  cap?: number;
}

/**
 * Whether the block cache pays for a compressor. Plain lz4 compresses a block in less time than the cache takes to
 * hash, store and later read and check it (benchmark: a cold cache doubles pack's CPU, a warm one saves none), so
 * its blocks are not cached; lz4 -Xhc, gzip, xz and zstd are.
 */
export const worthCaching = (spec: CompressorSpec): boolean => !fastCompressor(spec);

export interface WriteProgress extends DataProgress {
  totalBytes: number;
  totalFiles: number;
}

export interface WriteSquashfsOptions {
  compressor: CompressorSpec;
  /** The filesystem's creation time (seconds); inode times come from the entries. */
  mtime: number;
  /** Compression worker threads; default os.availableParallelism(). */
  workers?: number;
  /** Pack the tails of files larger than a block into fragments as well (default true; sets ALWAYS_FRAG). */
  tailPacking?: boolean;
  /** Reuse compressed blocks from (and add them to) a block cache; none by default. */
  cache?: BlockCacheOptions | null;
  /** Called as data is written (at most every 100 ms, and once at the end of the data). */
  onProgress?: (p: WriteProgress) => void;
  /** Tests only: run tasks here instead of in worker threads (with its arena laid out by arenaLayout). */
  runner?: TaskRunner;
}

export interface WriteSquashfsResult {
  /** Size of the image file, padding included. */
  bytes: number;
  inodes: number;
  /** Bytes of file data (before compression). */
  dataBytes: number;
  duplicates: number;
  cache: (WorkerCounters & { trimmed: TrimResult | null }) | null;
}

function checkOptions(opts: WriteSquashfsOptions): void {
  const bs = opts.compressor.blockSize;
  if (!Number.isInteger(bs) || bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) {
    throw new MkportableError('COMPRESSION_INVALID', `block size ${bs}: must be a power of two from 4K to 1M`, 'blockSize');
  }
  if (opts.workers !== undefined && (!Number.isInteger(opts.workers) || opts.workers < 1)) {
    throw new MkportableError('COMPRESSION_INVALID', `workers ${opts.workers}: must be a whole number >= 1`, 'workers');
  }
}

/** Inode and directory tables, built together: listings need their children's inode refs, directory inodes need
 * their listing's place. Inode chunks go straight to the image; the directory table follows them. */
function writeTables(plan: Plan, out: ImageFile, compressor: ReturnType<typeof createCompressor>, layouts: FileLayouts, blockSize: number, tailPacking: boolean): { inodeTable: number; directoryTable: number; refs: Float64Array } {
  const t: PackedTree = plan.tree;
  const inodeTable = out.position;
  const inodes = new MetadataWriter(compressor, (chunk) => out.append(chunk));
  const directories = new MetadataWriter(compressor);
  /** Inode ref by row, as the u64 value (block << 16 | offset). */
  const refs = new Float64Array(t.count);
  /** Directory rows: where the listing went. */
  const listing = new Map<number, { block: number; offset: number; size: number; entries: number; index: DirIndexEntry[] }>();
  const b = new ByteBuilder(256);
  const header = (row: number): InodeHeader => ({
    mode: t.mode[row],
    uidIndex: plan.idIndex.get(t.uid[row])!,
    gidIndex: plan.idIndex.get(t.gid[row])!,
    mtime: clampTime(t.mtime[row]),
    number: plan.number[row],
  });
  const parentNumber = (row: number) => (row === 0 ? plan.inodeCount + 1 : plan.number[t.parent[row]]);

  // One accessor over the plan's columns, pointed at each directory in turn: no object per entry.
  let first = 0;
  const types = Uint8Array.from(KIND_TYPE);
  const entries: ListingEntries & { count: number } = {
    count: 0,
    nameLength: (i) => t.nameLength[first + i],
    name: (i) => nameOf(t, first + i),
    putName: (i, b) => b.bytesFrom(t.names, t.nameStart[first + i], t.nameStart[first + i] + t.nameLength[first + i]),
    block: (i) => Math.floor(refs[t.link[first + i]] / 65536),
    offset: (i) => refs[t.link[first + i]] % 65536,
    number: (i) => plan.number[t.link[first + i]],
    type: (i) => types[t.kind[t.link[first + i]]],
  };
  const lb = new ByteBuilder(4096);
  for (let s = 0; s < plan.steps.length; s++) {
    const step = plan.steps[s];
    if (step < 0) {
      const dir = -step - 1;
      first = t.firstChild[dir];
      entries.count = t.childCount[dir];
      const start = { block: directories.block, offset: directories.offset };
      const w = writeListing(directories, entries, lb);
      listing.set(dir, { ...start, size: w.size, entries: w.entries, index: w.index });
      continue;
    }
    const row = step;
    refs[row] = inodes.block * 65536 + inodes.offset;
    const h = header(row);
    const xattr = xattrIndex(plan, row);
    const nlink = plan.nlink[row];
    let bytes: Uint8Array;
    switch (t.kind[row]) {
      case Kind.dir: {
        const l = listing.get(row)!;
        listing.delete(row);
        bytes = encodeDirInode(h, { startBlock: l.block, offset: l.offset, listingSize: l.size, entries: l.entries, nlink, parent: parentNumber(row), xattr, index: l.index }, b);
        break;
      }
      case Kind.file: {
        const size = t.size[row];
        const count = blockCount(size, blockSize, tailPacking);
        const first = layouts.blockStart[row];
        bytes = encodeFileInode(h, {
          start: layouts.start[row], size, sparse: layouts.sparse.get(row) ?? 0, nlink,
          fragment: layouts.fragment[row], fragmentOffset: layouts.fragmentOffset[row], xattr,
          blocks: layouts.blocks.subarray(first, first + count),
        }, b);
        break;
      }
      case Kind.symlink:
        bytes = encodeSymlinkInode(h, { nlink, target: t.symlinks.get(row)!, xattr }, b);
        break;
      case Kind.char:
      case Kind.block: {
        const d = t.devices.get(row) ?? { major: 0, minor: 0 };
        bytes = encodeDeviceInode(h, { kind: t.kind[row] === Kind.char ? 'char' : 'block', nlink, major: d.major, minor: d.minor, xattr }, b);
        break;
      }
      default:
        bytes = encodeIpcInode(h, { kind: t.kind[row] === Kind.fifo ? 'fifo' : 'socket', nlink, xattr }, b);
    }
    inodes.write(bytes);
  }
  inodes.finish();
  const directoryTable = out.position;
  out.appendAll(directories.finish().chunks);
  return { inodeTable, directoryTable, refs };
}

/** The basic inode type a directory entry carries, by Kind code. */
const KIND_TYPE: number[] = [];
for (const [name, code] of Object.entries(Kind)) if (name !== 'hardlink') KIND_TYPE[code] = basicType(name as Exclude<keyof typeof Kind, 'hardlink'>);

/** The data path for this compressor: native threads for plain lz4 (native-pool.ts), worker threads otherwise. */
function ownPool(spec: CompressorSpec, workers: number, arena: Arena, folder: string | null): OwnedRunner {
  return nativeDataPath(spec, folder) ? new NativeTaskPool(spec, workers, arena) : new CompressionPool(spec, workers, arena, folder);
}

/**
 * Write `tree` to `outFile`. `tree` may be a function that makes it: it is then called once the workers are
 * starting, so that they boot while the tree is planned (pack walks its folder meanwhile).
 */
export async function writeSquashfs(
  tree: ImageTree | PackedTree | (() => ImageTree | PackedTree | Promise<ImageTree | PackedTree>),
  outFile: string,
  opts: WriteSquashfsOptions,
): Promise<WriteSquashfsResult> {
  checkOptions(opts);
  const compressor = createCompressor(opts.compressor);
  const blockSize = opts.compressor.blockSize;
  const tailPacking = opts.tailPacking ?? true;
  const cacheOpts = opts.cache && worthCaching(compressor.spec) ? opts.cache : null;
  // Whether already-compressed blocks are stored raw decides bytes too: entries made either way never mix.
  const identity = { ...compressorIdentity(compressor.spec), storesIncompressibleRaw: incompressibleCheck(compressor.spec) !== null };
  const folder = cacheOpts ? cacheFolder(cacheOpts.dir, identity) : null;
  const workers = opts.runner?.size ?? opts.workers ?? os.availableParallelism();
  const layout = arenaLayout(workers, blockSize);
  const owned = opts.runner ? null : ownPool(compressor.spec, workers, createArena(layout.slotSize, layout.slots), folder);
  const pool = opts.runner ?? owned!;
  const later = typeof tree === 'function';
  if (later) owned?.start(); // the workers boot while the tree is made
  let plan: Plan;
  try {
    plan = planImage(later ? await tree() : tree);
  } catch (e) {
    await owned?.close();
    throw e;
  }
  const t = plan.tree;
  let dataBytes = 0;
  for (const row of plan.files) dataBytes += t.size[row];
  if (dataBytes > 0) owned?.start(); // workers boot while we open files

  const sb: Superblock = {
    inodeCount: plan.inodeCount,
    mkfsTime: clampTime(opts.mtime),
    blockSize,
    fragmentCount: 0,
    compression: compressor.id,
    blockLog: Math.log2(blockSize),
    flags: SuperFlag.DUPLICATE | SuperFlag.EXPORT | (tailPacking ? SuperFlag.ALWAYS_FRAG : 0),
    idCount: 0,
    versionMajor: VERSION_MAJOR,
    versionMinor: VERSION_MINOR,
    rootInode: 0n,
    bytesUsed: 0n,
    idTable: 0n,
    xattrIdTable: NO_TABLE,
    inodeTable: 0n,
    directoryTable: 0n,
    fragmentTable: 0n,
    exportTable: NO_TABLE,
  };

  let out: ImageFile | null = null;
  try {
    out = await ImageFile.create(outFile);
    out.append(new Uint8Array(SUPERBLOCK_SIZE)); // the superblock goes in last, once every table is placed

    const options = compressor.options();
    if (options) {
      const block = new Uint8Array(2 + options.length);
      new DataView(block.buffer).setUint16(0, options.length | METADATA_UNCOMPRESSED, true);
      block.set(options, 2);
      out.append(block);
      sb.flags |= SuperFlag.COMP_OPT;
    }

    const onProgress = opts.onProgress;
    const data = await writeData(plan, out, {
      blockSize, tailPacking, pool, taskSlots: layout.taskSlots, hashBlocks: folder !== null,
      onProgress: onProgress && ((p) => onProgress({ ...p, totalBytes: dataBytes, totalFiles: plan.files.length })),
    });
    await owned?.close();
    await out.sync();

    const tables = writeTables(plan, out, compressor, data.layouts, blockSize, tailPacking);
    sb.rootInode = BigInt(tables.refs[0]);
    sb.inodeTable = BigInt(tables.inodeTable);
    sb.directoryTable = BigInt(tables.directoryTable);

    await writeFragmentTable(out, compressor, data.fragments, sb);
    const { refs } = tables;
    await writeExportTable(out, compressor, plan.inodeCount, (i) => refs[plan.order[i]], sb);
    await writeIdTable(out, compressor, plan.ids, sb);
    await writeXattrTables(out, compressor, plan.xattrSets, sb);

    sb.bytesUsed = BigInt(out.position);
    const pad = (DEVICE_BLOCK - (out.position % DEVICE_BLOCK)) % DEVICE_BLOCK;
    if (pad) out.append(new Uint8Array(pad));
    await out.writeAt(encodeSuperblock(sb), 0);
    const bytes = await out.finish();
    out = null;
    let cache: WriteSquashfsResult['cache'] = null;
    if (cacheOpts) {
      const trimmed = await recordAndTrim(cacheOpts.dir, data.cache.storedBytes, cacheOpts.cap ?? DEFAULT_CACHE_CAP).catch(() => null);
      cache = { ...data.cache, trimmed };
    }
    return { bytes, inodes: plan.inodeCount, dataBytes, duplicates: data.duplicates, cache };
  } catch (e) {
    await out?.close();
    await fs.rm(outFile, { force: true });
    if (isMkportableError(e)) throw e;
    throw new MkportableError('OUTPUT_FAILED', `${outFile}: cannot write: ${systemReason(e)}`, outFile);
  } finally {
    await owned?.close();
  }
}
