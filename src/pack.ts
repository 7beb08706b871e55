import { promises as fs } from 'node:fs';
import path from 'node:path';
import { directorySource } from './sources/host.js';
import { planFromSource } from './plan/from-source.js';
import { walkHostDirectory } from './plan/walk.js';
import { writeImage, type Backend, type WriteProgress } from './writers/index.js';
import { compressionWords, parseBlockSize, parseByteSize } from './config/size.js';
import { defaultCacheDir } from './squashfs/block-cache.js';
import type { WriteSquashfsResult } from './squashfs/write.js';
import { DEFAULTS } from './config/settings.js';
import { asMkportableError, MkportableError } from './errors.js';
import { prepareOutDir } from './writers/out-dir.js';
import { parseCompression, requireCompressorLibrary } from './compress/registry.js';

export interface PackOptions {
  compression?: string;
  blockSize?: string | number;
  allRoot?: boolean;
  backend?: Backend;
  squashfsTools?: string;
  workers?: number;
  /** Use the block cache (native writer; default true). */
  cache?: boolean;
  cacheSize?: string | number;
  /** Called as file data is written (native writer). */
  onProgress?: (p: WriteProgress) => void;
}

/** `mksquashfs DIR IMAGE` done by mkportable: the whole folder, owners and times kept (or all root). */
export async function packDirectory(dir: string, image: string, o: PackOptions = {}): Promise<WriteSquashfsResult | null> {
  const outDir = path.dirname(path.resolve(image));
  try {
    return await packInto(dir, image, outDir, o);
  } catch (e) {
    throw asMkportableError(e, (file) => (file !== undefined && path.dirname(path.resolve(file)) === outDir ? 'OUTPUT_FAILED' : 'SOURCE_READ'));
  }
}

async function packInto(dir: string, image: string, outDir: string, o: PackOptions): Promise<WriteSquashfsResult | null> {
  const st = await fs.stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw new MkportableError('PATH_NOT_FOUND', `${dir}: not a folder`, dir);
  const compression = compressionWords(o.compression ?? DEFAULTS.squashCompression);
  const blockSize = parseBlockSize(o.blockSize ?? DEFAULTS.squashBlockSize);
  const cacheSize = parseByteSize(o.cacheSize ?? DEFAULTS.cacheSize, 'cacheSize');
  const backend = o.backend ?? 'native';
  if (backend === 'native') requireCompressorLibrary(parseCompression(compression, blockSize));
  // Like mksquashfs, the image's folder must exist; it is checked before the folder is read.
  await prepareOutDir(outDir, { create: false });
  // The native writer takes the folder in columns (walkHostDirectory), walked while its workers boot; mksquashfs is
  // given the ImageTree.
  const tree = backend === 'native'
    ? () => walkHostDirectory(dir, { owners: o.allRoot ? 'root' : 'keep' })
    : await planFromSource(directorySource(path.resolve(dir)), '/', { owners: o.allRoot ? 'root' : 'keep', mtime: 'keep' });
  const epoch = process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) : 0;
  const tmp = path.join(outDir, `.mkportable-${process.pid}-${Date.now()}.tmp`);
  try {
    const result = await writeImage(tree, tmp, {
      backend,
      compression,
      blockSize,
      mkfsTime: epoch,
      allTime: false,
      squashfsTools: o.squashfsTools,
      workers: o.workers,
      cache: o.cache === false ? null : { dir: defaultCacheDir(), cap: cacheSize },
      onProgress: o.onProgress,
    });
    await fs.rename(tmp, image);
    return result;
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
