/**
 * The output folder, made and proven writable before any work starts, so that a build that can never be
 * written fails at once and in one line instead of after minutes of closure resolution and compression.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { MkportableError, systemReason } from '../errors.js';

const failed = (dir: string, why: string) => new MkportableError('OUTPUT_FAILED', `output folder ${dir}: ${why}`, dir);

async function statOrError(p: string): Promise<Stats | NodeJS.ErrnoException> {
  return fs.stat(p).catch((e: NodeJS.ErrnoException) => e);
}

/**
 * mkdir -p, one level at a time. Node's own recursive mkdir loops forever where mkdir(2) says ENOENT although
 * the parent exists (procfs: `mkdir /proc/x`): it retries the parent, gets EEXIST, and tries the child again.
 */
async function makeFolder(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let p = dir; ; p = path.dirname(p)) {
    const st = await statOrError(p);
    if (!(st instanceof Error)) {
      if (!st.isDirectory()) throw failed(dir, `${p} is a file, not a folder`);
      break;
    }
    // ENOTDIR: a component further up is a file; the walk up names it.
    if (st.code !== 'ENOENT' && st.code !== 'ENOTDIR') throw failed(dir, `cannot look up ${p}: ${systemReason(st)}`);
    missing.push(p);
    if (path.dirname(p) === p) break;
  }
  for (const p of missing.reverse()) {
    try {
      await fs.mkdir(p);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EEXIST' && (await fs.stat(p).then((s) => s.isDirectory(), () => false))) continue;
      // The parent exists (made or found above), so ENOENT means this file system takes no new folders.
      if (err.code === 'ENOENT') throw failed(dir, `cannot create ${p}: ${path.dirname(p)} does not allow new folders (${err.code})`);
      throw failed(dir, `cannot create ${p}: ${systemReason(err)}`);
    }
  }
}

/** Create a file in the folder and remove it: read-only mounts, missing permission and full inode tables show here. */
async function proveWritable(dir: string): Promise<void> {
  const probe = path.join(dir, `.mkportable-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(probe, 'wx', 0o600);
  } catch (e) {
    throw failed(dir, `cannot write there: ${systemReason(e)}`);
  }
  await fh.close();
  await fs.rm(probe, { force: true });
}

/** Make the output folder (`create`) or require it to exist, and prove a file can be written there. */
export async function prepareOutDir(dir: string, o: { create?: boolean } = {}): Promise<void> {
  if (o.create ?? true) await makeFolder(dir);
  else {
    const st = await statOrError(dir);
    if (st instanceof Error) throw failed(dir, systemReason(st));
    if (!st.isDirectory()) throw failed(dir, 'is a file, not a folder');
  }
  await proveWritable(dir);
}
