/**
 * tar archives as OCI layers, `docker save` and rootfs tarballs write them: POSIX ustar, pax extended headers
 * (path, linkpath, size, uid, gid, mtime, uname, gname, SCHILY.xattr.*, LIBARCHIVE.xattr.*, SCHILY.devmajor/minor),
 * GNU long names and links (types L and K), base-256 numbers, old v7 headers.
 *
 * The reader is one pass over a stream: each entry's data is handed to the caller (`data()`) or skipped, never
 * buffered whole; metadata blocks (pax, long names) are capped. Every malformed header is an ARCHIVE_INVALID
 * error naming the archive and the offset. The library never writes tar; the tests' writer (test/support/tar.ts)
 * makes fixtures, hostile ones included.
 */
import { MkportableError } from '../errors.js';
import { fromBytes } from './bytenames.js';

export const TAR_BLOCK = 512;

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarEntry {
  /** The path as the archive names it (pax path, GNU long name or ustar prefix/name); not normalised. */
  name: string;
  /** Target of a symlink, or the archive path a hard link refers to. */
  linkname: string;
  type: TarEntryType;
  /** Permission bits with setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Seconds since the epoch (pax may give a fraction). */
  mtime: number;
  /** Bytes of data that follow the header (0 for links, directories and devices). */
  size: number;
  devmajor: number;
  devminor: number;
  /** Extended attributes from SCHILY.xattr.* and LIBARCHIVE.xattr.* records. */
  xattrs: Record<string, Uint8Array>;
  /** Stream offset of the entry's first header (pax or long-name headers included) and of its data. */
  headerOffset: number;
  dataOffset: number;
}

export function archiveError(where: string, what: string): MkportableError {
  return new MkportableError('ARCHIVE_INVALID', `${where}: ${what}`, where);
}

/**
 * Pull-based reading of an async stream of chunks: exact reads, skips, and views of the next bytes. Views may
 * share memory with the chunks the stream produced; copy what must outlive the next call.
 */
export class ByteReader {
  readonly #it: AsyncIterator<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);
  #at = 0;
  #pos = 0;
  #done = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  /** Bytes consumed so far. */
  get position(): number {
    return this.#pos;
  }

  async #fill(): Promise<boolean> {
    while (this.#at >= this.#buf.length) {
      if (this.#done) return false;
      const r = await this.#it.next();
      if (r.done) {
        this.#done = true;
        return false;
      }
      this.#buf = r.value;
      this.#at = 0;
    }
    return true;
  }

  /** Exactly `n` bytes; null at the end of the stream when nothing at all is left; throws when the stream ends midway. */
  async exact(n: number): Promise<Uint8Array | null> {
    if (!(await this.#fill())) {
      if (n === 0) return new Uint8Array(0);
      return null;
    }
    if (this.#buf.length - this.#at >= n) {
      const v = this.#buf.subarray(this.#at, this.#at + n);
      this.#at += n;
      this.#pos += n;
      return v;
    }
    const out = new Uint8Array(n);
    let got = 0;
    for await (const chunk of this.take(n, () => new Error(`the stream ends after ${this.#pos} bytes, ${n - got} short`))) {
      out.set(chunk, got);
      got += chunk.length;
    }
    return out;
  }

  /** The next `n` bytes as a sequence of views; `short` makes the error thrown when the stream ends first. */
  async *take(n: number, short: () => Error): AsyncGenerator<Uint8Array> {
    while (n > 0) {
      if (!(await this.#fill())) throw short();
      const k = Math.min(n, this.#buf.length - this.#at);
      const v = this.#buf.subarray(this.#at, this.#at + k);
      this.#at += k;
      this.#pos += k;
      n -= k;
      yield v;
    }
  }

  async skip(n: number, short: () => Error): Promise<void> {
    // eslint-disable-next-line @typescript-eslint/no-unused-vars
    for await (const _ of this.take(n, short));
  }

  /** Consume everything that is left (so that hashes over the whole stream complete). */
  async drain(): Promise<void> {
    this.#pos += this.#buf.length - this.#at;
    this.#at = this.#buf.length;
    while (await this.#fill()) {
      this.#pos += this.#buf.length - this.#at;
      this.#at = this.#buf.length;
    }
  }

  /** Stop reading: lets the underlying stream close its file or process. */
  async close(): Promise<void> {
    if (!this.#done) {
      this.#done = true;
      await this.#it.return?.();
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

/** Bytes up to the first NUL. */
function cstring(b: Uint8Array): Uint8Array {
  const i = b.indexOf(0);
  return i < 0 ? b : b.subarray(0, i);
}

/** A pax key: UTF-8 by the standard. */
function decodeKey(where: string, b: Uint8Array): string {
  try {
    return utf8.decode(b);
  } catch {
    throw archiveError(where, `pax key '${latin1.decode(b)}' is not valid UTF-8`);
  }
}

/**
 * Names, link names and pax values are bytes: GNU tar stores a name that is not UTF-8 as it is (and pax allows it
 * with hdrcharset=BINARY), so they are kept in mkportable's lossless string form (formats/bytenames.ts).
 */
const decodeName = (b: Uint8Array): string => fromBytes(b);

/** An octal field (NUL/space padded) or a base-256 number (first byte 0x80). Negative numbers are refused. */
export function parseNumeric(field: Uint8Array): number | null {
  if (field[0] & 0x80) {
    if (field[0] === 0xff) return null; // negative
    let v = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) {
      v = v * 256 + field[i];
      if (v > Number.MAX_SAFE_INTEGER) return null;
    }
    return v;
  }
  let i = 0;
  while (i < field.length && field[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < field.length; i++) {
    const c = field[i];
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) return null;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  for (; i < field.length; i++) if (field[i] !== 0 && field[i] !== 0x20) return null;
  return digits === 0 ? 0 : v;
}

function headerChecksumOk(block: Uint8Array): boolean {
  const stored = parseNumeric(block.subarray(148, 156));
  if (stored === null) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += b;
    signed += b >= 128 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

const isZeroBlock = (b: Uint8Array) => b.every((x) => x === 0);

/** Parse pax records (`LEN key=value\n`); values stay bytes (xattr values are binary). */
export function parsePax(where: string, data: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // NUL padding after the records
    let sp = pos;
    while (sp < data.length && sp - pos < 20 && data[sp] >= 0x30 && data[sp] <= 0x39) sp++;
    const len = Number(latin1.decode(data.subarray(pos, sp)));
    if (data[sp] !== 0x20 || !Number.isInteger(len) || len <= sp - pos + 1 || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw archiveError(where, `malformed pax record at byte ${pos} of an extended header`);
    }
    const rec = data.subarray(sp + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw archiveError(where, `malformed pax record at byte ${pos} of an extended header (no key)`);
    const key = decodeKey(where, rec.subarray(0, eq));
    out.set(key, rec.subarray(eq + 1));
    pos += len;
  }
  return out;
}

export interface TarReaderOptions {
  /** Names the archive in errors ("oci:/srv/img layer 2"). */
  where: string;
  /** Largest pax or GNU long-name block accepted (default 1 MiB). */
  maxMetaSize?: number;
}

/** pax keys that only make sense per entry: a global header setting them is ignored. */
const PER_ENTRY_KEYS = new Set(['path', 'linkpath', 'size']);

/**
 * One pass over a tar stream. `next()` returns the next entry (pax and GNU metadata folded in) or null at the end;
 * the entry's data can be read with `data()` before the next call, or is skipped.
 */
export class TarReader {
  readonly #bytes: ByteReader;
  readonly #where: string;
  readonly #maxMeta: number;
  #global = new Map<string, Uint8Array>();
  /** Data bytes of the current entry not yet consumed, and the padding after them. */
  #left = 0;
  #padding = 0;
  #ended = false;

  constructor(bytes: ByteReader, opts: TarReaderOptions) {
    this.#bytes = bytes;
    this.#where = opts.where;
    this.#maxMeta = opts.maxMetaSize ?? 1 << 20;
  }

  #truncated = () => archiveError(this.#where, `truncated archive (ends at byte ${this.#bytes.position})`);

  async #skipRest(): Promise<void> {
    const n = this.#left + this.#padding;
    this.#left = 0;
    this.#padding = 0;
    if (n > 0) await this.#bytes.skip(n, this.#truncated);
  }

  async #meta(size: number, what: string, at: number): Promise<Uint8Array> {
    if (size > this.#maxMeta) throw archiveError(this.#where, `${what} at byte ${at} is ${size} bytes (more than ${this.#maxMeta})`);
    const data = await this.#bytes.exact(size);
    if (!data) throw this.#truncated();
    const copy = Uint8Array.from(data);
    const pad = (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
    await this.#bytes.skip(pad, this.#truncated);
    return copy;
  }

  async next(): Promise<TarEntry | null> {
    if (this.#ended) return null;
    await this.#skipRest();
    const headerOffset = this.#bytes.position;
    let pax: Map<string, Uint8Array> | undefined;
    let longName: Uint8Array | undefined;
    let longLink: Uint8Array | undefined;
    for (;;) {
      const at = this.#bytes.position;
      let block: Uint8Array | null;
      try {
        block = await this.#bytes.exact(TAR_BLOCK);
      } catch {
        throw this.#truncated();
      }
      if (!block || isZeroBlock(block)) {
        if (pax || longName || longLink) throw archiveError(this.#where, `extended header at byte ${headerOffset} is not followed by an entry`);
        this.#ended = true;
        return null; // end-of-archive marker (or a stream that simply ends at an entry boundary)
      }
      if (!headerChecksumOk(block)) throw archiveError(this.#where, `bad header checksum at byte ${at} (not a tar archive, or corrupt)`);
      const flag = String.fromCharCode(block[156]);
      const size = parseNumeric(block.subarray(124, 136));
      if (size === null) throw archiveError(this.#where, `bad size field in the header at byte ${at}`);
      switch (flag) {
        case 'x': {
          const records = parsePax(this.#where, await this.#meta(size, 'pax header', at));
          pax = new Map([...(pax ?? []), ...records]);
          continue;
        }
        case 'g': {
          const records = parsePax(this.#where, await this.#meta(size, 'global pax header', at));
          for (const [k, v] of records) if (!PER_ENTRY_KEYS.has(k)) this.#global.set(k, v);
          continue;
        }
        case 'L':
          longName = cstring(await this.#meta(size, 'GNU long name', at));
          continue;
        case 'K':
          longLink = cstring(await this.#meta(size, 'GNU long link name', at));
          continue;
        default:
          return this.#entry(block, flag, size, headerOffset, at, pax, longName, longLink);
      }
    }
  }

  #entry(
    block: Uint8Array, flag: string, headerSize: number, headerOffset: number, at: number,
    pax: Map<string, Uint8Array> | undefined, longName: Uint8Array | undefined, longLink: Uint8Array | undefined,
  ): TarEntry {
    const where = this.#where;
    const attrs = new Map([...this.#global, ...(pax ?? [])]);
    const text = (k: string) => {
      const v = attrs.get(k);
      return v === undefined ? undefined : decodeName(v);
    };
    const num = (k: string, field: [number, number], what: string): number => {
      const t = text(k);
      if (t !== undefined) {
        const n = Number(t);
        if (t === '' || !Number.isFinite(n) || n < 0) throw archiveError(where, `bad pax ${k} '${t}' for the entry at byte ${at}`);
        return n;
      }
      const n = parseNumeric(block.subarray(field[0], field[1]));
      if (n === null) throw archiveError(where, `bad ${what} field in the header at byte ${at}`);
      return n;
    };
    for (const k of attrs.keys()) {
      if (k.startsWith('GNU.sparse.')) throw archiveError(where, `sparse file at byte ${at} (GNU sparse pax records are not supported)`);
    }

    const magic = latin1.decode(block.subarray(257, 265));
    const isUstar = magic === 'ustar\u000000';
    let name: string;
    const paxPath = text('path');
    if (paxPath !== undefined) name = paxPath;
    else if (longName) name = decodeName(longName);
    else {
      const base = cstring(block.subarray(0, 100));
      const prefix = isUstar ? cstring(block.subarray(345, 500)) : new Uint8Array(0);
      name = decodeName(prefix.length ? Uint8Array.from([...prefix, 0x2f, ...base]) : base);
    }
    const linkname = text('linkpath') ?? decodeName(longLink ?? cstring(block.subarray(157, 257)));

    let type: TarEntryType;
    switch (flag) {
      case '0': case '\0': case '7': type = name.endsWith('/') ? 'dir' : 'file'; break;
      case '1': type = 'hardlink'; break;
      case '2': type = 'symlink'; break;
      case '3': type = 'char'; break;
      case '4': type = 'block'; break;
      case '5': case 'D': type = 'dir'; break;
      case '6': type = 'fifo'; break;
      case 'S': throw archiveError(where, `sparse file at byte ${at} (GNU sparse entries are not supported)`);
      default:
        throw archiveError(where, `entry '${name}' at byte ${at} has type '${flag.replace(/[^\x20-\x7e]/g, '?')}', which is not a file, link, directory, device or fifo`);
    }

    const size = num('size', [124, 136], 'size');
    if (size !== headerSize && attrs.get('size') === undefined) throw archiveError(where, `bad size in the header at byte ${at}`);
    if (!Number.isSafeInteger(size)) throw archiveError(where, `entry '${name}' at byte ${at} has size ${size}`);
    const mode = parseNumeric(block.subarray(100, 108));
    if (mode === null) throw archiveError(where, `bad mode field in the header at byte ${at}`);

    const xattrs: Record<string, Uint8Array> = {};
    for (const [k, v] of attrs) {
      if (k.startsWith('SCHILY.xattr.')) {
        xattrs[k.slice('SCHILY.xattr.'.length)] = Uint8Array.from(v);
      } else if (k.startsWith('LIBARCHIVE.xattr.')) {
        // libarchive: the name URL-encoded, the value base64.
        let xname: string;
        try {
          xname = decodeURIComponent(k.slice('LIBARCHIVE.xattr.'.length));
        } catch {
          throw archiveError(where, `bad xattr name in pax key '${k}' at byte ${at}`);
        }
        xattrs[xname] = Uint8Array.from(Buffer.from(latin1.decode(v), 'base64'));
      }
    }

    const uid = num('uid', [108, 116], 'uid');
    const gid = num('gid', [116, 124], 'gid');
    const hasDev = type === 'char' || type === 'block';
    const entry: TarEntry = {
      name,
      linkname,
      type,
      mode: mode & 0o7777,
      uid,
      gid,
      uname: text('uname') ?? latin1.decode(cstring(block.subarray(265, 297))),
      gname: text('gname') ?? latin1.decode(cstring(block.subarray(297, 329))),
      mtime: num('mtime', [136, 148], 'mtime'),
      size,
      devmajor: hasDev ? num('SCHILY.devmajor', [329, 337], 'devmajor') : 0,
      devminor: hasDev ? num('SCHILY.devminor', [337, 345], 'devminor') : 0,
      xattrs,
      headerOffset,
      dataOffset: this.#bytes.position,
    };
    if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid) || uid > 0xffffffff || gid > 0xffffffff) {
      throw archiveError(where, `entry '${name}' at byte ${at} has owner ${uid}:${gid}, outside 32 bits`);
    }
    this.#left = size;
    this.#padding = (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
    return entry;
  }

  /** The current entry's data, as views valid until the next chunk is asked for. */
  async *data(): AsyncGenerator<Uint8Array> {
    const n = this.#left;
    this.#left = 0;
    yield* this.#bytes.take(n, this.#truncated);
  }

  /** After the last entry: read what is left of the stream (the rest of the record, trailing bytes). */
  async drain(): Promise<void> {
    await this.#skipRest();
    await this.#bytes.drain();
  }
}
