/**
 * Where files come from. Every path given to a Source is absolute inside that source's root ("/usr/bin/env"),
 * so the closure resolver can work the same on the build host, a directory, a tarball or an OCI image. Paths,
 * names and link targets are strings holding bytes (formats/bytenames.ts): names that are not UTF-8 pass through.
 */
export type FileType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface SourceStat {
  type: FileType;
  /** Permission bits including setuid/setgid/sticky (st_mode & 0o7777). */
  mode: number;
  size: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  /** Inode number and link count, when the source knows them (used to keep hard links). */
  ino?: number;
  nlink?: number;
  /** Device number for char/block devices. */
  rdev?: { major: number; minor: number };
}

export interface Source {
  /** Human-readable name used in messages and in the BuildResult ("host", "dir:/srv/root"). */
  readonly name: string;
  /** Stat without following a final symlink; null when nothing is there. */
  lstat(path: string): Promise<SourceStat | null>;
  readlink(path: string): Promise<string>;
  readdir(path: string): Promise<string[]>;
  /** Read `length` bytes at `offset` (fewer at end of file). */
  read(path: string, offset: number, length: number): Promise<Uint8Array>;
  readFile(path: string): Promise<Uint8Array>;
  /**
   * Extended attributes by full name ("security.capability", "user.x"), a final symlink not followed; undefined
   * when there are none or the source does not keep them.
   */
  xattrs?(path: string): Promise<Record<string, Uint8Array> | undefined>;
  /**
   * For a regular file of `size` bytes: the stretches [start, end) that hold data, in order, the rest being holes
   * that read as zeros; undefined when the source cannot tell (or the file is too small to bother). Lets the
   * writer skip the holes of a sparse file instead of reading them.
   */
  dataRanges?(path: string, size: number): Promise<[number, number][] | undefined>;
  /**
   * The bytes of a path on the build host holding the same file, when there is one (lets writers open or copy
   * it directly).
   */
  hostPath(path: string): Buffer | undefined;
}
