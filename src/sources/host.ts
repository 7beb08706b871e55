import { closeSync, constants as fsc, lstatSync, openSync, promises as fs, readdirSync, readlinkSync, readSync } from 'node:fs';
import path from 'node:path';
import { MkportableError } from '../errors.js';
import { compareNames, fromBytes, toBytes } from '../formats/bytenames.js';
import { dataRanges, readXattrs, SPARSE_MIN } from '../native/fs.js';
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

/** Linux's NAME_MAX: no component of a real path is longer. */
const NAME_MAX = 255;

const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

/** A file-system error of the build host as a one-line error naming the path (in the source's terms). */
function hostError(source: string, p: string, e: unknown): MkportableError {
  if (e instanceof MkportableError) return e;
  const c = code(e);
  const reason = c === 'EACCES' || c === 'EPERM' ? 'permission denied'
    : c === 'ENOENT' ? 'it disappeared while the build read it'
    : c === 'ENAMETOOLONG' ? `the path is longer than the build host can open (PATH_MAX, 4096 bytes)`
    : c === 'ELOOP' ? 'too many levels of symbolic links'
    : c === 'EIO' ? 'input/output error'
    : (/^[A-Z0-9]+: ([^,]+)/.exec(e instanceof Error ? e.message : '')?.[1] ?? String(e));
  return new MkportableError('SOURCE_READ', `${source}:${p}: cannot read: ${reason}`, p);
}

/**
 * A directory of the build host seen as a root filesystem ("/" for the host itself). Paths are handed to the
 * kernel as bytes (see formats/bytenames.ts), so names that are not UTF-8 are found, listed and read as they are.
 * Metadata, listings and ranged reads are synchronous system calls: the closure asks one question at a time and
 * waits for each answer, and a local folder answers in microseconds, far less than a promise's round trip through
 * libuv's thread pool (a 5,000-file closure resolved in 0.35 s instead of 1.45 s). Whole files stay asynchronous.
 */
export function directorySource(root: string, name = root === '/' ? 'host' : `dir:${root}`): Source {
  const real = (p: string) => toBytes(root === '/' ? p : path.join(root, p));
  const fail = (p: string, e: unknown) => hostError(name, p, e);
  /** A component longer than NAME_MAX cannot exist: such a path is simply not there. */
  const impossible = (p: string) => p.split('/').some((c) => toBytes(c).length > NAME_MAX);
  return {
    name,
    async lstat(p) {
      try {
        const st = lstatSync(real(p), { bigint: false });
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
        const c = code(e);
        if (c === 'ENOENT' || c === 'ENOTDIR') return null;
        if (c === 'ENAMETOOLONG' && impossible(p)) return null;
        throw fail(p, e);
      }
    },
    async readlink(p) {
      try {
        return fromBytes(readlinkSync(real(p), { encoding: 'buffer' }));
      } catch (e) {
        throw fail(p, e);
      }
    },
    async readdir(p) {
      try {
        return readdirSync(real(p), { encoding: 'buffer' }).map(fromBytes).sort(compareNames);
      } catch (e) {
        throw fail(p, e);
      }
    },
    async read(p, offset, length) {
      try {
        const fd = openSync(real(p), 'r');
        try {
          const buf = Buffer.alloc(length);
          return buf.subarray(0, readSync(fd, buf, 0, length, offset));
        } finally {
          closeSync(fd);
        }
      } catch (e) {
        throw fail(p, e);
      }
    },
    async readFile(p) {
      try {
        return await fs.readFile(real(p));
      } catch (e) {
        throw fail(p, e);
      }
    },
    async xattrs(p) {
      try {
        return readXattrs(real(p));
      } catch (e) {
        throw fail(p, e);
      }
    },
    async dataRanges(p, size) {
      if (size < SPARSE_MIN) return undefined;
      try {
        const fh = await fs.open(real(p), 'r');
        try {
          return dataRanges(fh.fd, size);
        } finally {
          await fh.close();
        }
      } catch (e) {
        throw fail(p, e);
      }
    },
    hostPath: (p) => real(p),
  };
}

export const hostSource = (): Source => directorySource('/');
