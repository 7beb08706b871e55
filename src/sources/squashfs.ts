import { MkportableError } from '../errors.js';
import type { SquashfsImage } from '../squashfs/read/index.js';
import type { Source, SourceStat } from './source.js';

/** A squashfs image seen as a Source, so inspect runs the closure resolver inside the image. */
export function squashfsSource(image: SquashfsImage, name: string): Source {
  return {
    name,
    async lstat(p): Promise<SourceStat | null> {
      try {
        const st = await image.stat(p);
        const stat: SourceStat = { type: st.type, mode: st.mode, size: st.size, uid: st.uid, gid: st.gid, mtimeMs: st.mtime * 1000, ino: st.ino, nlink: st.nlink };
        if (st.major !== undefined) stat.rdev = { major: st.major, minor: st.minor ?? 0 };
        return stat;
      } catch (e) {
        if (e instanceof MkportableError && e.code === 'PATH_NOT_FOUND') return null;
        throw e;
      }
    },
    readlink: (p) => image.readlink(p),
    readdir: async (p) => (await image.readdir(p)).map((e) => e.name),
    read: (p, offset, length) => image.read(p, offset, length),
    readFile: (p) => image.readFile(p),
    async xattrs(p) {
      const x = (await image.stat(p)).xattrs;
      return x && Object.keys(x).length ? x : undefined;
    },
    hostPath: () => undefined,
  };
}
