import type { Source } from '../sources/source.js';
import { toBytes } from '../formats/bytenames.js';

/**
 * The in-memory image tree: absolute image path -> entry. Writers consume only this, so the native writer and
 * mksquashfs produce images of the same tree. Paths, symlink targets and xattr names are bytes, held as strings
 * in the lossless form of formats/bytenames.ts (UTF-8 as such, any other byte as U+DC80..U+DCFF).
 */
export type FileContent =
  | { kind: 'source'; source: Source; path: string }
  | { kind: 'bytes'; data: Uint8Array };

interface EntryBase {
  /** Permission bits including setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Why the entry is in the image ("unit", "closure of /usr/bin/memcached", "skeleton", ...). */
  reason: string;
  /** Where the bytes or the link came from ("host:/usr/lib/x86_64-linux-gnu/libc.so.6", "generated"). */
  origin: string;
  /** Extended attributes by full name ("security.capability"); only user., trusted. and security. can be stored. */
  xattrs?: Record<string, Uint8Array>;
}

export type Entry =
  | (EntryBase & { type: 'dir' })
  | (EntryBase & { type: 'file'; size: number; content: FileContent })
  | (EntryBase & { type: 'symlink'; target: string })
  | (EntryBase & { type: 'char' | 'block'; major: number; minor: number })
  | (EntryBase & { type: 'fifo' | 'socket' })
  /** Another name for the (non-directory) entry at `target`: writers store one shared inode. */
  | (EntryBase & { type: 'hardlink'; target: string });

export interface ImageTree {
  entries: Map<string, Entry>;
}

export function createTree(): ImageTree {
  return { entries: new Map() };
}

/** Normalise to an absolute path without trailing slash, "." or ".." components. */
export function normalizeImagePath(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return '/' + out.join('/');
}

export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

/** Children of a directory, sorted bytewise by name as squashfs requires. */
export function childrenOf(tree: ImageTree, dir: string): string[] {
  const prefix = dir === '/' ? '/' : dir + '/';
  const names: string[] = [];
  for (const p of tree.entries.keys()) {
    if (p !== '/' && p.startsWith(prefix) && !p.slice(prefix.length).includes('/')) names.push(p.slice(prefix.length));
  }
  return sortByBytes(names);
}

/** Paths in depth-first order with siblings sorted, the order a writer visits them. */
export function walkTree(tree: ImageTree): string[] {
  const byParent = new Map<string, string[]>();
  for (const p of tree.entries.keys()) {
    if (p === '/') continue;
    const parent = parentOf(p);
    let list = byParent.get(parent);
    if (!list) byParent.set(parent, (list = []));
    list.push(p);
  }
  const out: string[] = [];
  const visit = (dir: string) => {
    out.push(dir);
    const kids = sortByBytes(byParent.get(dir) ?? []);
    for (const k of kids) {
      if (tree.entries.get(k)?.type === 'dir') visit(k);
      else out.push(k);
    }
  };
  if (tree.entries.has('/')) visit('/');
  return out;
}

/** Strings sorted by their bytes (each converted once). */
function sortByBytes(names: string[]): string[] {
  return names.map((n) => ({ n, b: toBytes(n) })).sort((x, y) => Buffer.compare(x.b, y.b)).map((x) => x.n);
}
