/**
 * The native squashfs 4.0 writer: plan → data (parallel, streamed) → inode and directory tables → fragment,
 * export, id and xattr tables → superblock, in exactly the order readers expect:
 *
 *   superblock, [compressor options], data + fragment blocks, inode table, directory table, fragment table,
 *   export table, id table, xattr tables, (bytes_used), zero padding to 4 KiB.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import { createCompressor } from '../compress/registry.js';
import type { CompressorSpec } from '../compress/types.js';
import { MkportableError, isMkportableError, systemReason } from '../errors.js';
import type { ImageTree } from '../plan/tree.js';
import { toBytes } from '../formats/bytenames.js';
import { writeData, type FileLayout } from './data.js';
import { writeDirectory, type WrittenDirectory } from './directory.js';
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
  type InodeHeader,
} from './inode.js';
import { MetadataWriter, refToU64 } from './metadata.js';
import { ImageFile } from './output.js';
import { planImage, type PlanNode } from './plan.js';
import { CompressionPool } from './pool.js';
import { writeXattrTables } from './xattr-table.js';

export interface WriteSquashfsOptions {
  compressor: CompressorSpec;
  /** The filesystem's creation time (seconds); inode times come from the entries. */
  mtime: number;
  /** Compression worker threads; default os.availableParallelism(). */
  workers?: number;
  /** Pack the tails of files larger than a block into fragments as well (default true; sets ALWAYS_FRAG). */
  tailPacking?: boolean;
}

export interface WriteSquashfsResult {
  /** Size of the image file, padding included. */
  bytes: number;
  inodes: number;
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

/**
 * Blocks alive at once in the data pipeline: two per worker keeps every worker busy with big blocks; small blocks
 * need more in flight to hide the per-block round trips, so allow up to WINDOW_BYTES of them. Either way memory
 * stays bounded by max(2 × workers × blockSize, WINDOW_BYTES), whatever the image size.
 */
const WINDOW_BYTES = 16 << 20;
export function dataWindow(workers: number, blockSize: number): number {
  return Math.max(2 * workers, Math.floor(WINDOW_BYTES / blockSize));
}

function inodeHeader(n: PlanNode): InodeHeader {
  return { mode: n.entry.mode, uidIndex: n.uidIndex, gidIndex: n.gidIndex, mtime: n.mtime, number: n.number };
}

function encodeNode(n: PlanNode, listings: Map<PlanNode, WrittenDirectory>, layouts: Map<PlanNode, FileLayout>): Uint8Array {
  const h = inodeHeader(n);
  const e = n.entry;
  switch (e.type) {
    case 'dir': {
      const l = listings.get(n)!;
      return encodeDirInode(h, {
        startBlock: l.start.block, offset: l.start.offset, listingSize: l.size, entries: l.entries,
        nlink: n.nlink, parent: n.parent, xattr: n.xattr, index: l.index,
      });
    }
    case 'file': {
      const f = layouts.get(n)!;
      return encodeFileInode(h, {
        start: f.start, size: f.size, sparse: f.sparse, nlink: n.nlink,
        fragment: f.fragment, fragmentOffset: f.fragmentOffset, xattr: n.xattr, blocks: f.blocks,
      });
    }
    case 'symlink':
      return encodeSymlinkInode(h, { nlink: n.nlink, target: toBytes(e.target), xattr: n.xattr });
    case 'char':
    case 'block':
      return encodeDeviceInode(h, { kind: e.type, nlink: n.nlink, major: e.major, minor: e.minor, xattr: n.xattr });
    case 'fifo':
    case 'socket':
      return encodeIpcInode(h, { kind: e.type, nlink: n.nlink, xattr: n.xattr });
  }
}

export async function writeSquashfs(tree: ImageTree, outFile: string, opts: WriteSquashfsOptions): Promise<WriteSquashfsResult> {
  checkOptions(opts);
  const plan = planImage(tree);
  const compressor = createCompressor(opts.compressor);
  const blockSize = opts.compressor.blockSize;
  const tailPacking = opts.tailPacking ?? true;
  const pool = new CompressionPool(opts.compressor, opts.workers ?? os.availableParallelism());
  if (plan.files.some((n) => n.entry.type === 'file' && n.entry.size > 0)) pool.start(); // workers boot while we open files

  const sb: Superblock = {
    inodeCount: plan.nodes.length,
    mkfsTime: Math.min(0xffffffff, Math.max(0, Math.floor(opts.mtime))),
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
    await out.append(new Uint8Array(SUPERBLOCK_SIZE)); // the superblock goes in last, once every table is placed

    const options = compressor.options();
    if (options) {
      const block = new Uint8Array(2 + options.length);
      new DataView(block.buffer).setUint16(0, options.length | METADATA_UNCOMPRESSED, true);
      block.set(options, 2);
      await out.append(block);
      sb.flags |= SuperFlag.COMP_OPT;
    }

    const data = await writeData(plan, out, { blockSize, tailPacking, pool, window: dataWindow(pool.size, blockSize) });
    await pool.close();

    // Inode and directory tables, built together: listings need their children's inode refs, directory
    // inodes need their listing's place.
    const inodes = new MetadataWriter(compressor);
    const directories = new MetadataWriter(compressor);
    const listings = new Map<PlanNode, WrittenDirectory>();
    for (const step of plan.steps) {
      if (step.kind === 'listing') {
        const entries = step.dir.children.map((c) => ({
          name: c.name, inode: c.node.ref!, number: c.node.number, type: basicType(c.node.entry.type),
        }));
        listings.set(step.dir, await writeDirectory(directories, entries));
      } else {
        step.node.ref = inodes.ref;
        await inodes.write(encodeNode(step.node, listings, data.layouts));
      }
    }
    sb.rootInode = refToU64(plan.root.ref!);
    sb.inodeTable = BigInt(out.position);
    await out.appendAll((await inodes.finish()).chunks);
    sb.directoryTable = BigInt(out.position);
    await out.appendAll((await directories.finish()).chunks);

    await writeFragmentTable(out, compressor, data.fragments, sb);
    await writeExportTable(out, compressor, plan.nodes.map((n) => refToU64(n.ref!)), sb);
    await writeIdTable(out, compressor, plan.ids, sb);
    await writeXattrTables(out, compressor, plan.xattrSets, sb);

    sb.bytesUsed = BigInt(out.position);
    const pad = (DEVICE_BLOCK - (out.position % DEVICE_BLOCK)) % DEVICE_BLOCK;
    if (pad) await out.append(new Uint8Array(pad));
    await out.writeAt(encodeSuperblock(sb), 0);
    const bytes = await out.finish();
    out = null;
    return { bytes, inodes: plan.nodes.length };
  } catch (e) {
    await out?.close();
    await fs.rm(outFile, { force: true });
    if (isMkportableError(e)) throw e;
    throw new MkportableError('OUTPUT_FAILED', `${outFile}: cannot write: ${systemReason(e)}`, outFile);
  } finally {
    await pool.close();
  }
}
