/**
 * The reader's error vocabulary. A bad image is always IMAGE_CORRUPT (or IMAGE_UNSUPPORTED when it is valid but uses
 * something this reader does not implement), with the image file and, where there is one, the byte offset.
 */
import { MkportableError } from '../../errors.js';
import { escapeName } from '../../formats/bytenames.js';

export function corrupt(file: string, what: string, offset?: number | bigint): MkportableError {
  const where = offset === undefined ? '' : ` at offset ${offset}`;
  return new MkportableError('IMAGE_CORRUPT', `${file}: ${what}${where}`, file);
}

export function unsupported(file: string, what: string): MkportableError {
  return new MkportableError('IMAGE_UNSUPPORTED', `${file}: ${what}`, file);
}

/** A path the caller asked for that the image does not have (or that has the wrong type for the call). */
export function notFound(file: string, path: string, what = 'no such file or directory in the image'): MkportableError {
  return new MkportableError('PATH_NOT_FOUND', `${file}: ${printable(path)}: ${what}`, path);
}

export function isImageError(e: unknown): e is MkportableError {
  return e instanceof MkportableError && (e.code === 'IMAGE_CORRUPT' || e.code === 'IMAGE_UNSUPPORTED');
}

/**
 * A name or path from the image, safe to put in a message or on a terminal: bytes that are not UTF-8 and control
 * characters escaped as \xHH (formats/bytenames.ts), long strings shortened.
 */
export function printable(s: string, max = 200): string {
  const escaped = escapeName(s);
  return escaped.length > max ? `${escaped.slice(0, max)}…` : escaped;
}

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
