import { MkportableError } from '../errors.js';
import type { SquashfsImage } from '../squashfs/read/index.js';
import type { Source, SourceStat } from './source.js';

/** A squashfs image seen as a Source, so inspect runs the closure resolver inside the image. */
export function squashfsSource(image: SquashfsImage, name: string): Source {
  // ELF parsing reads a file at several offsets: keep the last file read whole.
  let cached: { path: string; data: Uint8Array } | undefined;
  const whole = async (p: string) => {
    if (cached?.path !== p) cached = { path: p, data: await image.readFile(p) };
    return cached.data;
  };
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
    async read(p, offset, length) {
      const data = await whole(p);
      return data.subarray(Math.min(offset, data.length), Math.min(offset + length, data.length));
    },
    readFile: (p) => whole(p),
    async xattrs(p) {
      const x = (await image.stat(p)).xattrs;
      return x && Object.keys(x).length ? x : undefined;
    },
    hostPath: () => undefined,
  };
}
