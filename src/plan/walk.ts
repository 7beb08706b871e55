/**
 * A whole host folder as a PackedTree, the shape of `mksquashfs DIR IMG`: what planFromSource(directorySource(DIR))
 * gives, without an object per file. Each directory is listed, stat'ed and sorted in one native call (native/scan.c):
 * a stat per name through fs promises costs several times the system call. The calls run on libuv's thread pool,
 * several directories ahead of the one being taken in, so that a big tree is listed on every core.
 */
import { constants as fsc, lstatSync } from 'node:fs';
import path from 'node:path';
import { nativeAddon } from '../compress/common.js';
import { MkportableError, systemReason } from '../errors.js';
import { fromBytes } from '../formats/bytenames.js';
import { readXattrs } from '../native/fs.js';
import { nativeAddonPath } from '../package-root.js';
import { Kind, PackedTreeBuilder, pathBytesOf, pathOf, type KindCode, type PackedTree } from './packed.js';

export interface WalkOptions {
  /** Keep the owners found on disk, or make everything root's (mksquashfs -all-root). */
  owners?: 'keep' | 'root';
}

function kindOf(mode: number): KindCode {
  switch (mode & fsc.S_IFMT) {
    case fsc.S_IFREG: return Kind.file;
    case fsc.S_IFDIR: return Kind.dir;
    case fsc.S_IFLNK: return Kind.symlink;
    case fsc.S_IFCHR: return Kind.char;
    case fsc.S_IFBLK: return Kind.block;
    case fsc.S_IFIFO: return Kind.fifo;
    default: return Kind.socket;
  }
}

const SLASH = Buffer.from('/');

interface Scanned {
  names: Uint8Array;
  nameEnds: Uint32Array;
  /** mode, uid, gid, size, mtime, nlink, ino, dev, rdev, blocks (512-byte units allocated) per name. */
  stats: Float64Array;
  targets: Uint8Array;
  targetEnds: Uint32Array;
  /** Per extended attribute: the name's index, the attribute's name and value. */
  xattrRows: Uint32Array;
  xattrNames: Uint8Array;
  xattrNameEnds: Uint32Array;
  xattrValues: Uint8Array;
  xattrValueEnds: Uint32Array;
}
const FIELDS = 10;
const native = nativeAddon<{ scanAsync(dir: Buffer): Promise<Scanned> }>(nativeAddonPath(), "packing a folder needs mkportable's native addon, which",
  'install liblzma-dev and zlib1g-dev (apt-get install liblzma-dev zlib1g-dev) and run `npm rebuild mkportable` where mkportable is installed');

/** Directories being listed ahead of the walk: enough to keep a few cores busy, few enough to hold little. */
const AHEAD = 24;

function scan(dir: Buffer): Promise<Scanned> {
  const listing = native().scanAsync(dir).catch((e: unknown) => {
    if (e instanceof MkportableError) throw e;
    const where = fromBytes(dir);
    throw new MkportableError('SOURCE_READ', `${where}: cannot read: ${systemReason(e)}`, where);
  });
  listing.catch(() => {}); // awaited in turn; one listed ahead of a failure is never left unhandled
  return listing;
}

/** Namespaces squashfs can store (as sources/xattrs.ts keeps them); others (system.posix_acl_*, …) are left out. */
const STORABLE = ['user.', 'trusted.', 'security.'];
const isStorable = (name: string) => STORABLE.some((p) => name.startsWith(p) && name.length > p.length);

function storable(all: Record<string, Uint8Array> | undefined): Record<string, Uint8Array> | undefined {
  if (!all) return undefined;
  const kept = Object.entries(all).filter(([k]) => isStorable(k));
  return kept.length ? Object.fromEntries(kept) : undefined;
}

export async function walkHostDirectory(dir: string, opts: WalkOptions = {}): Promise<PackedTree> {
  const root = path.resolve(dir);
  const rootBytes = Buffer.from(root === '/' ? '' : root);
  const origin = `dir:${root}`;
  const allRoot = opts.owners === 'root';
  const b = new PackedTreeBuilder(4096);
  const hardlinks = new Map<string, number>();
  const holeCandidates = new Set<number>();

  const rootPath = Buffer.from(root === '/' ? '/' : root + '/');
  let rootStat;
  try {
    rootStat = lstatSync(rootPath);
  } catch {
    rootStat = null;
  }
  if (!rootStat?.isDirectory()) throw new MkportableError('PATH_NOT_FOUND', `${root}: not a folder`, root);
  b.add(Kind.dir, new Uint8Array(0), 0, rootStat.mode, allRoot ? 0 : rootStat.uid, allRoot ? 0 : rootStat.gid, Math.floor(rootStat.mtimeMs / 1000));
  const rootXattrs = storable(readXattrs(rootPath));
  if (rootXattrs) b.xattrs.set(0, rootXattrs);

  // Breadth first, so that a directory's children land in consecutive rows.
  const queue: { row: number; path: Buffer }[] = [{ row: 0, path: rootBytes }];
  const listings: (Promise<Scanned> | undefined)[] = [];
  let listed = 0;
  for (let q = 0; q < queue.length; q++) {
    for (; listed < queue.length && listed <= q + AHEAD; listed++) {
      const p = queue[listed].path;
      listings[listed] = scan(p.length ? p : SLASH);
    }
    const { row, path: dirPath } = queue[q];
    queue[q] = undefined as never; // let the frontier's paths go as the walk moves on
    const s = await listings[q]!;
    listings[q] = undefined;
    const count = s.nameEnds.length;
    const first = b.count;
    b.firstChild[row] = first;
    b.childCount[row] = count;
    // Which name each attribute belongs to, as rows: hard links keep their first name's (the inode's) attributes.
    const rows = new Int32Array(count).fill(-1);
    for (let i = 0; i < count; i++) {
      const f = i * FIELDS;
      const mode = s.stats[f];
      const kind = kindOf(mode);
      const nameStart = i === 0 ? 0 : s.nameEnds[i - 1];
      const nameEnd = s.nameEnds[i];
      const mtime = s.stats[f + 4];
      if (kind !== Kind.dir && s.stats[f + 5] > 1) {
        const key = `${s.stats[f + 7]}:${s.stats[f + 6]}`;
        const firstName = hardlinks.get(key);
        if (firstName !== undefined) {
          const r = b.addFrom(Kind.hardlink, s.names, nameStart, nameEnd, row, mode, 0, 0, mtime);
          b.link[r] = firstName;
          continue;
        }
        hardlinks.set(key, b.count);
      }
      const r = b.addFrom(kind, s.names, nameStart, nameEnd, row, mode, allRoot ? 0 : s.stats[f + 1], allRoot ? 0 : s.stats[f + 2], mtime, kind === Kind.file ? s.stats[f + 3] : 0);
      rows[i] = r;
      // A file whose allocated blocks cover its size has no holes worth looking for (the writer skips the probe).
      if (kind === Kind.file && s.stats[f + 9] * 512 < s.stats[f + 3]) holeCandidates.add(r);
      if (kind === Kind.dir) queue.push({ row: r, path: Buffer.concat([dirPath, SLASH, s.names.subarray(nameStart, nameEnd)]) });
      else if (kind === Kind.symlink) b.symlinks.set(r, s.targets.slice(i === 0 ? 0 : s.targetEnds[i - 1], s.targetEnds[i]));
      else if (kind === Kind.char || kind === Kind.block) {
        const rdev = s.stats[f + 8];
        b.devices.set(r, { major: Math.floor(rdev / 256) & 0xfff, minor: (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00) });
      }
    }
    for (let x = 0; x < s.xattrRows.length; x++) {
      const r = rows[s.xattrRows[x]];
      if (r < 0) continue;
      const name = fromBytes(s.xattrNames.subarray(x === 0 ? 0 : s.xattrNameEnds[x - 1], s.xattrNameEnds[x]));
      if (!isStorable(name)) continue;
      const value = s.xattrValues.slice(x === 0 ? 0 : s.xattrValueEnds[x - 1], s.xattrValueEnds[x]);
      let set = b.xattrs.get(r);
      if (!set) b.xattrs.set(r, (set = {}));
      set[name] = value;
    }
  }

  let tree: PackedTree;
  const content = (row: number) => ({ kind: 'host' as const, path: Buffer.concat([rootBytes, pathBytesOf(tree, row)]) });
  tree = b.finish(content, (row) => `${origin}:${pathOf(tree, row)}`, rootBytes, holeCandidates);
  return tree;
}
