/**
 * A root filesystem assembled in memory from tar streams (OCI layers, a docker archive's layers, a rootfs
 * tarball), served through the Source interface. Nothing is extracted: the index holds each entry's metadata and
 * where its bytes are.
 *
 * Where file bytes live:
 * - uncompressed tar in a file on disk (an OCI blob, a layer inside an uncompressed oci/docker archive, a plain
 *   rootfs .tar): the offset in that file; reads are positional reads of it;
 * - compressed layers: each layer is decompressed exactly once, while it is indexed. Files up to 64 KiB are kept in
 *   memory, within a budget (64 MiB by default); the others are appended to one anonymous spill file (created
 *   in $TMPDIR and unlinked at once, so it holds no name and disappears with the process). Re-streaming a
 *   compressed layer for each file would cost a decompression per file: the squashfs writer reads files in
 *   image order, many at once, which is not the layer's order. Memory is bounded by the budget; disk use by the
 *   uncompressed size of the large files of compressed layers.
 *
 * Layer semantics (OCI image-spec layer.md): entries replace what is at their path (a directory entry over a
 * directory only replaces its attributes); `.wh.NAME` removes NAME of lower layers, `.wh..wh..opq` hides every
 * lower child of its directory, both whatever their position in the layer; hard links share one inode; owners,
 * modes, xattrs and device numbers come from the headers.
 *
 * Hostile archives: a name with a `..` component is refused; a leading `/` is dropped (as tar does); an entry
 * whose parent is a symlink lands where the link points *inside* the rootfs (as containerd and umoci apply it),
 * never outside; a hard link must name an existing non-directory of the rootfs; duplicate entries: the last one
 * wins (tar's rule); device nodes are refused when `allowDevices` is false; names longer than 255 bytes per
 * component or 4096 in all are refused. Names are bytes (formats/bytenames.ts): ones that are not UTF-8 are kept
 * as they are. Nothing is ever written but the spill file.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MkportableError } from '../errors.js';
import { byteLength, compareNames } from '../formats/bytenames.js';
import type { FileType, Source, SourceStat } from './source.js';
import { type TarEntry, type TarReader, archiveError } from '../formats/tar.js';

const MAX_SYMLINKS = 40;
const MAX_PATH = 4096;
const MAX_NAME = 255;

/** Where a regular file's bytes are. */
export type DataRef =
  | { kind: 'memory'; bytes: Uint8Array }
  | { kind: 'file'; file: number; offset: number };

interface Inode {
  id: number;
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  size: number;
  nlink: number;
  target?: string;
  data?: DataRef;
  rdev?: { major: number; minor: number };
  xattrs?: Record<string, Uint8Array>;
}

interface Node {
  inode: Inode;
  children?: Map<string, Node>;
  /** Last layer whose entries created or touched this node: whiteouts only remove what lower layers made. */
  layer: number;
}

export interface RootfsOptions {
  /** Refuse character and block devices (default: keep them). */
  allowDevices?: boolean;
  /** Largest file kept in memory when its layer is compressed (default 64 KiB). */
  smallFile?: number;
  /** Memory for such files in all (default 64 MiB); past it, files go to the spill file. */
  memoryBudget?: number;
  /** Folder for the spill file (default os.tmpdir()). */
  spillDir?: string;
}

/** How one tar stream is applied. */
export interface LayerInput {
  reader: TarReader;
  /** Names the stream in errors. */
  where: string;
  /** OCI layers interpret whiteouts; a plain rootfs tarball does not. */
  whiteouts: boolean;
  /** For an uncompressed tar lying in a file: that file (see addFile) and the stream's offset in it. */
  direct?: { file: number; base: number };
}

/** The merged root filesystem, and a Source over it. Call close() when done (open files, the spill file). */
export class RootfsSource implements Source {
  readonly name: string;
  readonly #opts: Required<Omit<RootfsOptions, 'spillDir'>> & { spillDir?: string };
  #nextIno = 1;
  readonly #root: Node;
  readonly #files: { path?: string; handle?: fs.FileHandle; opening?: Promise<fs.FileHandle> }[] = [];
  #spill?: { file: number; handle: fs.FileHandle; size: number };
  #memory = 0;
  #layer = 0;
  #closed = false;

  constructor(name: string, opts: RootfsOptions = {}) {
    this.name = name;
    this.#opts = {
      allowDevices: opts.allowDevices ?? true,
      smallFile: opts.smallFile ?? 64 << 10,
      memoryBudget: opts.memoryBudget ?? 64 << 20,
      spillDir: opts.spillDir,
    };
    this.#root = { inode: this.#inode({ type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, size: 0 }), children: new Map(), layer: 0 };
  }

  /** Bytes of file data held in memory, and in the spill file. */
  get usage(): { memory: number; spilled: number } {
    return { memory: this.#memory, spilled: this.#spill?.size ?? 0 };
  }

  /** Register a host file that DataRefs can point into (a blob, an archive); returns its number. */
  addFile(hostPath: string): number {
    this.#files.push({ path: hostPath });
    return this.#files.length - 1;
  }

  #inode(i: Omit<Inode, 'id' | 'nlink'>): Inode {
    return { ...i, id: this.#nextIno++, nlink: 1 };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Applying layers

  /** Apply every entry of one tar stream, in order, as layer number `n + 1` of the rootfs. */
  async applyLayer(input: LayerInput): Promise<void> {
    const layer = ++this.#layer;
    for (;;) {
      const e = await input.reader.next();
      if (!e) break;
      await this.#apply(input, layer, e);
    }
    await input.reader.drain();
  }

  /** Split an archive name into components: `..` refused, leading `/` and `.` dropped. */
  #components(where: string, name: string, what = 'entry'): string[] {
    if (byteLength(name) > MAX_PATH) throw archiveError(where, `${what} '${name.slice(0, 80)}…' is longer than ${MAX_PATH} bytes`);
    const parts = name.split('/').filter((c) => c !== '' && c !== '.');
    for (const c of parts) {
      if (c === '..') throw archiveError(where, `${what} '${name}' has a '..' component (refused: it could point outside the rootfs)`);
      if (byteLength(c) > MAX_NAME) throw archiveError(where, `${what} '${name}' has a component longer than ${MAX_NAME} bytes`);
    }
    return parts;
  }

  /**
   * Walk to the directory holding the last component, creating missing directories (0755 root, as runtimes do)
   * and following symlinks inside the rootfs. Each directory passed is marked as touched by `layer`.
   */
  #parentFor(where: string, name: string, parts: string[], layer: number, create: boolean): Node | null {
    let dir = this.#root;
    let dirPath: string[] = [];
    let links = 0;
    const pending = parts.slice(0, -1);
    while (pending.length > 0) {
      const comp = pending.shift()!;
      if (comp === '..') {
        dirPath = dirPath.slice(0, -1);
        dir = this.#lookupParts(dirPath, true)!; // a prefix we have walked: it exists
        continue;
      }
      let child = dir.children!.get(comp);
      if (!child) {
        if (!create) return null;
        child = { inode: this.#inode({ type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeMs: 0, size: 0 }), children: new Map(), layer };
        dir.children!.set(comp, child);
      }
      if (child.inode.type === 'symlink') {
        if (++links > MAX_SYMLINKS) throw archiveError(where, `entry '${name}': too many levels of symbolic links`);
        const target = child.inode.target!;
        if (target.startsWith('/')) {
          dir = this.#root;
          dirPath = [];
        }
        pending.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
        continue;
      }
      if (child.inode.type !== 'dir') {
        if (!create) return null;
        throw archiveError(where, `entry '${name}': '${[...dirPath, comp].join('/')}' is a ${child.inode.type}, not a directory`);
      }
      if (create) child.layer = layer;
      dir = child;
      dirPath = [...dirPath, comp];
    }
    return dir;
  }

  #release(node: Node): void {
    if (node.children) {
      for (const c of node.children.values()) this.#release(c);
      return;
    }
    const ino = node.inode;
    if (--ino.nlink === 0 && ino.data?.kind === 'memory') this.#memory -= ino.data.bytes.length;
  }

  #remove(dir: Node, name: string): void {
    const n = dir.children!.get(name);
    if (!n) return;
    this.#release(n);
    dir.children!.delete(name);
  }

  /** Opaque directory: keep only what `layer` itself put there. */
  #prune(dir: Node, layer: number): void {
    for (const [name, child] of [...dir.children!]) {
      if (child.layer !== layer) this.#remove(dir, name);
      else if (child.children) this.#prune(child, layer);
    }
  }

  async #apply(input: LayerInput, layer: number, e: TarEntry): Promise<void> {
    const where = `${input.where}: '${e.name}'`;
    const parts = this.#components(input.where, e.name);
    const meta = { mode: e.mode, uid: e.uid, gid: e.gid, mtimeMs: e.mtime * 1000, xattrs: Object.keys(e.xattrs).length ? e.xattrs : undefined };

    if (parts.length === 0) {
      if (e.type !== 'dir') throw archiveError(input.where, `entry '${e.name}' names the root, but is a ${e.type}`);
      Object.assign(this.#root.inode, meta);
      return;
    }
    const base = parts[parts.length - 1];

    if (input.whiteouts) {
      if (parts.slice(0, -1).some((c) => c.startsWith('.wh.'))) {
        if (parts.some((c) => c.startsWith('.wh..wh.'))) return; // aufs metadata folders (.wh..wh.plnk): not content
        throw archiveError(input.where, `entry '${e.name}' lies inside a whiteout`);
      }
      if (base === '.wh..wh..opq') {
        const dir = this.#parentFor(where, e.name, parts, layer, true)!;
        this.#prune(dir, layer);
        return;
      }
      if (base.startsWith('.wh..wh.')) return; // other aufs metadata
      if (base.startsWith('.wh.')) {
        const victim = base.slice(4);
        if (victim === '' || victim === '.' || victim === '..') throw archiveError(input.where, `whiteout '${e.name}' names no file`);
        const dir = this.#parentFor(where, e.name, parts, layer, false);
        const node = dir?.children!.get(victim);
        if (dir && node && node.layer !== layer) this.#remove(dir, victim);
        return;
      }
    }

    // A hard link's target is found before anything at the path is removed (it may be the same file).
    let linked: Node | undefined;
    if (e.type === 'hardlink') {
      const tparts = this.#components(input.where, e.linkname, `hard link target of '${e.name}'`);
      const found = tparts.length ? this.#parentFor(where, e.name, tparts, layer, false)?.children!.get(tparts[tparts.length - 1]) : undefined;
      if (!found) throw archiveError(input.where, `hard link '${e.name}' points to '${e.linkname}', which is not in the rootfs`);
      if (found.inode.type === 'dir') throw archiveError(input.where, `hard link '${e.name}' points to the directory '${e.linkname}'`);
      linked = found;
    }
    if ((e.type === 'char' || e.type === 'block') && !this.#opts.allowDevices) {
      throw new MkportableError('DEVICE_REFUSED',
        `${input.where}: '${e.name}' is a ${e.type} device ${e.devmajor}:${e.devminor}, and allowDevices is false`, e.name);
    }
    if (e.type === 'symlink' && e.linkname === '') throw archiveError(input.where, `symlink '${e.name}' has an empty target`);

    const dir = this.#parentFor(where, e.name, parts, layer, true)!;
    const existing = dir.children!.get(base);
    if (e.type === 'dir') {
      if (existing?.inode.type === 'dir') {
        Object.assign(existing.inode, meta);
        existing.layer = layer;
        return;
      }
      if (existing) this.#remove(dir, base);
      dir.children!.set(base, { inode: this.#inode({ type: 'dir', size: 0, ...meta }), children: new Map(), layer });
      return;
    }
    if (linked) {
      if (existing === linked) return;
      if (existing) this.#remove(dir, base);
      linked.inode.nlink++;
      dir.children!.set(base, { inode: linked.inode, layer });
      return;
    }
    let inode: Inode;
    switch (e.type) {
      case 'file':
        inode = this.#inode({ type: 'file', size: e.size, ...meta });
        if (e.size > 0) inode.data = await this.#capture(input, e);
        break;
      case 'symlink':
        inode = this.#inode({ type: 'symlink', size: byteLength(e.linkname), target: e.linkname, ...meta, mode: 0o777 });
        break;
      case 'char':
      case 'block':
        inode = this.#inode({ type: e.type, size: 0, rdev: { major: e.devmajor, minor: e.devminor }, ...meta });
        break;
      default:
        inode = this.#inode({ type: 'fifo', size: 0, ...meta });
    }
    if (existing) this.#remove(dir, base);
    dir.children!.set(base, { inode, layer });
  }

  /** Remember where a regular file's bytes are: the offset in an uncompressed file, memory, or the spill file. */
  async #capture(input: LayerInput, e: TarEntry): Promise<DataRef> {
    if (input.direct) return { kind: 'file', file: input.direct.file, offset: input.direct.base + e.dataOffset };
    if (e.size <= this.#opts.smallFile && this.#memory + e.size <= this.#opts.memoryBudget) {
      const bytes = new Uint8Array(e.size);
      let at = 0;
      for await (const chunk of input.reader.data()) {
        bytes.set(chunk, at);
        at += chunk.length;
      }
      this.#memory += e.size;
      return { kind: 'memory', bytes };
    }
    const spill = await this.#spillFile();
    const offset = spill.size;
    for await (const chunk of input.reader.data()) {
      let done = 0;
      while (done < chunk.length) {
        const { bytesWritten } = await spill.handle.write(chunk, done, chunk.length - done, spill.size);
        done += bytesWritten;
        spill.size += bytesWritten;
      }
    }
    return { kind: 'file', file: spill.file, offset };
  }

  async #spillFile(): Promise<{ file: number; handle: fs.FileHandle; size: number }> {
    if (this.#spill) return this.#spill;
    const dir = await fs.mkdtemp(path.join(this.#opts.spillDir ?? os.tmpdir(), 'mkportable-spill-'));
    const name = path.join(dir, 'data');
    try {
      const handle = await fs.open(name, 'wx+', 0o600);
      const file = this.#files.length;
      this.#files.push({ handle });
      this.#spill = { file, handle, size: 0 };
      return this.#spill;
    } finally {
      // Unlinked at once: the open handle is all that is left.
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Lookups (chroot semantics: absolute links restart at the rootfs root, ".." stops at it)

  #lookupParts(parts: string[], followLast: boolean): Node | null {
    let node = this.#root;
    const done: Node[] = [];
    const pending = [...parts];
    let links = 0;
    while (pending.length > 0) {
      const comp = pending.shift()!;
      if (comp === '..') {
        node = done.pop() ?? this.#root;
        continue;
      }
      if (node.inode.type !== 'dir') return null;
      const child = node.children!.get(comp);
      if (!child) return null;
      if (child.inode.type === 'symlink' && (pending.length > 0 || followLast)) {
        if (++links > MAX_SYMLINKS) {
          throw new MkportableError('SYMLINK_LOOP', `${this.name}:/${parts.join('/')}: too many levels of symbolic links`, '/' + parts.join('/'));
        }
        const target = child.inode.target!;
        if (target.startsWith('/')) {
          node = this.#root;
          done.length = 0;
        }
        pending.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
        continue;
      }
      if (pending.length > 0 && child.inode.type !== 'dir') return null;
      done.push(node);
      node = child;
    }
    return node;
  }

  #lookup(p: string, followLast: boolean): Node | null {
    return this.#lookupParts(p.split('/').filter((c) => c !== '' && c !== '.'), followLast);
  }

  #need(p: string, followLast: boolean): Node {
    const n = this.#lookup(p, followLast);
    if (!n) throw Object.assign(new Error(`ENOENT: ${this.name}:${p}: no such file or directory`), { code: 'ENOENT' });
    return n;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Source

  async lstat(p: string): Promise<SourceStat | null> {
    const n = this.#lookup(p, false);
    if (!n) return null;
    const i = n.inode;
    const st: SourceStat = { type: i.type, mode: i.mode & 0o7777, size: i.size, uid: i.uid, gid: i.gid, mtimeMs: i.mtimeMs, ino: i.id, nlink: i.nlink };
    if (i.rdev) st.rdev = { ...i.rdev };
    return st;
  }

  async readlink(p: string): Promise<string> {
    const n = this.#need(p, false);
    if (n.inode.type !== 'symlink') throw Object.assign(new Error(`EINVAL: ${this.name}:${p}: not a symbolic link`), { code: 'EINVAL' });
    return n.inode.target!;
  }

  async readdir(p: string): Promise<string[]> {
    const n = this.#need(p, true);
    if (!n.children) throw Object.assign(new Error(`ENOTDIR: ${this.name}:${p}: not a directory`), { code: 'ENOTDIR' });
    return [...n.children.keys()].sort(compareNames);
  }

  /** Extended attributes from the tar headers (planFromSource and the minimal closure copy them into the image). */
  async xattrs(p: string): Promise<Record<string, Uint8Array> | undefined> {
    return this.#lookup(p, false)?.inode.xattrs;
  }

  async #handle(file: number): Promise<fs.FileHandle> {
    const f = this.#files[file];
    if (f.handle) return f.handle;
    if (this.#closed) throw new Error(`${this.name}: source is closed`);
    f.opening ??= fs.open(f.path!, 'r').then((h) => (f.handle = h));
    return f.opening;
  }

  async read(p: string, offset: number, length: number): Promise<Uint8Array> {
    const n = this.#need(p, true);
    const i = n.inode;
    if (i.type !== 'file') throw Object.assign(new Error(`EISDIR: ${this.name}:${p}: not a regular file`), { code: 'EISDIR' });
    const end = Math.min(i.size, offset + length);
    if (end <= offset || !i.data) return new Uint8Array(0);
    const d = i.data;
    if (d.kind === 'memory') return d.bytes.subarray(offset, end);
    const handle = await this.#handle(d.file);
    const buf = new Uint8Array(end - offset);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await handle.read(buf, done, buf.length - done, d.offset + offset + done);
      if (bytesRead === 0) throw new Error(`${this.name}:${p}: the archive ends inside this file's data (it changed after it was indexed?)`);
      done += bytesRead;
    }
    return buf;
  }

  async readFile(p: string): Promise<Uint8Array> {
    const n = this.#need(p, true);
    return this.read(p, 0, n.inode.size);
  }

  hostPath(): Buffer | undefined {
    return undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const handles = this.#files.map((f) => f.handle ?? f.opening?.catch(() => undefined));
    this.#files.length = 0;
    this.#spill = undefined;
    for (const h of await Promise.all(handles)) await h?.close().catch(() => {});
  }
}
