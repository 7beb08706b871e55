import type { Source } from '../sources/source.js';
import { type Entry, type ImageTree, createTree } from './tree.js';
import { sourceXattrs } from '../sources/xattrs.js';

export interface PlanFromSourceOptions {
  /** Keep the source's owners, or make everything root's (mksquashfs -all-root). */
  owners?: 'keep' | 'root';
  /** A fixed timestamp for every entry, or keep the source's. */
  mtime?: number | 'keep';
}

/**
 * The whole subtree at `dir` of a source as an image tree rooted at "/": the shape of `mksquashfs DIR IMG`.
 * Hard links in the source (same inode) become hardlink entries to the first name in sorted walk order.
 */
export async function planFromSource(source: Source, dir: string, opts: PlanFromSourceOptions = {}): Promise<ImageTree> {
  const tree = createTree();
  const seen = new Map<number, string>();
  const base = dir === '/' ? '' : dir.replace(/\/+$/, '');
  const visit = async (rel: string): Promise<void> => {
    const src = base + rel || '/';
    const st = await source.lstat(src);
    if (!st) return;
    const path = rel || '/';
    const xattrs = await sourceXattrs(source, src);
    const common = {
      ...(xattrs ? { xattrs } : {}),
      mode: st.mode,
      uid: opts.owners === 'root' ? 0 : st.uid,
      gid: opts.owners === 'root' ? 0 : st.gid,
      mtime: opts.mtime === undefined || opts.mtime === 'keep' ? Math.floor(st.mtimeMs / 1000) : opts.mtime,
      reason: 'tree',
      origin: `${source.name}:${src}`,
    };
    if (st.type !== 'dir' && st.ino !== undefined && (st.nlink ?? 1) > 1) {
      const first = seen.get(st.ino);
      if (first) {
        tree.entries.set(path, { ...common, type: 'hardlink', target: first });
        return;
      }
      seen.set(st.ino, path);
    }
    let entry: Entry;
    switch (st.type) {
      case 'dir':
        tree.entries.set(path, { ...common, type: 'dir' });
        for (const name of await source.readdir(src)) await visit(`${rel}/${name}`);
        return;
      case 'file':
        entry = { ...common, type: 'file', size: st.size, content: { kind: 'source', source, path: src } };
        break;
      case 'symlink':
        entry = { ...common, type: 'symlink', target: await source.readlink(src) };
        break;
      case 'char':
      case 'block':
        entry = { ...common, type: st.type, major: st.rdev?.major ?? 0, minor: st.rdev?.minor ?? 0 };
        break;
      default:
        entry = { ...common, type: st.type };
    }
    tree.entries.set(path, entry);
  };
  await visit('');
  return tree;
}
