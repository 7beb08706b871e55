/**
 * A small tar writer for tests and fixtures (the library only reads tar: src/formats/tar.ts): POSIX ustar with pax
 * records for long names, large ids and xattrs, or GNU long-name entries. It writes names and link targets as
 * given, so that tests can make deliberately hostile archives.
 */
import { TAR_BLOCK, type TarEntryType } from '../../src/formats/tar.js';

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
