import { promises as fs, constants as fsc } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { MkportableError } from '../errors.js';
import { type ImageTree, walkTree } from '../plan/tree.js';

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

/**
 * Lay the tree out in a staging folder (copies, reflinked where the filesystem can) and let mksquashfs pack it.
 * Devices, fifos and sockets go through a pseudo file, so staging needs no root.
 */
async function stage(tree: ImageTree, dir: string, opts: MksquashfsOptions): Promise<string[]> {
  const pseudo: string[] = [];
  const dirs: [string, number][] = [];
  const hardlinks: [string, string][] = [];
  for (const p of walkTree(tree)) {
    const e = tree.entries.get(p)!;
    const dest = path.join(dir, p);
    switch (e.type) {
      case 'dir':
        if (p !== '/') await fs.mkdir(dest);
        dirs.push([dest, e.mode]);
        break;
      case 'file': {
        const c = e.content;
        const host = c.kind === 'source' ? c.source.hostPath(c.path) : undefined;
        try {
          if (host) await fs.copyFile(host, dest, fsc.COPYFILE_FICLONE);
          else if (c.kind === 'source') await fs.writeFile(dest, await c.source.readFile(c.path));
          else await fs.writeFile(dest, c.data);
        } catch (err) {
          throw new MkportableError('SOURCE_READ', `${e.origin}: cannot read: ${(err as Error).message}`, e.origin);
        }
        const st = await fs.stat(dest);
        if (st.size !== e.size) {
          throw new MkportableError('SOURCE_READ', `${e.origin}: changed size while building (${e.size} → ${st.size} bytes)`, e.origin);
        }
        await fs.chmod(dest, e.mode);
        if (opts.allTime === false) await fs.utimes(dest, e.mtime, e.mtime);
        break;
      }
      case 'symlink':
        await fs.symlink(e.target, dest);
        break;
      case 'hardlink':
        // Linked after the walk, once the target surely exists.
        hardlinks.push([path.join(dir, e.target), dest]);
        break;
      case 'char':
      case 'block':
        pseudo.push(`${quotePseudo(p)} ${e.type === 'char' ? 'c' : 'b'} ${e.mode.toString(8)} ${e.uid} ${e.gid} ${e.major} ${e.minor}`);
        break;
      case 'fifo':
      case 'socket':
        pseudo.push(`${quotePseudo(p)} i ${e.mode.toString(8)} ${e.uid} ${e.gid} ${e.type === 'fifo' ? 'p' : 's'}`);
        break;
    }
  }
  for (const [target, dest] of hardlinks) await fs.link(target, dest);
  // Modes last, deepest first, so a read-only folder does not stop its children from being created.
  for (const [d, mode] of dirs.reverse()) await fs.chmod(d, mode);
  return pseudo;
}

function quotePseudo(p: string): string {
  return /[\s"\\]/.test(p) ? `"${p.replace(/(["\\])/g, '\\$1')}"` : p;
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
  const stageDir = await fs.mkdtemp(path.join(os.tmpdir(), 'mkportable-stage-'));
  try {
    const root = path.join(stageDir, 'root');
    await fs.mkdir(root);
    const pseudo = await stage(tree, root, opts);
    const args = [
      root, outFile,
      '-noappend', '-exit-on-error', '-all-root', '-root-mode', (tree.entries.get('/')?.mode ?? 0o755).toString(8),
      '-b', String(opts.blockSize), '-comp', ...opts.compression,
      // Staged files are fresh copies, so the only hard links mksquashfs sees are the plan's own.
      '-no-xattrs', '-mkfs-time', String(opts.mtime), ...(opts.allTime === false ? [] : ['-all-time', String(opts.mtime)]),
      '-quiet', '-no-progress',
    ];
    if (pseudo.length) {
      const pf = path.join(stageDir, 'pseudo');
      await fs.writeFile(pf, pseudo.join('\n') + '\n');
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
