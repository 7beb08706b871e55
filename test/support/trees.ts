/**
 * Byte-exact comparison of two file trees as the kernel shows them (a source folder, a loop-mounted image, an
 * unsquashfs extraction): names as bytes, type, mode, owner, size, device numbers, link targets as bytes, the
 * storable xattrs, contents, and which names share an inode. Paths are walked as Buffers, so names that are not
 * UTF-8 are compared as they are.
 */
import { createHash } from 'node:crypto';
import { promises as fs, constants as fsc } from 'node:fs';
import { dataRanges, readXattrs } from '../../src/native/fs.js';
import { escapeName, fromBytes, toBytes } from '../../src/formats/bytenames.js';

export interface Facts {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  rdev?: string;
  /** Link target, hex of its bytes. */
  target?: string;
  /** Storable xattrs (user., trusted., security.): name → hex value. */
  xattrs: Record<string, string>;
  /** sha256 of the contents (files up to BIG). */
  sha256?: string;
  ino: number;
  nlink: number;
}

/** Files from this size up are compared range by range (see compareBig) instead of hashed. */
export const BIG = 256 << 20;

function typeOf(mode: number): string {
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

const STORABLE = /^(user|trusted|security)\../;

async function sha256(file: Buffer): Promise<string> {
  const h = createHash('sha256');
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** Every entry under `root` (root itself as "/"), keyed by its path relative to root in bytenames form. */
export async function snapshot(root: string): Promise<Map<string, Facts>> {
  const out = new Map<string, Facts>();
  const base = toBytes(root);
  const visit = async (rel: Buffer): Promise<void> => {
    const abs = Buffer.concat([base, rel]);
    const st = await fs.lstat(abs);
    const type = typeOf(st.mode);
    const xattrs: Record<string, string> = {};
    for (const [k, v] of Object.entries(readXattrs(abs) ?? {})) if (STORABLE.test(k)) xattrs[k] = Buffer.from(v).toString('hex');
    const f: Facts = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: type === 'dir' ? 0 : st.size, xattrs, ino: st.ino, nlink: st.nlink };
    if (type === 'char' || type === 'block') f.rdev = `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`;
    if (type === 'symlink') f.target = (await fs.readlink(abs, { encoding: 'buffer' })).toString('hex');
    if (type === 'file' && st.size < BIG) f.sha256 = await sha256(abs);
    out.set(rel.length ? fromBytes(rel) : '/', f);
    if (type === 'dir') {
      for (const name of await fs.readdir(abs, { encoding: 'buffer' })) await visit(Buffer.concat([rel, Buffer.from('/'), name]));
    }
  };
  await visit(Buffer.alloc(0));
  return out;
}

export interface ComparePolicy {
  /** Owners every entry of `b` must have instead of `a`'s (mkportable makes host files root's). */
  owners?: { uid: number; gid: number };
  /** 'keep': names sharing an inode in `a` share one in `b`, and no others; 'broken': every file of `b` has one name. */
  hardLinks: 'keep' | 'broken';
  /** Paths of `a` not expected in `b` (or whose facts differ on purpose), exactly. */
  skip?: (path: string) => boolean;
  /** Compare the root directory's own facts too (default true). */
  root?: boolean;
}

/** Every difference between `a` (the source) and `b`, one line each, names shown escaped. Empty when equal. */
export function differences(a: Map<string, Facts>, b: Map<string, Facts>, policy: ComparePolicy): string[] {
  const diffs: string[] = [];
  const show = (p: string) => escapeName(p);
  const skip = policy.skip ?? (() => false);
  for (const [p, fa] of a) {
    if (skip(p)) continue;
    const fb = b.get(p);
    if (!fb) {
      diffs.push(`${show(p)}: missing`);
      continue;
    }
    if (p === '/' && policy.root === false) continue;
    const want = { ...fa, ...(policy.owners ?? {}) };
    for (const k of ['type', 'mode', 'uid', 'gid', 'size', 'rdev', 'target', 'sha256'] as const) {
      if (fa.type === 'dir' && k === 'size') continue;
      if (want[k] !== fb[k]) diffs.push(`${show(p)}: ${k} ${String(want[k]).slice(0, 80)} → ${String(fb[k]).slice(0, 80)}`);
    }
    const xa = JSON.stringify(Object.entries(fa.xattrs).sort());
    const xb = JSON.stringify(Object.entries(fb.xattrs).sort());
    if (xa !== xb) diffs.push(`${show(p)}: xattrs ${xa} → ${xb}`);
  }
  for (const p of b.keys()) if (!a.has(p) && !skip(p)) diffs.push(`${show(p)}: extra`);
  // Hard links: the groups of names sharing an inode.
  const groups = (m: Map<string, Facts>) => {
    const byIno = new Map<number, string[]>();
    for (const [p, f] of m) {
      if (f.type === 'dir' || skip(p)) continue;
      byIno.set(f.ino, [...(byIno.get(f.ino) ?? []), p]);
    }
    return new Set([...byIno.values()].filter((g) => g.length > 1).map((g) => g.sort().map(show).join(' = ')));
  };
  const ga = groups(a);
  const gb = groups(b);
  if (policy.hardLinks === 'keep') {
    for (const g of ga) if (!gb.has(g)) diffs.push(`hard links ${g}: not kept`);
    for (const g of gb) if (!ga.has(g)) diffs.push(`hard links ${g}: not in the source`);
  } else {
    for (const g of gb) diffs.push(`hard links ${g}: expected separate files`);
    for (const [p, f] of b) if (f.type !== 'dir' && !skip(p) && f.nlink !== 1) diffs.push(`${show(p)}: nlink ${f.nlink}, expected 1`);
  }
  return diffs;
}

/**
 * Compare a big (sparse) file byte for byte without hashing gigabytes of zeros: the source's data ranges are
 * compared exactly; the rest of `b` must be zeros. `b`'s own holes are trusted when its file system reports
 * them (ext4 after unsquashfs); a squashfs mount reports none, so with `readHoles` every byte of it is read.
 * Returns the differences found.
 */
export async function compareBig(a: string, b: string, readHoles: boolean): Promise<string[]> {
  const fa = await fs.open(toBytes(a), 'r');
  const fb = await fs.open(toBytes(b), 'r');
  try {
    const [sa, sb] = [await fa.stat(), await fb.stat()];
    if (sa.size !== sb.size) return [`size ${sa.size} → ${sb.size}`];
    const size = sa.size;
    const chunk = 8 << 20;
    const bufA = Buffer.alloc(chunk);
    const bufB = Buffer.alloc(chunk);
    const same = async (start: number, end: number): Promise<string | null> => {
      for (let at = start; at < end; at += chunk) {
        const n = Math.min(chunk, end - at);
        await fa.read(bufA, 0, n, at);
        await fb.read(bufB, 0, n, at);
        if (!bufA.subarray(0, n).equals(bufB.subarray(0, n))) return `bytes differ in [${at}, ${at + n})`;
      }
      return null;
    };
    const zeros = Buffer.alloc(chunk);
    const zero = async (start: number, end: number): Promise<string | null> => {
      for (let at = start; at < end; at += chunk) {
        const n = Math.min(chunk, end - at);
        await fb.read(bufB, 0, n, at);
        if (!bufB.subarray(0, n).equals(zeros.subarray(0, n))) return `not zeros in [${at}, ${at + n}) (a hole in the source)`;
      }
      return null;
    };
    const diffs: string[] = [];
    const ra = dataRanges(fa.fd, size);
    for (const [s, e] of ra) {
      const d = await same(s, e);
      if (d) diffs.push(d);
    }
    // The holes of `a`: where `b` reports data (or everything, with readHoles), it must read as zeros.
    const holes: [number, number][] = [];
    let at = 0;
    for (const [s, e] of ra) {
      if (s > at) holes.push([at, s]);
      at = e;
    }
    if (at < size) holes.push([at, size]);
    const rb = readHoles ? [[0, size] as [number, number]] : dataRanges(fb.fd, size);
    for (const [hs, he] of holes) {
      for (const [bs, be] of rb) {
        const s = Math.max(hs, bs);
        const e = Math.min(he, be);
        if (s < e) {
          const d = await zero(s, e);
          if (d) diffs.push(d);
        }
      }
    }
    return diffs;
  } finally {
    await fa.close();
    await fb.close();
  }
}
