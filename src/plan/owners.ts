import type { Source } from '../sources/source.js';
import { sourceXattrs } from '../sources/xattrs.js';
import type { ImageTree } from './tree.js';

/**
 * The resolver puts what it finds in as root's; for a rootfs source the owners, group and xattrs of the source
 * are kept instead (as a whole-tree plan keeps them), for every entry taken from the same path of the source.
 */
export async function keepSourceOwners(tree: ImageTree, source: Source): Promise<void> {
  for (const [p, e] of tree.entries) {
    if (e.origin !== `${source.name}:${p}` || e.type === 'hardlink') continue;
    const st = await source.lstat(p);
    if (!st) continue;
    e.uid = st.uid;
    e.gid = st.gid;
    const x = await sourceXattrs(source, p);
    if (x) e.xattrs = x;
  }
}
