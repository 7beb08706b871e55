import { promises as fs } from 'node:fs';
import path from 'node:path';
import { directorySource } from './sources/host.js';
import { planFromSource } from './plan/from-source.js';
import { walkHostDirectory } from './plan/walk.js';
import { writeImage, type Backend } from './writers/index.js';
import { compressionWords, parseBlockSize } from './config/size.js';
import { DEFAULTS } from './config/settings.js';
import { MkportableError } from './errors.js';

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
  const st = await fs.stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw new MkportableError('PATH_NOT_FOUND', `${dir}: not a folder`, dir);
  const backend = o.backend ?? 'native';
  // The native writer takes the folder in columns (walkHostDirectory); mksquashfs is given the ImageTree.
  const tree = backend === 'native'
    ? walkHostDirectory(dir, { owners: o.allRoot ? 'root' : 'keep' })
    : await planFromSource(directorySource(path.resolve(dir)), '/', { owners: o.allRoot ? 'root' : 'keep', mtime: 'keep' });
  const epoch = process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) : 0;
  const tmp = `${image}.${process.pid}.tmp`;
  try {
    await writeImage(tree, tmp, {
      backend,
      compression: compressionWords(o.compression ?? DEFAULTS.squashCompression),
      blockSize: parseBlockSize(o.blockSize ?? DEFAULTS.squashBlockSize),
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
