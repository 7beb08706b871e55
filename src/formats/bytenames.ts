/**
 * File names are bytes. Linux allows any byte but '/' and NUL in a name, and nothing makes the bytes UTF-8, so a
 * name read from a folder, an archive or an image must reach the image unchanged. Inside mkportable a name or
 * path stays a JavaScript string (so maps, joins and comparisons keep working), in a lossless form: valid UTF-8
 * decodes as usual, and each byte that is not part of valid UTF-8 becomes the lone surrogate U+DC80..U+DCFF
 * (0x80..0xFF; Python's "surrogateescape", PEP 383). Valid UTF-8 never decodes to a surrogate, so the way back
 * is exact: toBytes(fromBytes(b)) equals b for every byte string.
 *
 * For people (messages, `--json`, `mkportable ls`) a name is shown with such bytes, and control characters, as
 * `\xHH` (lowercase hex); a backslash stays a backslash. `parseEscapes` reads that form back, for paths given
 * on the command line (where a shell can type `\xff` but Node cannot receive the raw byte intact).
 */
import { isUtf8 } from 'node:buffer';
import { escapeForDisplay } from '../errors.js';

const ESCAPE_BASE = 0xdc00;
const SURROGATE = /[\ud800-\udfff]/;

/** A name or path from its bytes (see above). */
export function fromBytes(bytes: Uint8Array): string {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isUtf8(b)) return b.toString('utf8');
  let out = '';
  let i = 0;
  while (i < b.length) {
    const n = validSequence(b, i);
    if (n === 0) {
      out += String.fromCharCode(ESCAPE_BASE + b[i]);
      i++;
    } else {
      out += b.toString('utf8', i, i + n);
      i += n;
    }
  }
  return out;
}

/** Length of the well-formed UTF-8 sequence at `i` (Unicode's table 3-7), or 0 when there is none. */
function validSequence(b: Uint8Array, i: number): number {
  const c = b[i];
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // not a surrogate
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/**
 * The bytes of a name or path. U+DC80..U+DCFF give back their byte; any other lone surrogate (only a caller's
 * own string can hold one) is encoded as U+FFFD, as every UTF-8 encoder does.
 */
export function toBytes(s: string): Buffer {
  if (!SURROGATE.test(s)) return Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  let run = '';
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    if (u >= 0xd800 && u <= 0xdbff && i + 1 < s.length) {
      const v = s.charCodeAt(i + 1);
      if (v >= 0xdc00 && v <= 0xdfff) {
        run += s[i] + s[i + 1];
        i++;
        continue;
      }
    }
    if (u >= ESCAPE_BASE + 0x80 && u <= ESCAPE_BASE + 0xff) {
      if (run) parts.push(Buffer.from(run, 'utf8'));
      run = '';
      parts.push(Buffer.of(u - ESCAPE_BASE));
      continue;
    }
    run += s[i];
  }
  if (run) parts.push(Buffer.from(run, 'utf8'));
  return Buffer.concat(parts);
}

/** Bytes a name or path takes. */
export function byteLength(s: string): number {
  return SURROGATE.test(s) ? toBytes(s).length : Buffer.byteLength(s, 'utf8');
}

/** Unsigned byte order of two names (the order squashfs sorts a directory in). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(toBytes(a), toBytes(b));
}

/**
 * A name, path or one-line message as it is shown to people: bytes that are not UTF-8 and control characters
 * as `\xHH` (other lone surrogates as `\uHHHH`). Already-escaped text is left as it is, so applying it twice is
 * harmless. (The code lives in errors.ts, which every message passes through.)
 */
export const escapeName = (s: string): string => escapeForDisplay(s, true);

/** Like escapeName, but only the bytes that are not UTF-8: for JSON, and text that holds line breaks on purpose. */
export const escapeBytes = (s: string): string => escapeForDisplay(s, false);

/**
 * The name that the shown form `s` stands for: every `\xHH` becomes that byte. Returns `s` unchanged when it has
 * no such escape. (A name that really contains the four characters `\xHH` is then looked up as given first, by
 * callers that try both.)
 */
export function parseEscapes(s: string): string {
  if (!/\\x[0-9a-fA-F]{2}/.test(s)) return s;
  const parts: Buffer[] = [];
  let last = 0;
  for (const m of s.matchAll(/\\x([0-9a-fA-F]{2})/g)) {
    parts.push(toBytes(s.slice(last, m.index)), Buffer.of(parseInt(m[1], 16)));
    last = m.index! + m[0].length;
  }
  parts.push(toBytes(s.slice(last)));
  return fromBytes(Buffer.concat(parts));
}

/** JSON.stringify replacer: the bytes of every string value and key that are not UTF-8 shown as `\xHH`. */
export function escapingReplacer(this: unknown, _key: string, value: unknown): unknown {
  if (typeof value === 'string') return escapeBytes(value);
  if (value && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array)) {
    const keys = Object.keys(value);
    if (keys.some((k) => escapeBytes(k) !== k)) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [escapeBytes(k), v]));
    }
  }
  return value;
}
