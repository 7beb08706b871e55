import type { Source, SourceStat } from '../sources/source.js';
import { childrenOf, type Entry, type ImageTree } from './tree.js';

/**
 * The image tree seen as a Source: what the image will hold, before it is written. Lets the code that
 * reads a source (realpath, the library search) answer questions about the finished image, e.g. which
 * libraries the loader's cache must describe.
 */
export function treeSource(tree: ImageTree, name = 'the image'): Source {
  const entry = (p: string): Entry | undefined => {
    let e = tree.entries.get(p);
    for (let hops = 0; e?.type === 'hardlink' && hops < 8; hops++) e = tree.entries.get(e.target);
    return e?.type === 'hardlink' ? undefined : e;
  };
  const fileOf = (p: string) => {
    const e = entry(p);
    if (e?.type !== 'file') throw Object.assign(new Error(`${p}: not a regular file in the image`), { code: 'EINVAL' });
    return e;
  };
  return {
    name,
    async lstat(p) {
      const e = entry(p);
      if (!e) return null;
      const st: SourceStat = { type: e.type === 'hardlink' ? 'file' : e.type, mode: e.mode, size: 0, uid: e.uid, gid: e.gid, mtimeMs: e.mtime * 1000 };
      if (e.type === 'file') st.size = e.size;
      if (e.type === 'symlink') st.size = Buffer.byteLength(e.target);
      if (e.type === 'char' || e.type === 'block') st.rdev = { major: e.major, minor: e.minor };
      return st;
    },
    async readlink(p) {
      const e = entry(p);
      if (e?.type !== 'symlink') throw Object.assign(new Error(`${p}: not a symlink in the image`), { code: 'EINVAL' });
      return e.target;
    },
    async readdir(p) {
      return childrenOf(tree, p);
    },
    async read(p, offset, length) {
      const c = fileOf(p).content;
      if (c.kind === 'bytes') return c.data.subarray(offset, offset + length);
      return c.source.read(c.path, offset, length);
    },
    async readFile(p) {
      const c = fileOf(p).content;
      return c.kind === 'bytes' ? c.data : c.source.readFile(c.path);
    },
    hostPath(p) {
      const e = entry(p);
      return e?.type === 'file' && e.content.kind === 'source' ? e.content.source.hostPath(e.content.path) : undefined;
    },
  };
}
