import { promises as fs } from 'node:fs';
import path from 'node:path';
import { directorySource } from './sources/host.js';
import { planFromSource } from './plan/from-source.js';
import { writeImage, type Backend } from './writers/index.js';
import { compressionWords, parseBlockSize } from './config/size.js';
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
}

/** `mksquashfs DIR IMAGE` done by mkportable: the whole folder, owners and times kept (or all root). */
export async function packDirectory(dir: string, image: string, o: PackOptions = {}): Promise<void> {
  const outDir = path.dirname(path.resolve(image));
  try {
    await packInto(dir, image, outDir, o);
  } catch (e) {
    throw asMkportableError(e, (file) => (file !== undefined && path.dirname(path.resolve(file)) === outDir ? 'OUTPUT_FAILED' : 'SOURCE_READ'));
  }
}

async function packInto(dir: string, image: string, outDir: string, o: PackOptions): Promise<void> {
  const st = await fs.stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw new MkportableError('PATH_NOT_FOUND', `${dir}: not a folder`, dir);
  const compression = compressionWords(o.compression ?? DEFAULTS.squashCompression);
  const blockSize = parseBlockSize(o.blockSize ?? DEFAULTS.squashBlockSize);
  if ((o.backend ?? 'native') === 'native') requireCompressorLibrary(parseCompression(compression, blockSize).name);
  // Like mksquashfs, the image's folder must exist; it is checked before the folder is read.
  await prepareOutDir(outDir, { create: false });
  const tree = await planFromSource(directorySource(path.resolve(dir)), '/', { owners: o.allRoot ? 'root' : 'keep', mtime: 'keep' });
  const epoch = process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) : 0;
  const tmp = path.join(outDir, `.mkportable-${process.pid}-${Date.now()}.tmp`);
  try {
    await writeImage(tree, tmp, {
      backend: o.backend ?? 'native',
      compression,
      blockSize,
      mkfsTime: epoch,
      allTime: false,
      squashfsTools: o.squashfsTools,
      workers: o.workers,
    });
    await fs.rename(tmp, image);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
