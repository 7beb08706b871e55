/**
 * Plan the image before any byte is written: validate the tree, resolve hard links to shared inodes, number the
 * inodes, collect ids and xattr sets, and fix the order in which inodes and directory listings go into their
 * tables. The plan works on a PackedTree (an ImageTree is packed first) and keeps only typed arrays per row, so
 * planning a million files costs a few tens of bytes each.
 *
 * Order: a directory's subdirectories are written first (their own subtrees and listings), then the inodes of
 * all its children in name order, then its listing; the root inode comes last. Inode numbers follow that order,
 * so a directory's children have consecutive numbers and sit together in the inode table (few listing headers).
 */
import { MkportableError } from '../errors.js';
import { Kind, PackedTreeBuilder, isPackedTree, nameOf, pathOf, type KindCode, type PackedTree } from '../plan/packed.js';
import type { Entry, FileContent, ImageTree } from '../plan/tree.js';
import { compareBytes } from './bytes.js';
import { INVALID_XATTR, MAX_DEVICE_MAJOR, MAX_DEVICE_MINOR, MAX_IDS, MAX_SYMLINK_TARGET } from './format.js';
import { toBytes } from '../formats/bytenames.js';
import { parseXattrName, type Xattr } from './xattr-table.js';

export interface Plan {
  tree: PackedTree;
  inodeCount: number;
  /** Inode number by row (0 for hard-link rows: their inode is tree.link[row]'s). */
  number: Uint32Array;
  /** Link count by inode row. */
  nlink: Uint32Array;
  /** Write order: a row >= 0 writes that row's inode; -(row + 1) writes that directory's listing. */
  steps: Int32Array;
  /** Regular-file inode rows in inode order (each once, whatever its link count). */
  files: Uint32Array;
  /** Inode row by inode number - 1. */
  order: Uint32Array;
  ids: number[];
  idIndex: Map<number, number>;
  xattrSets: Xattr[][];
  /** Xattr set index by inode row (rows without xattrs are absent). */
  xattrOf: Map<number, number>;
}

export function invalidTree(path: string, reason: string): MkportableError {
  return new MkportableError('UNSTORABLE', `${path}: ${reason} (cannot be stored in a squashfs image)`, path);
}

/**
 * Longest name written: Linux's NAME_MAX. The format would take 256 bytes, but no Linux file system can hold
 * such a name, so unsquashfs could not extract it and nothing could have made it.
 */
export const MAX_STORED_NAME = 255;

export const clampTime = (t: number): number => Math.min(0xffffffff, Math.max(0, Math.floor(t)));

function checkName(path: string, name: Uint8Array): void {
  if (name.length === 0 || name.length > MAX_STORED_NAME) throw invalidTree(path, `name of ${name.length} bytes (1..${MAX_STORED_NAME} allowed)`);
  if (name.includes(0)) throw invalidTree(path, 'name contains a NUL byte');
  if (name.includes(0x2f)) throw invalidTree(path, "name contains a '/'");
  if ((name.length === 1 && name[0] === 0x2e) || (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)) {
    throw invalidTree(path, `'${name.length === 1 ? '.' : '..'}' as a name`);
  }
}

const TYPE_KIND: Record<Exclude<Entry['type'], never>, KindCode> = {
  dir: Kind.dir, file: Kind.file, symlink: Kind.symlink, char: Kind.char, block: Kind.block, fifo: Kind.fifo, socket: Kind.socket, hardlink: Kind.hardlink,
};

/** Follow hard links to the entry that owns the inode. */
function resolveLink(tree: ImageTree, path: string): string {
  const seen = new Set<string>();
  let p = path;
  for (;;) {
    const e = tree.entries.get(p);
    if (!e) throw invalidTree(path, `hard link to '${p}', which is not in the image`);
    if (e.type !== 'hardlink') {
      if (e.type === 'dir') throw invalidTree(path, `hard link to the directory '${p}'`);
      return p;
    }
    if (seen.has(p)) throw invalidTree(path, 'hard link loop');
    seen.add(p);
    p = e.target;
  }
}

function checkEntry(path: string, e: Entry): void {
  for (const [what, v] of [['uid', e.uid], ['gid', e.gid]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw invalidTree(path, `${what} ${v} out of range`);
  }
  if (e.type === 'file') {
    if (!Number.isSafeInteger(e.size) || e.size < 0) throw invalidTree(path, `file size ${e.size}`);
    if (e.content.kind === 'bytes' && e.content.data.length !== e.size) {
      throw invalidTree(path, `content is ${e.content.data.length} bytes but the entry says ${e.size}`);
    }
  }
}

/** An ImageTree in columns, checked for what only an ImageTree can get wrong (paths, parents, hard links). */
export function packImageTree(tree: ImageTree): PackedTree {
  const rootEntry = tree.entries.get('/');
  if (!rootEntry || rootEntry.type !== 'dir') throw invalidTree('/', 'the image has no root directory');
  const kids = new Map<string, { name: Uint8Array; path: string }[]>();
  for (const [path, e] of tree.entries) {
    if (path === '/') continue;
    if (!path.startsWith('/') || path.endsWith('/') || path.includes('//')) throw invalidTree(path, 'not a normalised absolute path');
    const slash = path.lastIndexOf('/');
    const parentPath = slash === 0 ? '/' : path.slice(0, slash);
    const name = toBytes(path.slice(slash + 1));
    checkName(path, name);
    const parent = tree.entries.get(parentPath);
    if (!parent || parent.type !== 'dir') throw invalidTree(path, `parent '${parentPath}' is not a directory in the image`);
    checkEntry(path, e);
    let list = kids.get(parentPath);
    if (!list) kids.set(parentPath, (list = []));
    list.push({ name, path });
  }
  checkEntry('/', rootEntry);

  const b = new PackedTreeBuilder(tree.entries.size);
  const paths: string[] = [];
  const contents = new Map<number, FileContent>();
  const rowOf = new Map<string, number>();
  const add = (e: Entry, name: Uint8Array, parent: number, path: string) => {
    const r = b.add(TYPE_KIND[e.type], name, parent, e.mode, e.uid, e.gid, e.mtime, e.type === 'file' ? e.size : 0);
    paths.push(path);
    rowOf.set(path, r);
    if (e.xattrs) b.xattrs.set(r, e.xattrs);
    if (e.type === 'file') contents.set(r, e.content);
    else if (e.type === 'symlink') b.symlinks.set(r, toBytes(e.target));
    else if (e.type === 'char' || e.type === 'block') b.devices.set(r, { major: e.major, minor: e.minor });
    return r;
  };
  add(rootEntry, new Uint8Array(0), 0, '/');
  const links: number[] = [];
  for (let row = 0; row < b.count; row++) {
    if (b.kind[row] !== Kind.dir) continue;
    const dirPath = paths[row];
    const list = kids.get(dirPath) ?? [];
    kids.delete(dirPath);
    list.sort((x, y) => compareBytes(x.name, y.name));
    b.firstChild[row] = b.count;
    b.childCount[row] = list.length;
    for (let i = 0; i < list.length; i++) {
      if (i > 0 && compareBytes(list[i - 1].name, list[i].name) === 0) throw invalidTree(dirPath, 'two entries with the same name');
      const e = tree.entries.get(list[i].path)!;
      const r = add(e, list[i].name, row, list[i].path);
      if (e.type === 'hardlink') links.push(r);
    }
  }
  for (const r of links) b.link[r] = rowOf.get(resolveLink(tree, paths[r]))!;
  return b.finish(
    (row) => contents.get(row)!,
    (row) => tree.entries.get(paths[row])?.origin || paths[row],
  );
}

function checkRow(t: PackedTree, row: number): void {
  const kind = t.kind[row];
  if (row !== 0) {
    const name = nameOf(t, row);
    if (name.length === 0 || name.length > MAX_STORED_NAME || name.includes(0) || name.includes(0x2f) || name[0] === 0x2e) checkName(pathOf(t, row), name);
  }
  if (kind === Kind.symlink) {
    const n = t.symlinks.get(row)?.length ?? 0;
    if (n === 0 || n > MAX_SYMLINK_TARGET) throw invalidTree(pathOf(t, row), `symlink target of ${n} bytes (1..${MAX_SYMLINK_TARGET} allowed)`);
  } else if (kind === Kind.char || kind === Kind.block) {
    const d = t.devices.get(row) ?? { major: 0, minor: 0 };
    if (!Number.isInteger(d.major) || d.major < 0 || d.major > MAX_DEVICE_MAJOR) throw invalidTree(pathOf(t, row), `device major ${d.major}`);
    if (!Number.isInteger(d.minor) || d.minor < 0 || d.minor > MAX_DEVICE_MINOR) throw invalidTree(pathOf(t, row), `device minor ${d.minor}`);
  } else if (kind === Kind.file) {
    const s = t.size[row];
    if (!Number.isSafeInteger(s) || s < 0) throw invalidTree(pathOf(t, row), `file size ${s}`);
  } else if (kind === Kind.hardlink) {
    const k = t.kind[t.link[row]];
    if (k === Kind.dir || k === Kind.hardlink) throw invalidTree(pathOf(t, row), 'hard link to a directory or to another link');
  }
}

function xattrSet(path: string, xattrs: Record<string, Uint8Array>): { key: string; set: Xattr[] } | null {
  const names = Object.keys(xattrs).sort((a, b) => compareBytes(toBytes(a), toBytes(b)));
  if (names.length === 0) return null;
  const set: Xattr[] = [];
  for (const full of names) {
    const parsed = parseXattrName(full);
    if (!parsed) throw invalidTree(path, `xattr '${full}' (only user.*, trusted.* and security.* can be stored)`);
    if (parsed.name.length > 0xffff) throw invalidTree(path, `xattr name '${full}' too long`);
    set.push({ ...parsed, value: xattrs[full] });
  }
  const key = names.map((n) => `${n}=${Buffer.from(xattrs[n]).toString('base64')}`).join('\0');
  return { key, set };
}

export function planImage(input: ImageTree | PackedTree): Plan {
  const t = isPackedTree(input) ? input : packImageTree(input);
  const n = t.count;
  if (n === 0 || t.kind[0] !== Kind.dir) throw invalidTree('/', 'the image has no root directory');
  for (let r = 0; r < n; r++) checkRow(t, r);
  for (let d = 0; d < n; d++) {
    if (t.kind[d] !== Kind.dir) continue;
    const end = t.firstChild[d] + t.childCount[d];
    for (let c = t.firstChild[d] + 1; c < end; c++) {
      if (compareNames(t, c - 1, c) >= 0) throw invalidTree(pathOf(t, d), 'two entries with the same name, or names out of order');
    }
  }

  // Link counts: directories 2 + subdirectories; everything else one per name.
  const nlink = new Uint32Array(n);
  let dirs = 0;
  for (let r = 0; r < n; r++) {
    if (t.kind[r] === Kind.dir) {
      dirs++;
      nlink[r] += 2;
      if (r !== 0) nlink[t.parent[r]]++;
    } else nlink[t.link[r]]++;
  }

  const number = new Uint32Array(n);
  const order = new Uint32Array(countInodes(t));
  const steps = new Int32Array(order.length + dirs);
  let inodes = 0;
  let s = 0;
  const numberRow = (row: number) => {
    if (number[row] !== 0) return;
    number[row] = ++inodes;
    order[inodes - 1] = row;
    steps[s++] = row;
  };
  // Explicit stack instead of recursion, so depth is not limited by the JS stack.
  const stackDir: number[] = [0];
  const stackNext: number[] = [t.firstChild[0]];
  while (stackDir.length > 0) {
    const top = stackDir.length - 1;
    const dir = stackDir[top];
    const end = t.firstChild[dir] + t.childCount[dir];
    let c = stackNext[top];
    while (c < end && t.kind[c] !== Kind.dir) c++;
    if (c < end) {
      stackNext[top] = c + 1;
      stackDir.push(c);
      stackNext.push(t.firstChild[c]);
      continue;
    }
    for (let k = t.firstChild[dir]; k < end; k++) numberRow(t.link[k]);
    steps[s++] = -(dir + 1);
    stackDir.pop();
    stackNext.pop();
  }
  numberRow(0);
  if (inodes > 0xfffffffe) throw invalidTree('/', `${inodes} inodes`);

  // Ids, sorted; xattr sets, deduplicated, in inode order.
  const idSet = new Set<number>();
  let fileCount = 0;
  for (let i = 0; i < inodes; i++) {
    const row = order[i];
    idSet.add(t.uid[row]).add(t.gid[row]);
    if (t.kind[row] === Kind.file) fileCount++;
  }
  const ids = [...idSet].sort((a, b) => a - b);
  if (ids.length > MAX_IDS) throw invalidTree('/', `${ids.length} distinct uids and gids (at most ${MAX_IDS})`);
  const idIndex = new Map(ids.map((id, i) => [id, i]));
  const files = new Uint32Array(fileCount);
  for (let i = 0, f = 0; i < inodes; i++) if (t.kind[order[i]] === Kind.file) files[f++] = order[i];

  const xattrSets: Xattr[][] = [];
  const xattrOf = new Map<number, number>();
  if (t.xattrs.size > 0) {
    const byKey = new Map<string, number>();
    for (let i = 0; i < inodes; i++) {
      const row = order[i];
      const xattrs = t.xattrs.get(row);
      if (!xattrs) continue;
      const x = xattrSet(pathOf(t, row), xattrs);
      if (!x) continue;
      let k = byKey.get(x.key);
      if (k === undefined) {
        k = xattrSets.length;
        xattrSets.push(x.set);
        byKey.set(x.key, k);
      }
      xattrOf.set(row, k);
    }
  }

  return { tree: t, inodeCount: inodes, number, nlink, steps, files, order, ids, idIndex, xattrSets, xattrOf };
}

/** compareBytes of two rows' names, without making views of them. */
function compareNames(t: PackedTree, a: number, b: number): number {
  const names = t.names;
  const sa = t.nameStart[a];
  const sb = t.nameStart[b];
  const la = t.nameLength[a];
  const lb = t.nameLength[b];
  const n = Math.min(la, lb);
  for (let i = 0; i < n; i++) {
    const d = names[sa + i] - names[sb + i];
    if (d !== 0) return d;
  }
  return la - lb;
}

function countInodes(t: PackedTree): number {
  let links = 0;
  for (let r = 0; r < t.count; r++) if (t.kind[r] === Kind.hardlink) links++;
  return t.count - links;
}

/** The xattr index an inode carries (INVALID_XATTR when none). */
export function xattrIndex(plan: Plan, row: number): number {
  return plan.xattrOf.get(row) ?? INVALID_XATTR;
}
