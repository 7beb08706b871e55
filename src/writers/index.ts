import { parseCompression } from '../compress/registry.js';
import type { ImageTree } from '../plan/tree.js';
import { isPackedTree, type PackedTree } from '../plan/packed.js';
import { writeSquashfs, type BlockCacheOptions, type WriteProgress, type WriteSquashfsResult } from '../squashfs/write.js';
import { planImage } from '../squashfs/plan.js';
import { writeWithMksquashfs } from './mksquashfs.js';

export type Backend = 'native' | 'mksquashfs';
export type { BlockCacheOptions, WriteProgress } from '../squashfs/write.js';

export interface WriteImageOptions {
  backend: Backend;
  /** Compression words as mksquashfs takes them. */
  compression: readonly string[];
  blockSize: number;
  /** The filesystem's creation time (seconds). */
  mkfsTime: number;
  /** mksquashfs only: force every inode's time to mkfsTime (the native writer takes times from the tree). */
  allTime?: boolean;
  squashfsTools?: string;
  workers?: number;
  /** Native writer: the block cache to reuse compressed blocks from (null or absent: none). */
  cache?: BlockCacheOptions | null;
  /** Native writer: called as file data is written. */
  onProgress?: (p: WriteProgress) => void;
}

/**
 * Write the tree with the chosen backend; both consume the same plan and refuse the same unstorable trees. The
 * native writer reports what it did (null for mksquashfs).
 */
export async function writeImage(
  tree: ImageTree | PackedTree | (() => ImageTree | PackedTree | Promise<ImageTree | PackedTree>),
  outFile: string,
  o: WriteImageOptions,
): Promise<WriteSquashfsResult | null> {
  if (o.backend === 'mksquashfs') {
    if (typeof tree === 'function' || isPackedTree(tree)) throw new Error('the mksquashfs backend takes an ImageTree');
    planImage(tree); // names over 255 bytes, targets over 4095, …: the native writer's one-line errors, before staging
    await writeWithMksquashfs(tree, outFile, {
      compression: o.compression, blockSize: o.blockSize, mtime: o.mkfsTime, squashfsTools: o.squashfsTools, allTime: o.allTime ?? true,
    });
    return null;
  }
  return writeSquashfs(tree, outFile, {
    compressor: parseCompression(o.compression, o.blockSize), mtime: o.mkfsTime, workers: o.workers, cache: o.cache, onProgress: o.onProgress,
  });
}
