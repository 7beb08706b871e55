import { promises as fs, constants as fsc } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { MkportableError, systemReason } from '../errors.js';
import { type ImageTree, walkTree } from '../plan/tree.js';
import { toBytes } from '../formats/bytenames.js';
import { writeXattr } from '../native/fs.js';

export interface MksquashfsOptions {
  /** Compression words, e.g. ["xz", "-Xdict-size", "100%"]. */
  compression: readonly string[];
  blockSize: number;
  /** Timestamp of every inode and of the filesystem (seconds). */
  mtime: number;
  /** mksquashfs, or a folder holding it (directly or in bin/); PATH when unset. */
  squashfsTools?: string;
  /** Give every inode `mtime` (default); false keeps the plan's times. */
  allTime?: boolean;
}

async function isExecutable(p: string): Promise<boolean> {
  try {
    await fs.access(p, fsc.X_OK);
    return (await fs.stat(p)).isFile();
  } catch {
    return false;
  }
}

export async function findMksquashfs(squashfsTools?: string): Promise<string> {
  const candidates: string[] = [];
  if (squashfsTools) {
    const st = await fs.stat(squashfsTools).catch(() => null);
    if (st?.isDirectory()) candidates.push(path.join(squashfsTools, 'mksquashfs'), path.join(squashfsTools, 'bin', 'mksquashfs'));
    else candidates.push(squashfsTools);
  } else {
    for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) candidates.push(path.join(dir, 'mksquashfs'));
  }
  for (const c of candidates) if (await isExecutable(c)) return c;
  const where = squashfsTools ? `squashfsTools '${squashfsTools}'` : 'PATH';
  throw new MkportableError('MKSQUASHFS_NOT_FOUND', `mksquashfs not found in ${where} (install squashfs-tools or set squashfsTools)`, squashfsTools ?? 'mksquashfs');
}

/** A one-line error about a tree this backend cannot stage as the native writer would store it. */
function cannotStage(p: string, reason: string): MkportableError {
  return new MkportableError('UNSTORABLE', `${p}: ${reason} with the mksquashfs backend (the native writer, the default, stores it)`, p);
}

/**
 * Lay the tree out in a staging folder (copies, reflinked where the filesystem can) and let mksquashfs pack it,
 * with every owner, mode and extended attribute of the plan, as the native writer stores them:
 * - owners, modes (and times, unless -all-time) of every entry go in through a pseudo file ("PATH m MODE UID GID",
 *   "PATH M TIME MODE UID GID"), so staging needs no root for them; the root directory's through -root-*; folders'
 *   times through the staged folders (4.5 refuses "M" on a folder that has entries);
 * - devices, fifos and sockets are pseudo entries too (Node cannot make device nodes);
 * - xattrs are set on the staged files (lsetxattr, after the copy and chmod: nothing clears them afterwards) and
 *   read back by mksquashfs. security.* and trusted.* need root; a pseudo entry cannot carry any. Either is
 *   refused with a one-line error rather than left out.
 * Paths are handed to the kernel as bytes, so names that are not UTF-8 are staged as they are; a name with a
 * line break cannot be named in a pseudo file and is refused.
 */
async function stage(tree: ImageTree, dir: string, opts: MksquashfsOptions): Promise<Buffer[]> {
  const pseudo: Buffer[] = [];
  const dirs: [Buffer, number, number][] = [];
  const hardlinks: [Buffer, Buffer][] = [];
  const xattrs: [string, Buffer, Record<string, Uint8Array>][] = [];
  const base = toBytes(dir);
  const at = (p: string) => Buffer.concat([base, toBytes(p)]);
  const line = (p: string, rest: string) => Buffer.concat([quotePseudo(p), Buffer.from(` ${rest}\n`)]);
  const time = (t: number) => (opts.allTime === false ? `${Math.max(0, Math.floor(t))} ` : '');
  // The upper-case pseudo types take a timestamp first.
  const timed = (type: string) => (opts.allTime === false ? type.toUpperCase() : type);
  const modify = timed('m');
  for (const p of walkTree(tree)) {
    const e = tree.entries.get(p)!;
    if (p.includes('\n')) throw cannotStage(p, 'a name with a line break cannot be named in a pseudo file');
    const dest = at(p);
    const owner = `${e.mode.toString(8)} ${e.uid} ${e.gid}`;
    const x = e.xattrs && Object.keys(e.xattrs).length ? e.xattrs : undefined;
    switch (e.type) {
      case 'dir':
        // mksquashfs 4.5's "M" (with a time) on a folder clashes with entries inside it: "m", and the time set
        // on the staged folder once its children are in.
        if (p !== '/') {
          await fs.mkdir(dest);
          pseudo.push(line(p, `m ${owner}`));
        }
        dirs.push([dest, e.mode, e.mtime]);
        break;
      case 'file': {
        const c = e.content;
        const host = c.kind === 'source' ? c.source.hostPath(c.path) : undefined;
        try {
          if (host) await fs.copyFile(host, dest, fsc.COPYFILE_FICLONE);
          else if (c.kind === 'source') await fs.writeFile(dest, await c.source.readFile(c.path));
          else await fs.writeFile(dest, c.data);
        } catch (err) {
          throw new MkportableError('SOURCE_READ', `${e.origin}: cannot read: ${systemReason(err)}`, e.origin);
        }
        const st = await fs.stat(dest);
        if (st.size !== e.size) {
          throw new MkportableError('SOURCE_READ', `${e.origin}: changed size while building (${e.size} → ${st.size} bytes)`, e.origin);
        }
        await fs.chmod(dest, e.mode);
        pseudo.push(line(p, `${modify} ${time(e.mtime)}${owner}`));
        break;
      }
      case 'symlink':
        await fs.symlink(toBytes(e.target), dest);
        pseudo.push(line(p, `${modify} ${time(e.mtime)}${owner}`));
        break;
      case 'hardlink':
        // Linked after the walk, once the target surely exists; the target's own line sets the shared inode.
        hardlinks.push([at(e.target), dest]);
        break;
      case 'char':
      case 'block':
        if (x) throw cannotStage(p, `a ${e.type} device with extended attributes cannot be staged`);
        pseudo.push(line(p, `${timed(e.type === 'char' ? 'c' : 'b')} ${time(e.mtime)}${owner} ${e.major} ${e.minor}`));
        break;
      case 'fifo':
      case 'socket':
        if (x) throw cannotStage(p, `a ${e.type} with extended attributes cannot be staged`);
        pseudo.push(line(p, `${timed('i')} ${time(e.mtime)}${owner} ${e.type === 'fifo' ? 'f' : 's'}`));
        break;
    }
    if (x && e.type !== 'hardlink') xattrs.push([p, dest, x]);
  }
  for (const [target, dest] of hardlinks) await fs.link(target, dest);
  for (const [p, dest, x] of xattrs) {
    for (const [name, value] of Object.entries(x)) {
      try {
        writeXattr(dest, name, value);
      } catch (err) {
        const c = (err as NodeJS.ErrnoException).code;
        const why = c === 'EPERM' || c === 'EACCES' ? `setting it needs root${process.getuid?.() === 0 ? ' (and a file system that takes it)' : ''}`
          : c === 'ENOTSUP' ? `the staging folder's file system (${os.tmpdir()}) does not take it` : (err as Error).message;
        throw cannotStage(p, `xattr ${name} cannot be staged: ${why}`);
      }
    }
  }
  // Modes and times last, deepest first, so a read-only folder does not stop its children from being created.
  for (const [d, mode, mtime] of dirs.reverse()) {
    await fs.chmod(d, mode);
    if (opts.allTime === false) await fs.utimes(d, mtime, mtime);
  }
  return pseudo;
}

/** A pseudo-file name: quoted, with `"` and `\` escaped, when it holds white space or either of them. */
function quotePseudo(p: string): Buffer {
  const b = toBytes(p);
  if (!/[\s"\\]/.test(p)) return b;
  return Buffer.concat([Buffer.from('"'), Buffer.from(b.toString('latin1').replace(/(["\\])/g, '\\$1'), 'latin1'), Buffer.from('"')]);
}

function run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    // mksquashfs refuses -all-time/-mkfs-time together with SOURCE_DATE_EPOCH; we pass the time explicitly.
    delete env.SOURCE_DATE_EPOCH;
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

/** Write `tree` to `outFile` with mksquashfs (the seed's flags plus what makes the output reproducible). */
export async function writeWithMksquashfs(tree: ImageTree, outFile: string, opts: MksquashfsOptions): Promise<void> {
  const mksquashfs = await findMksquashfs(opts.squashfsTools);
  const rootEntry = tree.entries.get('/') ?? { mode: 0o755, uid: 0, gid: 0, mtime: opts.mtime };
  const stageDir = await fs.mkdtemp(path.join(os.tmpdir(), 'mkportable-stage-'));
  try {
    const root = path.join(stageDir, 'root');
    await fs.mkdir(root);
    const pseudo = await stage(tree, root, opts);
    const args = [
      root, outFile,
      '-noappend', '-exit-on-error', '-root-mode', rootEntry.mode.toString(8), '-root-uid', String(rootEntry.uid), '-root-gid', String(rootEntry.gid),
      ...(opts.allTime === false ? ['-root-time', String(Math.max(0, Math.floor(rootEntry.mtime)))] : []),
      '-b', String(opts.blockSize), '-comp', ...opts.compression,
      // Staged files are fresh copies, so the only hard links mksquashfs sees are the plan's own; the only
      // xattrs, the ones stage() set.
      '-xattrs', '-mkfs-time', String(opts.mtime), ...(opts.allTime === false ? [] : ['-all-time', String(opts.mtime)]),
      '-quiet', '-no-progress',
    ];
    if (pseudo.length) {
      const pf = path.join(stageDir, 'pseudo');
      await fs.writeFile(pf, Buffer.concat(pseudo));
      args.push('-pf', pf);
    }
    const { code, output } = await run(mksquashfs, args);
    if (code !== 0) {
      const line = output.split('\n').map((l) => l.trim()).filter(Boolean).find((l) => /error|invalid|unknown|fail|not/i.test(l))
        ?? output.trim().split('\n').pop() ?? `exit ${code}`;
      throw new MkportableError('MKSQUASHFS_FAILED', `${mksquashfs} failed (exit ${code}): ${line}`, mksquashfs);
    }
  } finally {
    await fs.rm(stageDir, { recursive: true, force: true });
  }
}
