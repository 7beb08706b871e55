/**
 * Plan the image before any byte is written: validate the tree, sort every directory, resolve hard links to
 * shared inodes, number the inodes, collect ids and xattr sets, and fix the order in which inodes and directory
 * listings go into their tables. After this the plan is read-only (serialising only records where each inode
 * lands).
 *
 * Order: a directory's subdirectories are written first (their own subtrees and listings), then the inodes of
 * all its children in name order, then its listing; the root inode comes last. Inode numbers follow that order,
 * so a directory's children have consecutive numbers and sit together in the inode table (few listing headers).
 */
import { MkportableError } from '../errors.js';
import type { Entry, ImageTree } from '../plan/tree.js';
import { compareBytes } from './bytes.js';
import { MAX_DEVICE_MAJOR, MAX_DEVICE_MINOR, MAX_IDS, MAX_SYMLINK_TARGET, INVALID_XATTR } from './format.js';
import { toBytes } from '../formats/bytenames.js';
import type { MetadataRef } from './metadata.js';
import { parseXattrName, type Xattr } from './xattr-table.js';

export type InodeEntry = Exclude<Entry, { type: 'hardlink' }>;

export interface PlanChild {
  name: Uint8Array;
  node: PlanNode;
}

export interface PlanNode {
  /** 1-based, in write order. */
  number: number;
  /** The first name of the inode (for messages). */
  path: string;
  entry: InodeEntry;
  nlink: number;
  uidIndex: number;
  gidIndex: number;
  xattr: number;
  mtime: number;
  /** Directories: children sorted by name bytes; the parent's inode number. */
  children: PlanChild[];
  parent: number;
  /** Set while serialising: where the inode sits in the inode table. */
  ref?: MetadataRef;
}

export type PlanStep = { kind: 'inode'; node: PlanNode } | { kind: 'listing'; dir: PlanNode };

export interface Plan {
  root: PlanNode;
  /** By inode number - 1. */
  nodes: PlanNode[];
  steps: PlanStep[];
  /** Regular-file inodes in inode order (each once, whatever its link count). */
  files: PlanNode[];
  ids: number[];
  xattrSets: Xattr[][];
}

export function invalidTree(path: string, reason: string): MkportableError {
  return new MkportableError('UNSTORABLE', `${path}: ${reason} (cannot be stored in a squashfs image)`, path);
}

/**
 * Longest name written: Linux's NAME_MAX. The format would take 256 bytes, but no Linux file system can hold
 * such a name, so unsquashfs could not extract it and nothing could have made it.
 */
export const MAX_STORED_NAME = 255;

const clampTime = (t: number): number => Math.min(0xffffffff, Math.max(0, Math.floor(t)));

function validateName(path: string, name: Uint8Array): void {
  if (name.length === 0 || name.length > MAX_STORED_NAME) throw invalidTree(path, `name of ${name.length} bytes (1..${MAX_STORED_NAME} allowed)`);
  if (name.includes(0)) throw invalidTree(path, 'name contains a NUL byte');
}

function validateEntry(path: string, e: InodeEntry): void {
  for (const [what, v] of [['uid', e.uid], ['gid', e.gid]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw invalidTree(path, `${what} ${v} out of range`);
  }
  switch (e.type) {
    case 'file':
      if (!Number.isSafeInteger(e.size) || e.size < 0) throw invalidTree(path, `file size ${e.size}`);
      if (e.content.kind === 'bytes' && e.content.data.length !== e.size) {
        throw invalidTree(path, `content is ${e.content.data.length} bytes but the entry says ${e.size}`);
      }
      break;
    case 'symlink': {
      const n = toBytes(e.target).length;
      if (n === 0 || n > MAX_SYMLINK_TARGET) throw invalidTree(path, `symlink target of ${n} bytes (1..${MAX_SYMLINK_TARGET} allowed)`);
      break;
    }
    case 'char':
    case 'block':
      if (!Number.isInteger(e.major) || e.major < 0 || e.major > MAX_DEVICE_MAJOR) throw invalidTree(path, `device major ${e.major}`);
      if (!Number.isInteger(e.minor) || e.minor < 0 || e.minor > MAX_DEVICE_MINOR) throw invalidTree(path, `device minor ${e.minor}`);
      break;
  }
}

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

function xattrSet(path: string, xattrs: Record<string, Uint8Array> | undefined): { key: string; set: Xattr[] } | null {
  if (!xattrs) return null;
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

export function planImage(tree: ImageTree): Plan {
  const rootEntry = tree.entries.get('/');
  if (!rootEntry || rootEntry.type !== 'dir') throw invalidTree('/', 'the image has no root directory');

  // Inodes by owning path; hard links map to their target's node.
  const byOwner = new Map<string, PlanNode>();
  const nodeFor = (owner: string): PlanNode => {
    let n = byOwner.get(owner);
    if (!n) {
      const e = tree.entries.get(owner) as InodeEntry;
      validateEntry(owner, e);
      n = { number: 0, path: owner, entry: e, nlink: 0, uidIndex: 0, gidIndex: 0, xattr: INVALID_XATTR, mtime: clampTime(e.mtime), children: [], parent: 0 };
      byOwner.set(owner, n);
    }
    return n;
  };

  const root = nodeFor('/');
  for (const [path, e] of tree.entries) {
    if (path === '/') continue;
    if (!path.startsWith('/') || path.endsWith('/') || path.includes('//')) throw invalidTree(path, 'not a normalised absolute path');
    const slash = path.lastIndexOf('/');
    const parentPath = slash === 0 ? '/' : path.slice(0, slash);
    const name = path.slice(slash + 1);
    if (name === '.' || name === '..') throw invalidTree(path, `'${name}' as a name`);
    const nameBytes = toBytes(name);
    validateName(path, nameBytes);
    const parentEntry = tree.entries.get(parentPath);
    if (!parentEntry || parentEntry.type !== 'dir') throw invalidTree(path, `parent '${parentPath}' is not a directory in the image`);
    const node = nodeFor(e.type === 'hardlink' ? resolveLink(tree, path) : path);
    nodeFor(parentPath).children.push({ name: nameBytes, node });
  }

  // Link counts: directories 2 + subdirectories; everything else one per name.
  for (const n of byOwner.values()) {
    n.children.sort((a, b) => compareBytes(a.name, b.name));
    for (let i = 1; i < n.children.length; i++) {
      if (compareBytes(n.children[i - 1].name, n.children[i].name) === 0) throw invalidTree(n.path, 'two entries with the same name');
    }
    if (n.entry.type === 'dir') n.nlink = 2 + n.children.filter((c) => c.node.entry.type === 'dir').length;
    for (const c of n.children) if (c.node.entry.type !== 'dir') c.node.nlink++;
  }

  const nodes: PlanNode[] = [];
  const steps: PlanStep[] = [];
  const number = (n: PlanNode) => {
    if (n.number !== 0) return;
    n.number = nodes.length + 1;
    nodes.push(n);
    steps.push({ kind: 'inode', node: n });
  };
  // Explicit stack instead of recursion, so depth is not limited by the JS stack.
  type Frame = { dir: PlanNode; next: number };
  const stack: Frame[] = [{ dir: root, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const kids = top.dir.children;
    while (top.next < kids.length && kids[top.next].node.entry.type !== 'dir') top.next++;
    if (top.next < kids.length) {
      const sub = kids[top.next++].node;
      stack.push({ dir: sub, next: 0 });
      continue;
    }
    for (const c of kids) number(c.node);
    steps.push({ kind: 'listing', dir: top.dir });
    stack.pop();
  }
  number(root);
  if (nodes.length > 0xfffffffe) throw invalidTree('/', `${nodes.length} inodes`);
  for (const n of nodes) for (const c of n.children) if (c.node.entry.type === 'dir') c.node.parent = n.number;
  root.parent = nodes.length + 1;

  // Ids, sorted; xattr sets, deduplicated, in inode order.
  const idSet = new Set<number>();
  for (const n of nodes) idSet.add(n.entry.uid).add(n.entry.gid);
  const ids = [...idSet].sort((a, b) => a - b);
  if (ids.length > MAX_IDS) throw invalidTree('/', `${ids.length} distinct uids and gids (at most ${MAX_IDS})`);
  const idIndex = new Map(ids.map((id, i) => [id, i]));
  const xattrSets: Xattr[][] = [];
  const xattrIndex = new Map<string, number>();
  for (const n of nodes) {
    n.uidIndex = idIndex.get(n.entry.uid)!;
    n.gidIndex = idIndex.get(n.entry.gid)!;
    const x = xattrSet(n.path, n.entry.xattrs);
    if (!x) continue;
    let i = xattrIndex.get(x.key);
    if (i === undefined) {
      i = xattrSets.length;
      xattrSets.push(x.set);
      xattrIndex.set(x.key, i);
    }
    n.xattr = i;
  }

  return { root, nodes, steps, files: nodes.filter((n) => n.entry.type === 'file'), ids, xattrSets };
}
