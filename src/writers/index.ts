import { parseCompression } from '../compress/registry.js';
import type { ImageTree } from '../plan/tree.js';
import { writeSquashfs } from '../squashfs/write.js';
import { planImage } from '../squashfs/plan.js';
import { writeWithMksquashfs } from './mksquashfs.js';

export type Backend = 'native' | 'mksquashfs';

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
}

/** Write the tree with the chosen backend; both consume the same plan and refuse the same unstorable trees. */
export async function writeImage(tree: ImageTree, outFile: string, o: WriteImageOptions): Promise<void> {
  if (o.backend === 'mksquashfs') {
    planImage(tree); // names over 255 bytes, targets over 4095, …: the native writer's one-line errors, before staging
    await writeWithMksquashfs(tree, outFile, {
      compression: o.compression, blockSize: o.blockSize, mtime: o.mkfsTime, squashfsTools: o.squashfsTools, allTime: o.allTime ?? true,
    });
    return;
  }
  await writeSquashfs(tree, outFile, { compressor: parseCompression(o.compression, o.blockSize), mtime: o.mkfsTime, workers: o.workers });
}
