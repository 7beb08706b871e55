/**
 * tar archives as OCI layers, `docker save` and rootfs tarballs write them: POSIX ustar, pax extended headers
 * (path, linkpath, size, uid, gid, mtime, uname, gname, SCHILY.xattr.*, LIBARCHIVE.xattr.*, SCHILY.devmajor/minor),
 * GNU long names and links (types L and K), base-256 numbers, old v7 headers.
 *
 * The reader is one pass over a stream: each entry's data is handed to the caller (`data()`) or skipped, never
 * buffered whole; metadata blocks (pax, long names) are capped. Every malformed header is an ARCHIVE_INVALID
 * error naming the archive and the offset. The writer (encodeTar) is small and exists for tests and fixtures,
 * including deliberately hostile archives: it writes names and link targets as given.
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

// ---------------------------------------------------------------------------------------------------------------
// Writer

export interface TarWriteEntry {
  /** Written as given (no normalisation), so tests can write hostile names. */
  name: string;
  type: TarEntryType;
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  mtime?: number;
  data?: Uint8Array | string;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Uint8Array | string>;
  /** Extra pax records. */
  pax?: Record<string, string>;
  /** Names and link names longer than the header fields: pax records (default) or GNU L/K entries. */
  longNames?: 'pax' | 'gnu';
}

const enc = new TextEncoder();

function octal(block: Uint8Array, at: number, width: number, value: number): void {
  const s = value.toString(8).padStart(width - 1, '0');
  if (s.length > width - 1) throw new Error(`tar writer: ${value} does not fit ${width} bytes`);
  block.set(enc.encode(s), at);
  block[at + width - 1] = 0;
}

function paxRecords(records: [string, Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [k, v] of records) {
    const body = [...enc.encode(` ${k}=`), ...v, 0x0a];
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Uint8Array.from([...enc.encode(String(len)), ...body]));
  }
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const TYPE_FLAGS: Record<TarEntryType, string> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' };

function header(name: Uint8Array, flag: string, size: number, e: Partial<TarWriteEntry>, linkname: Uint8Array = new Uint8Array(0)): Uint8Array {
  const b = new Uint8Array(TAR_BLOCK);
  b.set(name.subarray(0, 100), 0);
  octal(b, 100, 8, e.mode ?? (flag === '5' ? 0o755 : 0o644));
  octal(b, 108, 8, Math.min(e.uid ?? 0, 0o7777777));
  octal(b, 116, 8, Math.min(e.gid ?? 0, 0o7777777));
  octal(b, 124, 12, size);
  octal(b, 136, 12, Math.min(Math.floor(e.mtime ?? 0), 0o77777777777));
  b[156] = flag.charCodeAt(0);
  b.set(linkname.subarray(0, 100), 157);
  b.set(enc.encode('ustar\u000000'), 257);
  b.set(enc.encode(e.uname ?? '').subarray(0, 32), 265);
  b.set(enc.encode(e.gname ?? '').subarray(0, 32), 297);
  octal(b, 329, 8, e.devmajor ?? 0);
  octal(b, 337, 8, e.devminor ?? 0);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  octal(b, 148, 7, sum);
  b[155] = 0x20;
  return b;
}

function padded(data: Uint8Array): Uint8Array[] {
  const pad = (TAR_BLOCK - (data.length % TAR_BLOCK)) % TAR_BLOCK;
  return [data, new Uint8Array(pad)];
}

/** A tar archive of `entries` in order, ended by two zero blocks unless `end` is false. */
export function encodeTar(entries: TarWriteEntry[], opts: { end?: boolean } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const name = enc.encode(e.name);
    const link = enc.encode(e.linkname ?? '');
    const data = typeof e.data === 'string' ? enc.encode(e.data) : e.data ?? new Uint8Array(0);
    const records: [string, Uint8Array][] = [];
    const gnu = e.longNames === 'gnu';
    if (name.length > 100) {
      if (gnu) parts.push(header(enc.encode('././@LongLink'), 'L', name.length + 1, {}), ...padded(Uint8Array.from([...name, 0])));
      else records.push(['path', name]);
    }
    if (link.length > 100) {
      if (gnu) parts.push(header(enc.encode('././@LongLink'), 'K', link.length + 1, {}), ...padded(Uint8Array.from([...link, 0])));
      else records.push(['linkpath', link]);
    }
    if ((e.uid ?? 0) > 0o7777777) records.push(['uid', enc.encode(String(e.uid))]);
    if ((e.gid ?? 0) > 0o7777777) records.push(['gid', enc.encode(String(e.gid))]);
    for (const [k, v] of Object.entries(e.xattrs ?? {})) records.push([`SCHILY.xattr.${k}`, typeof v === 'string' ? enc.encode(v) : v]);
    for (const [k, v] of Object.entries(e.pax ?? {})) records.push([k, enc.encode(v)]);
    if (records.length) {
      const body = paxRecords(records);
      parts.push(header(enc.encode('PaxHeaders/x'), 'x', body.length, {}), ...padded(body));
    }
    const size = e.type === 'file' ? data.length : 0;
    parts.push(header(name, TYPE_FLAGS[e.type], size, e, link));
    if (size > 0) parts.push(...padded(data));
  }
  if (opts.end !== false) parts.push(new Uint8Array(TAR_BLOCK * 2));
  return concat(parts);
}
