import { MkportableError } from '../errors.js';
import type { Source } from './source.js';
import { normalizeImagePath } from '../plan/tree.js';

/** Linux's MAXSYMLINKS: the kernel gives up with ELOOP after this many links in one lookup. */
export const MAX_SYMLINKS = 40;

/**
 * realpath(3) inside a Source: absolute link targets restart at the source's root (never the build
 * host's), relative ones at the link's directory, and ".." applies to the already-resolved prefix, as the
 * kernel does. Returns undefined when a component is missing or a non-directory is walked through.
 * Relative input paths are taken from "/", the working directory of a service by default.
 */
export async function realpathIn(source: Source, path: string): Promise<string | undefined> {
  let pending = split(path);
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '..') {
      resolved.pop();
      continue;
    }
    const here = '/' + [...resolved, name].join('/');
    const st = await source.lstat(here);
    if (!st) return undefined;
    if (st.type === 'symlink') {
      if (++links > MAX_SYMLINKS) {
        throw new MkportableError('SYMLINK_LOOP', `${source.name}:${path}: too many levels of symbolic links`, path);
      }
      const target = await source.readlink(here);
      if (target.startsWith('/')) resolved.length = 0;
      pending = [...split(target), ...pending];
      continue;
    }
    // "file/.." and "file/x" are ENOTDIR for the kernel.
    if (pending.length > 0 && st.type !== 'dir') return undefined;
    resolved.push(name);
  }
  return '/' + resolved.join('/');
}

const split = (p: string) => p.split('/').filter((c) => c !== '' && c !== '.');

/** The first `dir/name` that is an executable regular file (following symlinks inside the source), as execvp would pick. */
export async function findInPath(source: Source, name: string, dirs: readonly string[]): Promise<string | undefined> {
  for (const dir of dirs) {
    const cand = normalizeImagePath(`${dir}/${name}`);
    const real = await realpathIn(source, cand);
    if (!real) continue;
    const st = await source.lstat(real);
    if (st?.type === 'file' && (st.mode & 0o111) !== 0) return cand;
  }
  return undefined;
}
