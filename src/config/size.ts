import { MkportableError } from '../errors.js';

/** "1M", "128K", "131072" or 131072 → bytes; squashfs blocks are powers of two from 4 KiB to 1 MiB. */
export function parseBlockSize(value: string | number, where = 'squashBlockSize'): number {
  let bytes: number;
  if (typeof value === 'number') bytes = value;
  else {
    const m = /^\s*(\d+)\s*([KkMm]?)\s*$/.exec(value);
    if (!m) throw new MkportableError('CONFIG_INVALID', `${where}: '${value}' is not a size (use e.g. 1M, 128K or 131072)`, where);
    bytes = Number(m[1]) * (m[2] === '' ? 1 : /[Kk]/.test(m[2]) ? 1024 : 1024 * 1024);
  }
  if (!Number.isInteger(bytes) || bytes < 4096 || bytes > 1048576 || (bytes & (bytes - 1)) !== 0) {
    throw new MkportableError('CONFIG_INVALID', `${where}: block size ${JSON.stringify(value)} must be a power of two from 4K to 1M`, where);
  }
  return bytes;
}

/** Split a compression string into mksquashfs words ("xz -Xdict-size 100%" → ["xz", "-Xdict-size", "100%"]). */
export function compressionWords(value: string): string[] {
  const words = value.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) throw new MkportableError('COMPRESSION_INVALID', `squashCompression: empty compression string`, 'squashCompression');
  const known = ['gzip', 'xz', 'lzo', 'lz4', 'zstd', 'lzma'];
  if (!known.includes(words[0])) {
    throw new MkportableError('COMPRESSION_INVALID', `squashCompression: unknown compressor '${words[0]}' (one of ${known.join(', ')})`, 'squashCompression');
  }
  return words;
}

/** "2G", "512M", "64K", "1048576" or a number → bytes (a cache cap; any whole number of bytes). */
export function parseByteSize(value: string | number, where: string): number {
  let bytes: number;
  if (typeof value === 'number') bytes = value;
  else {
    const m = /^\s*(\d+)\s*([KkMmGg]?)\s*$/.exec(value);
    if (!m) throw new MkportableError('CONFIG_INVALID', `${where}: '${value}' is not a size (use e.g. 2G, 512M or 1048576)`, where);
    const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
    bytes = Number(m[1]) * unit;
  }
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new MkportableError('CONFIG_INVALID', `${where}: ${JSON.stringify(value)} is not a byte count`, where);
  return bytes;
}
