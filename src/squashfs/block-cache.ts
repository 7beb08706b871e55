/**
 * A content-addressed cache of compressed blocks and fragments, shared by every build of the user: a rebuild that
 * changes one file recompresses only the blocks whose bytes changed. An entry is named by the SHA-256 of the
 * uncompressed bytes, under a folder named by everything else that decides the compressed bytes (compressor,
 * options, block size, the compression library's version, the entry format).
 *
 *   $XDG_CACHE_HOME/mkportable/blocks-v1/<spec key>/<2 hex>/<62 hex>
 *
 * Entry: "MKPBLK01", u32 flags (1 = the block is stored raw, no payload), u32 payload length, the key (32 bytes),
 * SHA-256 of the payload (32 bytes), the payload. An entry that does not match in every field is corrupt: it is
 * removed and the block compressed again, so a damaged cache can cost time but never a wrong byte in an image.
 *
 * Concurrent builds: entries are written under a temporary name and renamed into place (readers see a whole entry
 * or none; two builds writing the same key write the same bytes). Use is recorded in the entry's mtime (touched when
 * older than an hour); when the cache grows past its cap, the least recently used entries go first.
 * The lookups and stores run in the compression workers (synchronous calls there); trimming runs once per build.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  futimesSync,
  mkdirSync,
  openSync,
  promises as fsp,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { threadId } from 'node:worker_threads';

const MAGIC = Buffer.from('MKPBLK01');
const HEADER = 8 + 4 + 4 + 32 + 32;
const FLAG_RAW = 1;
const FORMAT = 'blocks-v1';
/** Touch an entry's mtime on use only when it is older than this, to keep hits cheap. */
const TOUCH_AFTER_MS = 3600_000;
/** Temporary files older than this are left over from a crashed build. */
const STALE_TMP_MS = 3600_000;
export const DEFAULT_CACHE_CAP = 1 << 30;

/** The user's cache folder for mkportable: $XDG_CACHE_HOME/mkportable, else ~/.cache/mkportable. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
  return path.join(base, 'mkportable');
}

/** The folder holding one compressor configuration's entries. `identity` is anything that decides the output. */
export function cacheFolder(root: string, identity: unknown): string {
  const key = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 24);
  return path.join(root, FORMAT, key);
}

export interface CachedBlock {
  raw: boolean;
  payload: Uint8Array;
}

export interface CacheCounters {
  hits: number;
  misses: number;
  stores: number;
  /** Entries found damaged (and removed). */
  corrupt: number;
  /** Bytes of entries written. */
  storedBytes: number;
  /** Stores that failed (disk full, no permission): the build goes on without them. */
  failures: number;
}

export const emptyCounters = (): CacheCounters => ({ hits: 0, misses: 0, stores: 0, corrupt: 0, storedBytes: 0, failures: 0 });

const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

/** The synchronous side, used inside a worker thread. */
export class BlockCache {
  readonly folder: string;
  readonly counters = emptyCounters();
  #tmp = 0;
  #header = Buffer.alloc(HEADER);
  #madeDirs = new Set<string>();
  #broken = false;

  constructor(folder: string) {
    this.folder = folder;
  }

  #file(key: Uint8Array): string {
    const hex = Buffer.from(key.buffer, key.byteOffset, key.length).toString('hex');
    return path.join(this.folder, hex.slice(0, 2), hex.slice(2));
  }

  /** The entry for `key` (the SHA-256 of the uncompressed bytes), or null when absent or damaged. */
  get(key: Uint8Array, maxPayload: number): CachedBlock | null {
    const file = this.#file(key);
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      this.counters.misses++;
      return null;
    }
    try {
      const st = fstatSync(fd);
      const h = this.#header;
      const ok = st.size >= HEADER && st.size - HEADER <= maxPayload && readSync(fd, h, 0, HEADER, 0) === HEADER;
      const flags = h.readUInt32LE(8);
      const length = h.readUInt32LE(12);
      if (!ok || !h.subarray(0, 8).equals(MAGIC) || length !== st.size - HEADER || (flags & ~FLAG_RAW) !== 0
        || ((flags & FLAG_RAW) !== 0 && length !== 0) || !h.subarray(16, 48).equals(key)) {
        return this.#corrupt(file);
      }
      const payload = new Uint8Array(length);
      if (length > 0 && readSync(fd, payload, 0, length, HEADER) !== length) return this.#corrupt(file);
      if (!sha256(payload).equals(h.subarray(48, 80))) return this.#corrupt(file);
      if (Date.now() - st.mtimeMs > TOUCH_AFTER_MS) {
        try {
          const now = new Date();
          futimesSync(fd, now, now);
        } catch {
          // A read-only cache still serves hits.
        }
      }
      this.counters.hits++;
      return { raw: (flags & FLAG_RAW) !== 0, payload };
    } catch {
      return this.#corrupt(file);
    } finally {
      closeSync(fd);
    }
  }

  #corrupt(file: string): null {
    this.counters.corrupt++;
    this.counters.misses++;
    try {
      unlinkSync(file);
    } catch {
      // Someone else removed or replaced it.
    }
    return null;
  }

  /** Store a block: its compressed bytes, or `raw` (stored uncompressed; no payload kept). Never throws. */
  put(key: Uint8Array, raw: boolean, payload: Uint8Array): void {
    if (this.#broken) return;
    const file = this.#file(key);
    const dir = path.dirname(file);
    const tmp = `${file}.${process.pid}.${threadId}.${this.#tmp++}.tmp`;
    const body = raw ? new Uint8Array(0) : payload;
    const h = Buffer.alloc(HEADER);
    MAGIC.copy(h, 0);
    h.writeUInt32LE(raw ? FLAG_RAW : 0, 8);
    h.writeUInt32LE(body.length, 12);
    h.set(key, 16);
    h.set(sha256(body), 48);
    try {
      if (!this.#madeDirs.has(dir)) {
        mkdirSync(dir, { recursive: true });
        this.#madeDirs.add(dir);
      }
      const fd = openSync(tmp, 'wx');
      try {
        writeAll(fd, h);
        writeAll(fd, body);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
      this.counters.stores++;
      this.counters.storedBytes += HEADER + body.length;
    } catch {
      this.counters.failures++;
      try {
        unlinkSync(tmp);
      } catch {
        // never created
      }
      // A cache that cannot be written (full disk, no permission) is not retried for every block.
      if (this.counters.failures >= 16) this.#broken = true;
    }
  }
}

function writeAll(fd: number, b: Uint8Array): void {
  let done = 0;
  while (done < b.length) done += writeSync(fd, b, done, b.length - done);
}

/** What the cache holds after trimming. */
export interface TrimResult {
  bytes: number;
  entries: number;
  removed: number;
}

const USAGE_FILE = 'usage';

/**
 * Called once a build is done, with the bytes it added: keeps a running estimate of the cache size (a file updated
 * by rename, so a lost update between two builds only delays trimming) and, past `cap`, scans every entry and
 * removes the least recently used until the cache is under 80% of the cap.
 */
export async function recordAndTrim(root: string, added: number, cap: number): Promise<TrimResult | null> {
  const base = path.join(root, FORMAT);
  const usageFile = path.join(base, USAGE_FILE);
  let usage = 0;
  try {
    usage = Number((await fsp.readFile(usageFile, 'utf8')).trim()) || 0;
  } catch {
    // No estimate yet.
  }
  usage += added;
  if (usage <= cap) {
    if (added > 0) await writeUsage(usageFile, usage);
    return null;
  }
  const result = await trimCache(root, Math.floor(cap * 0.8));
  await writeUsage(usageFile, result.bytes);
  return result;
}

async function writeUsage(file: string, bytes: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${threadId}.tmp`;
  try {
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.writeFile(tmp, `${bytes}\n`);
    await fsp.rename(tmp, file);
  } catch {
    await fsp.rm(tmp, { force: true }).catch(() => {});
  }
}

/** Remove least recently used entries (oldest mtime first) until at most `target` bytes remain. */
export async function trimCache(root: string, target: number): Promise<TrimResult> {
  const base = path.join(root, FORMAT);
  const entries: { file: string; size: number; mtime: number }[] = [];
  const now = Date.now();
  let total = 0;
  const list = async (dir: string) => (await fsp.readdir(dir, { withFileTypes: true }).catch(() => []));
  for (const spec of await list(base)) {
    if (!spec.isDirectory()) continue;
    for (const fan of await list(path.join(base, spec.name))) {
      if (!fan.isDirectory()) continue;
      const dir = path.join(base, spec.name, fan.name);
      for (const e of await list(dir)) {
        const file = path.join(dir, e.name);
        const st = await fsp.stat(file).catch(() => null);
        if (!st?.isFile()) continue;
        if (e.name.endsWith('.tmp')) {
          if (now - st.mtimeMs > STALE_TMP_MS) await fsp.rm(file, { force: true });
          continue;
        }
        entries.push({ file, size: st.size, mtime: st.mtimeMs });
        total += st.size;
      }
    }
  }
  entries.sort((a, b) => a.mtime - b.mtime);
  let removed = 0;
  for (const e of entries) {
    if (total <= target) break;
    await fsp.rm(e.file, { force: true });
    total -= e.size;
    removed++;
  }
  return { bytes: total, entries: entries.length - removed, removed };
}
