/**
 * Nix store closures, computed from the bytes the way Nix computes references, so no Nix installation is needed.
 *
 * Nix records that store path A depends on store path B when B's hash part (the 32 nix-base32 characters after
 * `/nix/store/`) occurs anywhere in A's serialisation: file contents, symlink targets and entry names, through
 * directories. Nix only looks for the hash parts of *known* paths (the build's inputs and outputs); here the
 * known paths are the entries of the source's `/nix/store`. Repeating the scan over the references found gives
 * the closure, which is what `nix-store --query --requisites` prints.
 *
 * Files are read in chunks through `Source.read`, with an overlap carried between chunks so a hash split across
 * two chunks is found; memory stays bounded by the chunk size times the number of paths scanned at once.
 *
 * Missing paths. A hash part that is not the hash of a store path is just bytes to Nix (scripts and binaries hold
 * plenty of 32-character runs of [0-9a-z]) and is ignored. A full store path reference
 * (`/nix/store/<hash>-<name>`, in a file or a symlink target) whose hash is not in the store is a dangling
 * reference: the image would hold a program naming a path it does not have (a store copied in part, a string whose
 * context was discarded). That is a `PATH_NOT_FOUND` error naming the referring file; through `onMissing` the
 * caller may turn it into a warning. Derivations (`*.drv`) are exempt: they name outputs that need not be built.
 */
import { execFile } from 'node:child_process';
import { MkportableError, systemReason } from '../errors.js';
import type { Source } from '../sources/source.js';
import { normalizeImagePath } from '../plan/tree.js';

export const NIX_STORE = '/nix/store';
/** Length of a store path's hash part. */
export const HASH_LEN = 32;
/** Nix's base-32 alphabet: digits and lower-case letters without e, o, t, u. */
const BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';
/** Characters Nix allows in a store path name. */
const NAME_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-._?=';
const NAME_MAX = 211;

const STORE_PATH_RE = /^\/nix\/store\/([0-9a-df-np-sv-z]{32})-((?!\.)[A-Za-z0-9+._?=-]+)(?=\/|$)/;

const isBase32 = new Uint8Array(256);
for (const ch of BASE32) isBase32[ch.charCodeAt(0)] = 1;
const isNameChar = new Uint8Array(256);
for (const ch of NAME_CHARS) isNameChar[ch.charCodeAt(0)] = 1;
const PREFIX = Buffer.from(`${NIX_STORE}/`, 'latin1');

/** Bytes read per `Source.read` call. */
export const DEFAULT_CHUNK = 1 << 20;
/**
 * Bytes carried from one chunk to the next. 64 covers a hash part (32) and also the longest context looked at
 * around it (`/nix/store/` before, `-` and one name character after: 45 bytes).
 */
const OVERLAP = 64;
/** Store paths scanned at once. */
const CONCURRENCY = 8;

export interface ScanStats {
  /** File contents, symlink targets and entry names searched for hash parts. */
  bytesScanned: number;
}

export interface ScanOptions {
  /** Bytes per read (at least 64); the default is 1 MiB. Tests use small chunks to split hashes. */
  chunkSize?: number;
  /**
   * Called for a dangling full store path reference (see the module comment) instead of throwing it.
   * The scan then goes on.
   */
  onMissing?: (err: MkportableError) => void;
}

/** The `/nix/store/<hash>-<name>` prefix of a path, or undefined when the path is not inside a store path. */
export function storePathOf(p: string): string | undefined {
  const m = STORE_PATH_RE.exec(normalizeImagePath(p));
  if (!m || m[2].length > NAME_MAX) return undefined;
  return `${NIX_STORE}/${m[1]}-${m[2]}`;
}

/**
 * The store paths of a source: hash part -> store path, from the entries of its `/nix/store` (empty when there is
 * none). When two entries share a hash (`x` and the lock file `x.lock`, or `x.check`), the shorter name wins.
 */
export async function storeCandidates(source: Source): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const st = await source.lstat(NIX_STORE);
  if (!st) return out;
  for (const name of await source.readdir(NIX_STORE)) {
    const sp = storePathOf(`${NIX_STORE}/${name}`);
    if (sp === undefined || sp.length !== NIX_STORE.length + 1 + name.length) continue;
    const hash = name.slice(0, HASH_LEN);
    const prev = out.get(hash);
    if (prev === undefined || sp.length < prev.length) out.set(hash, sp);
  }
  return out;
}

/** Where a 32-character window may hold a hash part: calls `hit(i)` for every such window start, like Nix does. */
function search(buf: Uint8Array, hit: (i: number) => void): void {
  const n = buf.length;
  let i = 0;
  while (i + HASH_LEN <= n) {
    let j = HASH_LEN - 1;
    while (j >= 0 && isBase32[buf[i + j]] === 1) j--;
    if (j >= 0) {
      i += j + 1;
      continue;
    }
    hit(i);
    i++;
  }
}

/** Collects what one store path refers to. */
class RefScanner {
  readonly found = new Set<string>();
  /** Dangling references by hash part: the longest spelling seen and the first file naming it. */
  readonly missing = new Map<string, { ref: string; where: string }>();

  constructor(
    private readonly candidates: Map<string, string>,
    private readonly checkMissing: boolean,
  ) {}

  /** Search one buffer; `where` is the file the bytes come from (for messages). */
  scan(buf: Uint8Array, where: string): void {
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    search(buf, (i) => {
      const hash = b.toString('latin1', i, i + HASH_LEN);
      const sp = this.candidates.get(hash);
      if (sp !== undefined) {
        this.found.add(sp);
        return;
      }
      if (!this.checkMissing) return;
      const ref = fullReferenceAt(b, i);
      if (ref === undefined) return;
      // A name running past the end of a buffer is cut short there; the overlap shows it whole when it is short.
      const seen = this.missing.get(hash);
      if (!seen) this.missing.set(hash, { ref, where });
      else if (ref.length > seen.ref.length) seen.ref = ref;
    });
  }
}

/**
 * `/nix/store/<hash>-<name>` when the hash part at `i` is written as a full store path: the prefix before it and
 * `-` plus at least one name character after it. Undefined when that context is not (entirely) in `b`; the overlap
 * between chunks guarantees another buffer holds it whole.
 */
function fullReferenceAt(b: Buffer, i: number): string | undefined {
  if (i < PREFIX.length || i + HASH_LEN + 1 >= b.length) return undefined;
  if (b[i + HASH_LEN] !== 0x2d) return undefined;
  for (let k = 0; k < PREFIX.length; k++) if (b[i - PREFIX.length + k] !== PREFIX[k]) return undefined;
  let end = i + HASH_LEN + 1;
  while (end < b.length && end - i - HASH_LEN - 1 < NAME_MAX && isNameChar[b[end]] === 1) end++;
  if (end === i + HASH_LEN + 1) return undefined;
  return `${NIX_STORE}/${b.toString('latin1', i, end)}`;
}

async function scanFile(source: Source, file: string, size: number, chunkSize: number, s: RefScanner, stats: ScanStats): Promise<void> {
  let tail = new Uint8Array(0);
  for (let offset = 0; offset < size; ) {
    let chunk: Uint8Array;
    try {
      chunk = await source.read(file, offset, Math.min(chunkSize, size - offset));
    } catch (e) {
      throw new MkportableError('SOURCE_READ', `${file}: cannot read: ${systemReason(e)}`, file);
    }
    if (chunk.length === 0) break; // the file shrank while we read it
    offset += chunk.length;
    stats.bytesScanned += chunk.length;
    if (tail.length > 0) s.scan(concat(tail, chunk.subarray(0, OVERLAP)), file);
    s.scan(chunk, file);
    tail = chunk.length >= OVERLAP ? chunk.slice(chunk.length - OVERLAP) : concat(tail, chunk).slice(-OVERLAP);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * The store paths `storePath` refers to (itself included when it names itself): hash parts of `candidates` found
 * in its file contents, symlink targets and entry names, recursively.
 */
export async function scanReferences(
  source: Source,
  storePath: string,
  candidates: Map<string, string>,
  stats: ScanStats,
  opts: ScanOptions = {},
): Promise<Set<string>> {
  const chunkSize = Math.max(OVERLAP, opts.chunkSize ?? DEFAULT_CHUNK);
  const s = new RefScanner(candidates, !storePath.endsWith('.drv'));
  const text = (str: string, where: string) => {
    const bytes = Buffer.from(str, 'utf8');
    stats.bytesScanned += bytes.length;
    s.scan(bytes, where);
  };
  const visit = async (p: string): Promise<void> => {
    const st = await source.lstat(p);
    if (!st) return;
    if (st.type === 'file') {
      if (st.size > 0) await scanFile(source, p, st.size, chunkSize, s, stats);
    } else if (st.type === 'symlink') {
      text(await source.readlink(p), p);
    } else if (st.type === 'dir') {
      for (const name of await source.readdir(p)) {
        text(name, p);
        await visit(`${p}/${name}`);
      }
    }
  };
  if (!(await source.lstat(storePath))) {
    throw new MkportableError('PATH_NOT_FOUND', `${storePath} does not exist in ${source.name}`, storePath);
  }
  await visit(storePath);
  for (const { ref, where } of s.missing.values()) {
    const err = new MkportableError('PATH_NOT_FOUND',
      `${where} refers to ${ref}, which is not in ${NIX_STORE} of ${source.name} (store path ${storePath} is incomplete without it)`, where);
    if (opts.onMissing) opts.onMissing(err);
    else throw err;
  }
  return s.found;
}

/** Reused across calls of nixClosure for one source (a build), so that each store path is scanned once. */
export interface NixScanCache {
  candidates?: Promise<Map<string, string>>;
  references: Map<string, Set<string>>;
}

export interface ClosureOptions extends ScanOptions {
  cache?: NixScanCache;
}

/**
 * The closure of `roots` (paths inside store paths): every store path reachable through references, sorted,
 * the roots' store paths included. A root outside the store or whose store path does not exist is a
 * `PATH_NOT_FOUND` error.
 */
export async function nixClosure(source: Source, roots: string[], stats: ScanStats, opts: ClosureOptions = {}): Promise<string[]> {
  const cache: NixScanCache = opts.cache ?? { references: new Map() };
  cache.candidates ??= storeCandidates(source);
  const candidates = await cache.candidates;
  const seen = new Set<string>();
  const queue: string[] = [];
  for (const root of roots) {
    const sp = storePathOf(root);
    if (sp === undefined) throw new MkportableError('PATH_NOT_FOUND', `${root} is not inside a store path (${NIX_STORE}/<hash>-<name>)`, root);
    if (!(await source.lstat(sp))) {
      throw new MkportableError('PATH_NOT_FOUND', `${sp} (the store path of ${root}) does not exist in ${source.name}`, root);
    }
    if (!seen.has(sp)) {
      seen.add(sp);
      queue.push(sp);
    }
  }
  await drain(queue, CONCURRENCY, async (sp) => {
    let refs = cache.references.get(sp);
    if (!refs) {
      refs = await scanReferences(source, sp, candidates, stats, opts);
      cache.references.set(sp, refs);
    }
    for (const r of refs) {
      if (!seen.has(r)) {
        seen.add(r);
        queue.push(r);
      }
    }
  });
  return [...seen].sort();
}

/** Run `work` over a queue that grows while it runs, at most `limit` at a time; rejects on the first failure. */
function drain<T>(queue: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let next = 0;
    let active = 0;
    let failed = false;
    const pump = () => {
      if (failed) return;
      while (active < limit && next < queue.length) {
        const item = queue[next++];
        active++;
        work(item).then(
          () => {
            active--;
            pump();
          },
          (e: unknown) => {
            failed = true;
            reject(e);
          },
        );
      }
      if (active === 0 && next >= queue.length) resolve();
    };
    pump();
  });
}

/**
 * `nix-store --query --requisites` of the given paths (sorted), or undefined when nix-store is not on PATH.
 * mkportable itself always scans (the same answer on hosts with and without Nix, and for sources that are not
 * the host); this is the cross-check.
 */
export function nixStoreRequisites(paths: string[], env: NodeJS.ProcessEnv = process.env): Promise<string[] | undefined> {
  return new Promise((resolve, reject) => {
    execFile('nix-store', ['--query', '--requisites', ...paths], { env, maxBuffer: 256 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') resolve(undefined);
        else reject(new MkportableError('SOURCE_READ', `nix-store --query --requisites failed: ${stderr.trim() || err.message}`));
        return;
      }
      resolve(stdout.split('\n').filter(Boolean).sort());
    });
  });
}

/** What a build remembers about the store: the store paths already in the image, the scan cache, the bytes scanned. */
export interface NixState {
  done: Set<string>;
  cache: NixScanCache;
  stats: ScanStats;
}

export function createNixState(): NixState {
  return { done: new Set(), cache: { references: new Map() }, stats: { bytesScanned: 0 } };
}
