import { promises as fs, constants as fsc } from 'node:fs';
import path from 'node:path';
import type { Source, SourceStat, FileType } from './source.js';

function typeOf(mode: number): FileType {
  switch (mode & fsc.S_IFMT) {
    case fsc.S_IFREG: return 'file';
    case fsc.S_IFDIR: return 'dir';
    case fsc.S_IFLNK: return 'symlink';
    case fsc.S_IFCHR: return 'char';
    case fsc.S_IFBLK: return 'block';
    case fsc.S_IFIFO: return 'fifo';
    default: return 'socket';
  }
}

/** A directory of the build host seen as a root filesystem ("/" for the host itself). */
export function directorySource(root: string, name = root === '/' ? 'host' : `dir:${root}`): Source {
  const real = (p: string) => (root === '/' ? p : path.join(root, p));
  return {
    name,
    async lstat(p) {
      try {
        const st = await fs.lstat(real(p), { bigint: false });
        const stat: SourceStat = {
          type: typeOf(st.mode),
          mode: st.mode & 0o7777,
          size: st.size,
          uid: st.uid,
          gid: st.gid,
          mtimeMs: st.mtimeMs,
          ino: st.ino,
          nlink: st.nlink,
        };
        if (stat.type === 'char' || stat.type === 'block') {
          stat.rdev = { major: Number((BigInt(st.rdev) >> 8n) & 0xfffn), minor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00) };
        }
        return stat;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return null;
        throw e;
      }
    },
    readlink: (p) => fs.readlink(real(p)),
    readdir: async (p) => (await fs.readdir(real(p))).sort(),
    async read(p, offset, length) {
      const fh = await fs.open(real(p), 'r');
      try {
        const buf = Buffer.alloc(length);
        const { bytesRead } = await fh.read(buf, 0, length, offset);
        return buf.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    },
    readFile: (p) => fs.readFile(real(p)),
    hostPath: (p) => real(p),
  };
}

export const hostSource = (): Source => directorySource('/');
