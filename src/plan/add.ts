import { MkportableError } from '../errors.js';
import { type Entry, type ImageTree, normalizeImagePath, parentOf } from './tree.js';

/** Directories created implicitly take this shape: root-owned 0755 with the build's timestamp. */
export function ensureDirs(tree: ImageTree, dir: string, mtime: number, reason: string): void {
  const missing: string[] = [];
  for (let p = dir; ; p = parentOf(p)) {
    const e = tree.entries.get(p);
    if (e) {
      if (e.type !== 'dir') {
        throw new MkportableError('SYMLINK_COLLISION', `${dir}: '${p}' is a ${e.type} in the image (${e.reason}), not a directory`, dir);
      }
      break;
    }
    missing.push(p);
    if (p === '/') break;
  }
  for (const p of missing.reverse()) {
    tree.entries.set(p, { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime, reason, origin: 'generated' });
  }
}

function sameEntry(a: Entry, b: Entry): boolean {
  if (a.type === 'dir' && b.type === 'dir') return true;
  if (a.type !== b.type || a.mode !== b.mode) return false;
  if (a.type === 'symlink' && b.type === 'symlink') return a.target === b.target;
  if (a.type === 'file' && b.type === 'file') return a.origin === b.origin;
  return false;
}

/**
 * Put an entry into the tree, creating parent directories. Adding the same thing twice is a no-op; a different
 * thing at a taken path is refused unless `onConflict` says to keep the existing entry.
 */
export function addEntry(
  tree: ImageTree,
  path: string,
  entry: Entry,
  onConflict: 'error' | 'keep' = 'error',
): boolean {
  const p = normalizeImagePath(path);
  if (p !== '/') ensureDirs(tree, parentOf(p), entry.mtime, entry.reason);
  const existing = tree.entries.get(p);
  if (existing) {
    if (sameEntry(existing, entry) || onConflict === 'keep') return false;
    throw new MkportableError(
      'SYMLINK_COLLISION',
      `${p}: ${entry.reason} wants a ${entry.type} here, but the image already has a ${existing.type} (${existing.reason})`,
      p,
    );
  }
  tree.entries.set(p, entry);
  return true;
}
