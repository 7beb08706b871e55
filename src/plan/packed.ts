/**
 * The image tree in columns: one row per name, numbers in typed arrays, names in one byte pool. A tree of a million
 * files costs tens of bytes per file this way, where an ImageTree (a Map of objects and strings) costs hundreds.
 * Writers that take an ImageTree can take this instead; `packImageTree` turns one into the other.
 *
 * Rows are in breadth-first order from the root (row 0): the children of a directory sit in consecutive rows,
 * sorted by the bytes of their names, so a listing is the range firstChild .. firstChild + childCount.
 */
import { fromBytes } from '../formats/bytenames.js';
import type { FileContent, ImageTree } from './tree.js';

export const Kind = {
  dir: 1,
  file: 2,
  symlink: 3,
  char: 4,
  block: 5,
  fifo: 6,
  socket: 7,
  /** Another name for the inode of row `link`. */
  hardlink: 8,
} as const;
export type KindCode = (typeof Kind)[keyof typeof Kind];
export type KindName = keyof typeof Kind;
export const KIND_NAMES: readonly (KindName | '')[] = ['', 'dir', 'file', 'symlink', 'char', 'block', 'fifo', 'socket', 'hardlink'];

/** Where a file's bytes are: a host path (read by the writer's workers), or anything an ImageTree can hold. */
export type PackedContent = { kind: 'host'; path: Uint8Array | string } | FileContent;

export interface PackedTree {
  readonly count: number;
  readonly kind: Uint8Array;
  readonly mode: Uint16Array;
  readonly uid: Uint32Array;
  readonly gid: Uint32Array;
  /** Seconds; any value a number holds (the writer clamps to its format). */
  readonly mtime: Float64Array;
  readonly size: Float64Array;
  readonly parent: Uint32Array;
  readonly firstChild: Uint32Array;
  readonly childCount: Uint32Array;
  readonly nameStart: Uint32Array;
  readonly nameLength: Uint32Array;
  readonly names: Uint8Array;
  /** Hard links: the row whose inode this name shares (itself for every other row). */
  readonly link: Uint32Array;
  readonly symlinks: ReadonlyMap<number, Uint8Array>;
  readonly devices: ReadonlyMap<number, { major: number; minor: number }>;
  readonly xattrs: ReadonlyMap<number, Record<string, Uint8Array>>;
  /** The bytes of a file row. */
  content(row: number): PackedContent;
  /**
   * Set when every file row is a host file at hostRoot + its image path ("" for the host's root): writers can then
   * build the paths themselves instead of asking content() for each.
   */
  readonly hostRoot?: Uint8Array;
  /**
   * Set when the tree knows which files may have holes (fewer blocks allocated than their size): the writer looks
   * for holes only in these. Unset: any big file may.
   */
  readonly holeCandidates?: ReadonlySet<number>;
  /** Where a row came from, for messages ("host:/usr/bin/env"); falls back to its image path. */
  origin(row: number): string;
}

export function nameOf(t: PackedTree, row: number): Uint8Array {
  return t.names.subarray(t.nameStart[row], t.nameStart[row] + t.nameLength[row]);
}

/** The image path of a row as bytes ("/usr/bin/env"). */
export function pathBytesOf(t: PackedTree, row: number): Uint8Array {
  if (row === 0) return Uint8Array.of(0x2f);
  const parts: Uint8Array[] = [];
  let length = 0;
  for (let r = row; r !== 0; r = t.parent[r]) {
    const n = nameOf(t, r);
    parts.push(n);
    length += n.length + 1;
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (let i = parts.length - 1; i >= 0; i--) {
    out[at++] = 0x2f;
    out.set(parts[i], at);
    at += parts[i].length;
  }
  return out;
}

/** The image path of a row as mkportable's string form of bytes (formats/bytenames.ts), as ImageTree keys are. */
export function pathOf(t: PackedTree, row: number): string {
  return fromBytes(pathBytesOf(t, row));
}

export function isPackedTree(t: ImageTree | PackedTree): t is PackedTree {
  return (t as PackedTree).kind instanceof Uint8Array;
}

/** Typed-array columns that grow by doubling while a tree is collected. */
export class PackedTreeBuilder {
  count = 0;
  #cap: number;
  kind: Uint8Array;
  mode: Uint16Array;
  uid: Uint32Array;
  gid: Uint32Array;
  mtime: Float64Array;
  size: Float64Array;
  parent: Uint32Array;
  firstChild: Uint32Array;
  childCount: Uint32Array;
  nameStart: Uint32Array;
  nameLength: Uint32Array;
  link: Uint32Array;
  names: Uint8Array;
  namesLength = 0;
  readonly symlinks = new Map<number, Uint8Array>();
  readonly devices = new Map<number, { major: number; minor: number }>();
  readonly xattrs = new Map<number, Record<string, Uint8Array>>();

  constructor(capacity = 1024) {
    this.#cap = Math.max(16, capacity);
    const c = this.#cap;
    this.kind = new Uint8Array(c);
    this.mode = new Uint16Array(c);
    this.uid = new Uint32Array(c);
    this.gid = new Uint32Array(c);
    this.mtime = new Float64Array(c);
    this.size = new Float64Array(c);
    this.parent = new Uint32Array(c);
    this.firstChild = new Uint32Array(c);
    this.childCount = new Uint32Array(c);
    this.nameStart = new Uint32Array(c);
    this.nameLength = new Uint32Array(c);
    this.link = new Uint32Array(c);
    this.names = new Uint8Array(c * 16);
  }

  #grow(): void {
    const c = Math.ceil(this.#cap * 1.5);
    const g = <T extends Uint8Array | Uint16Array | Uint32Array | Float64Array>(a: T): T => {
      const n = new (a.constructor as new (n: number) => T)(c);
      n.set(a);
      return n;
    };
    this.kind = g(this.kind);
    this.mode = g(this.mode);
    this.uid = g(this.uid);
    this.gid = g(this.gid);
    this.mtime = g(this.mtime);
    this.size = g(this.size);
    this.parent = g(this.parent);
    this.firstChild = g(this.firstChild);
    this.childCount = g(this.childCount);
    this.nameStart = g(this.nameStart);
    this.nameLength = g(this.nameLength);
    this.link = g(this.link);
    this.#cap = c;
  }

  /** Append a row named `name`; returns its index. */
  add(kind: KindCode, name: Uint8Array, parent: number, mode: number, uid: number, gid: number, mtime: number, size = 0): number {
    return this.addFrom(kind, name, 0, name.length, parent, mode, uid, gid, mtime, size);
  }

  /** Append a row named `src[start, end)` (no view of src is made); returns its index. */
  addFrom(kind: KindCode, src: Uint8Array, start: number, end: number, parent: number, mode: number, uid: number, gid: number, mtime: number, size = 0): number {
    if (this.count === this.#cap) this.#grow();
    const r = this.count++;
    this.kind[r] = kind;
    this.mode[r] = mode & 0o7777;
    this.uid[r] = uid;
    this.gid[r] = gid;
    this.mtime[r] = mtime;
    this.size[r] = size;
    this.parent[r] = parent;
    this.link[r] = r;
    const length = end - start;
    if (this.namesLength + length > this.names.length) {
      const n = new Uint8Array(Math.max(Math.ceil(this.names.length * 1.5), this.namesLength + length));
      n.set(this.names.subarray(0, this.namesLength));
      this.names = n;
    }
    const names = this.names;
    const at = this.namesLength;
    for (let i = 0; i < length; i++) names[at + i] = src[start + i];
    this.nameStart[r] = at;
    this.nameLength[r] = length;
    this.namesLength += length;
    return r;
  }

  /** The finished tree: views of the columns (not copies: copying would double the peak for big trees). */
  finish(content: (row: number) => PackedContent, origin: (row: number) => string, hostRoot?: Uint8Array, holeCandidates?: ReadonlySet<number>): PackedTree {
    const n = this.count;
    return {
      count: n,
      kind: this.kind.subarray(0, n),
      mode: this.mode.subarray(0, n),
      uid: this.uid.subarray(0, n),
      gid: this.gid.subarray(0, n),
      mtime: this.mtime.subarray(0, n),
      size: this.size.subarray(0, n),
      parent: this.parent.subarray(0, n),
      firstChild: this.firstChild.subarray(0, n),
      childCount: this.childCount.subarray(0, n),
      nameStart: this.nameStart.subarray(0, n),
      nameLength: this.nameLength.subarray(0, n),
      link: this.link.subarray(0, n),
      names: this.names.subarray(0, this.namesLength),
      symlinks: this.symlinks,
      devices: this.devices,
      xattrs: this.xattrs,
      content,
      origin,
      ...(hostRoot ? { hostRoot } : {}),
      ...(holeCandidates ? { holeCandidates } : {}),
    };
  }
}
