/**
 * A squashfs 4.0 image opened for reading: path lookup, stat, directory listing, file contents and a depth-first
 * walk. Everything read from the image is validated first (see superblock.ts, inode.ts, directory.ts, data.ts);
 * a bad image only ever produces MkportableError IMAGE_CORRUPT or IMAGE_UNSUPPORTED.
 *
 * Lookups follow symlinks in the middle of a path, resolved inside the image: absolute targets start again at the
 * image root and '..' never climbs above it, at most MAX_SYMLINK_HOPS symlinks per lookup (SYMLINK_LOOP beyond).
 * stat() and readlink() do not follow a symlink in the last component; readdir(), readFile() and chunks() do.
 */
import { Readable } from 'node:stream';
import { MkportableError, systemReason } from '../../errors.js';
import { toBytes } from '../../formats/bytenames.js';
import type { Superblock } from '../format.js';
import { DataReader } from './data.js';
import { COMPRESSION_NAMES, imageCompressor } from './decompressor.js';
import { findEntry, readListing, type ListingEntry } from './directory.js';
import { corrupt, notFound, printable } from './errors.js';
import { readInode, type DirInode, type FileInode, type Inode, type InodeContext, type InodeRef, type NodeType } from './inode.js';
import { AsyncCache } from './lru.js';
import { MetadataStore } from './metadata.js';
import { MAX_SYMLINK_HOPS, joinPath, normalizePath, pathComponents } from './path.js';
import { BufferSource, FileSource, SliceSource, type ByteSource } from './source.js';
import { readLayout, type ImageLayout } from './superblock.js';
import { readIds } from './tables.js';
import { NO_XATTR, XattrTable } from './xattr.js';

export type { NodeType } from './inode.js';

export interface NodeStat {
  type: NodeType;
  /** Permission bits only (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time, seconds since the epoch. */
  mtime: number;
  /** Bytes for files, target length for symlinks, listing size + 3 for directories, 0 otherwise. */
  size: number;
  nlink: number;
  /** Inode number. */
  ino: number;
  /** Symlink target. */
  target?: string;
  /** Device numbers of block and character devices. */
  major?: number;
  minor?: number;
  /** Extended attributes by full name ('user.x', 'security.capability'); values must not be modified. */
  xattrs: Record<string, Uint8Array>;
}

export interface DirEntry {
  name: string;
  type: NodeType;
  ino: number;
}

export interface WalkEntry {
  path: string;
  stat: NodeStat;
}

export interface OpenOptions {
  /** Name used in error messages (defaults to the file path, or '<buffer>'). */
  name?: string;
  /** Decompressed metadata blocks to keep (8 KiB each); default 256. */
  metadataCacheBlocks?: number;
  /** Read the squashfs from this byte range of the file (a partition of a disk image). */
  partition?: { offset: number; size: number };
}

export interface ReadFileOptions {
  /** Refuse files larger than this (default 1 GiB); use chunks() or createReadStream() for bigger ones. */
  maxSize?: number;
}

export const DEFAULT_MAX_READ_FILE = 1 << 30;

const refKey = (r: InodeRef): number => r.block * 0x10000 + r.offset;

export class SquashfsImage {
  readonly file: string;
  readonly superblock: Superblock;
  /** Compressor name: gzip, xz, lz4 or zstd. */
  readonly compression: string;
  readonly blockSize: number;

  readonly #source: ByteSource;
  readonly #layout: ImageLayout;
  readonly #store: MetadataStore;
  readonly #data: DataReader;
  readonly #ids: Uint32Array;
  readonly #xattrs: XattrTable | null;
  readonly #root: DirInode;
  readonly #inodeCtx: InodeContext;
  readonly #inodes = new AsyncCache<number, Inode>(1024);
  /** Parsed listings: at most 256 directories and 256Ki entries in all. */
  readonly #listings = new AsyncCache<number, ListingEntry[]>(256, 1 << 18, (entries) => entries.length + 1);
  #closed = false;

  private constructor(parts: {
    file: string;
    source: ByteSource;
    layout: ImageLayout;
    store: MetadataStore;
    data: DataReader;
    ids: Uint32Array;
    xattrs: XattrTable | null;
    root: DirInode;
    inodeCtx: InodeContext;
  }) {
    this.file = parts.file;
    this.#source = parts.source;
    this.#layout = parts.layout;
    this.superblock = parts.layout.superblock;
    this.compression = COMPRESSION_NAMES[this.superblock.compression];
    this.blockSize = this.superblock.blockSize;
    this.#store = parts.store;
    this.#data = parts.data;
    this.#ids = parts.ids;
    this.#xattrs = parts.xattrs;
    this.#root = parts.root;
    this.#inodeCtx = parts.inodeCtx;
  }

  /** Validate the superblock and tables, load the id table and the root inode. Closes `source` on failure. */
  static async fromSource(source: ByteSource, file: string, options: OpenOptions = {}): Promise<SquashfsImage> {
    try {
      const layout = await readLayout(source, file);
      const sb = layout.superblock;
      const compressor = await imageCompressor(file, sb.compression, layout.optionsBlock, sb.blockSize);
      const store = new MetadataStore(source, compressor, file, options.metadataCacheBlocks);
      const ids = await readIds(store, file, layout.ids);
      const xattrs = layout.xattrs ? new XattrTable(store, file, layout.xattrs) : null;
      const inodeCtx: InodeContext = { store, file, layout, xattrCount: xattrs?.count ?? 0 };
      const root = await readInode(inodeCtx, layout.root);
      if (root.type !== 'dir') throw corrupt(file, `root inode is a ${root.type}, not a directory`, layout.inodeTable.start + layout.root.block);
      const data = new DataReader(source, store, compressor, file, layout);
      return new SquashfsImage({ file, source, layout, store, data, ids, xattrs, root, inodeCtx });
    } catch (e) {
      await source.close().catch(() => {});
      throw e;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#source.close();
  }

  /** Metadata of `path`; a symlink in the last component is not followed (like lstat). */
  async stat(path: string): Promise<NodeStat> {
    return this.#statOf(await this.#resolve(path, false));
  }

  async readlink(path: string): Promise<string> {
    const inode = await this.#resolve(path, false);
    if (inode.type !== 'symlink') throw notFound(this.file, path, 'not a symbolic link');
    return inode.target;
  }

  /** Entries of a directory in the image's (byte-sorted) order, without '.' and '..'. */
  async readdir(path: string): Promise<DirEntry[]> {
    const inode = await this.#resolve(path, true);
    if (inode.type !== 'dir') throw notFound(this.file, path, 'not a directory');
    return (await this.#listing(inode)).map((e) => ({ name: e.name, type: e.type, ino: e.ino }));
  }

  /** Whole contents of a regular file (symlinks followed). Use chunks() or createReadStream() for big files. */
  async readFile(path: string, options: ReadFileOptions = {}): Promise<Uint8Array> {
    const inode = await this.#file(path);
    const max = options.maxSize ?? DEFAULT_MAX_READ_FILE;
    if (inode.size > max) {
      throw new MkportableError('IMAGE_UNSUPPORTED', `${this.file}: ${path} is ${inode.size} bytes, more than readFile reads (${max}); stream it with chunks()`, path);
    }
    const parts: Uint8Array[] = [];
    for await (const c of this.#data.chunks(inode)) parts.push(c);
    if (parts.length === 1) return parts[0];
    const out = new Uint8Array(inode.size);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** `length` bytes of a regular file (symlinks followed) from `offset`, fewer at its end; only those blocks are read. */
  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    return this.#data.read(await this.#file(path), offset, length);
  }

  /** Contents of a regular file (symlinks followed) block by block: memory use stays at one block. */
  async *chunks(path: string): AsyncGenerator<Uint8Array> {
    yield* this.#data.chunks(await this.#file(path));
  }

  /** A byte stream over chunks(); errors (IMAGE_CORRUPT…) are emitted as 'error' events. */
  createReadStream(path: string): Readable {
    return Readable.from(this.chunks(path), { objectMode: false });
  }

  /**
   * Every entry under `path` (default the root), depth first, pre-order, children in the image's byte order.
   * Symlinks are not followed. A directory that is its own ancestor, or appears twice, is IMAGE_CORRUPT.
   */
  async *walk(path = '/'): AsyncGenerator<WalkEntry> {
    const start = await this.#resolve(path, false);
    const startPath = normalizePath(path);
    yield { path: startPath, stat: await this.#statOf(start) };
    if (start.type !== 'dir') return;
    interface Frame {
      path: string;
      dir: DirInode;
      entries: ListingEntry[];
      next: number;
    }
    const stack: Frame[] = [{ path: startPath, dir: start, entries: await this.#listing(start), next: 0 }];
    const ancestors = new Set<number>([start.ino]);
    const seen = new Set<number>([start.ino]);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (top.next === top.entries.length) {
        stack.pop();
        ancestors.delete(top.dir.ino);
        continue;
      }
      const entry = top.entries[top.next++];
      const child = await this.#child(top.dir, entry);
      const childPath = joinPath(top.path, entry.name);
      const at = this.#layout.inodeTable.start + entry.ref.block;
      if (child.type === 'dir') {
        if (ancestors.has(child.ino)) throw corrupt(this.file, `directory loop: ${printable(childPath)} is its own ancestor (inode ${child.ino})`, at);
        if (seen.has(child.ino)) throw corrupt(this.file, `directory inode ${child.ino} is linked twice (again at ${printable(childPath)})`, at);
      }
      yield { path: childPath, stat: await this.#statOf(child) };
      if (child.type === 'dir') {
        seen.add(child.ino);
        ancestors.add(child.ino);
        stack.push({ path: childPath, dir: child, entries: await this.#listing(child), next: 0 });
      }
    }
  }

  // ---- internals ----

  #check(): void {
    if (this.#closed) throw new MkportableError('SOURCE_READ', `${this.file}: the image has been closed`, this.file);
  }

  #inode(ref: InodeRef): Promise<Inode> {
    return this.#inodes.get(refKey(ref), () => readInode(this.#inodeCtx, ref));
  }

  #listing(dir: DirInode): Promise<ListingEntry[]> {
    return this.#listings.get(refKey(dir.ref), () => readListing(this.#store, this.file, this.#layout, dir));
  }

  /** The inode a directory entry points at, which must agree with the entry on number and type. */
  async #child(dir: DirInode, entry: ListingEntry): Promise<Inode> {
    const inode = await this.#inode(entry.ref);
    const at = this.#layout.inodeTable.start + entry.ref.block;
    if (inode.ino !== entry.ino) {
      throw corrupt(this.file, `entry "${printable(entry.name)}" of directory inode ${dir.ino} says inode ${entry.ino} but the inode is number ${inode.ino}`, at);
    }
    if (inode.type !== entry.type) {
      throw corrupt(this.file, `entry "${printable(entry.name)}" of directory inode ${dir.ino} says ${entry.type} but the inode is a ${inode.type}`, at);
    }
    return inode;
  }

  async #statOf(inode: Inode): Promise<NodeStat> {
    const stat: NodeStat = {
      type: inode.type,
      mode: inode.mode,
      uid: this.#ids[inode.uidIndex],
      gid: this.#ids[inode.gidIndex],
      mtime: inode.mtime,
      size: 0,
      nlink: inode.nlink,
      ino: inode.ino,
      xattrs: inode.xattr !== NO_XATTR && this.#xattrs ? await this.#xattrs.get(inode.xattr) : {},
    };
    switch (inode.type) {
      case 'file':
      case 'dir':
        stat.size = inode.size;
        break;
      case 'symlink':
        stat.size = inode.targetBytes.length;
        stat.target = inode.target;
        break;
      case 'block':
      case 'char':
        stat.major = inode.major;
        stat.minor = inode.minor;
        break;
    }
    return stat;
  }

  async #file(path: string): Promise<FileInode> {
    const inode = await this.#resolve(path, true);
    if (inode.type === 'dir') throw notFound(this.file, path, 'is a directory');
    if (inode.type !== 'file') throw notFound(this.file, path, `is a ${inode.type}, not a regular file`);
    return inode;
  }

  /**
   * Find the entry named `name` in `dir`: by its exact bytes, else (for a name that went through a lossy UTF-8
   * decoding, such as a command-line argument) a unique entry whose name decodes to the same U+FFFD-marked text.
   */
  async #lookup(dir: DirInode, name: string): Promise<ListingEntry | undefined> {
    const entries = await this.#listing(dir);
    const exact = findEntry(entries, toBytes(name));
    if (exact || !name.includes('\uFFFD')) return exact;
    const lossy = entries.filter((e) => Buffer.from(e.nameBytes).toString('utf8') === name);
    return lossy.length === 1 ? lossy[0] : undefined;
  }

  async #resolve(path: string, followLast: boolean): Promise<Inode> {
    this.#check();
    const queue = pathComponents(path);
    const stack: DirInode[] = [this.#root];
    let current: Inode = this.#root;
    let hops = 0;
    while (queue.length > 0) {
      const name = queue.shift()!;
      if (name === '..') {
        if (stack.length > 1) stack.pop();
        current = stack[stack.length - 1];
        continue;
      }
      const dir = stack[stack.length - 1];
      const entry = await this.#lookup(dir, name);
      if (!entry) throw notFound(this.file, path);
      const inode = await this.#child(dir, entry);
      if (inode.type === 'symlink' && (queue.length > 0 || followLast)) {
        if (++hops > MAX_SYMLINK_HOPS) {
          throw new MkportableError('SYMLINK_LOOP', `${this.file}: ${path}: more than ${MAX_SYMLINK_HOPS} symlinks to follow`, path);
        }
        if (inode.target.startsWith('/')) stack.length = 1;
        current = stack[stack.length - 1];
        queue.unshift(...pathComponents(inode.target));
        continue;
      }
      if (queue.length > 0 && inode.type !== 'dir') throw notFound(this.file, path, `${printable(name)} is not a directory`);
      if (inode.type === 'dir') stack.push(inode);
      current = inode;
    }
    return current;
  }
}

export async function openImage(file: string, options: OpenOptions = {}): Promise<SquashfsImage> {
  let source: FileSource;
  try {
    source = await FileSource.open(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new MkportableError('PATH_NOT_FOUND', `${file}: no such file`, file);
    throw new MkportableError('SOURCE_READ', `${file}: cannot open: ${systemReason(e)}`, file);
  }
  let from: ByteSource = source;
  if (options.partition) {
    try {
      from = new SliceSource(source, options.partition.offset, options.partition.size, options.name ?? file);
    } catch (e) {
      await source.close();
      throw e;
    }
  }
  return SquashfsImage.fromSource(from, options.name ?? file, options);
}

export async function openImageBuffer(buf: Uint8Array, options: OpenOptions = {}): Promise<SquashfsImage> {
  const name = options.name ?? '<buffer>';
  return SquashfsImage.fromSource(new BufferSource(buf, name), name, options);
}
