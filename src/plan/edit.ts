/** Edits of a planned tree that keep it consistent: removing a path keeps the hard links to it valid. */
import type { Entry, ImageTree } from './tree.js';

/**
 * Remove an entry (and a directory's subtree) from a tree; hard links to a removed file are re-pointed to the
 * first remaining name, which takes over the file itself.
 */
export function removeEntry(tree: ImageTree, p: string): void {
  const gone: string[] = [];
  for (const k of tree.entries.keys()) if (k === p || k.startsWith(p === '/' ? '/' : p + '/')) gone.push(k);
  const removed = new Map<string, Entry>();
  for (const k of gone) {
    removed.set(k, tree.entries.get(k)!);
    tree.entries.delete(k);
  }
  for (const [k, e] of removed) {
    if (e.type === 'hardlink') continue;
    const links = [...tree.entries].filter(([, x]) => x.type === 'hardlink' && x.target === k).map(([name]) => name).sort();
    if (links.length === 0) continue;
    const [heir, ...rest] = links;
    tree.entries.set(heir, { ...e, origin: tree.entries.get(heir)!.origin });
    for (const r of rest) tree.entries.set(r, { ...(tree.entries.get(r) as Entry & { type: 'hardlink' }), target: heir });
  }
}

/**
 * Make room for entries another stage will add: `files` are removed whatever they are, `dirs` only when they are
 * not directories (a directory stays, with what is in it). The later entry then replaces the tree's version rather
 * than colliding with it.
 */
export function makeRoom(tree: ImageTree, files: readonly string[], dirs: readonly string[]): void {
  for (const f of files) if (tree.entries.has(f)) removeEntry(tree, f);
  for (const d of dirs) {
    const e = tree.entries.get(d);
    if (e && e.type !== 'dir') removeEntry(tree, d);
  }
}
