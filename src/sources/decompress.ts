/**
 * Streaming decompression of layers and rootfs tarballs, detected by magic bytes (docker archives carry no media
 * types, and a media type may lie): gzip through zlib, zstd through zstd-napi's streaming DCtx (the binding the
 * squashfs compressor already uses), xz and bzip2 through the `xz` and `bzip2` programs (the project's liblzma
 * binding decodes only whole buffers, and a layer must never be held whole in memory). Memory stays bounded by
 * the codecs' windows: zstd frames asking for more than a 128 MiB window are refused.
 */
import { spawn } from 'node:child_process';
import { Readable, pipeline } from 'node:stream';
import zlib from 'node:zlib';
import { MkportableError } from '../errors.js';
import { requireNative } from '../compress/common.js';

export type Compression = 'none' | 'gzip' | 'zstd' | 'xz' | 'bzip2';

export function detectCompression(head: Uint8Array): Compression {
  const is = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  if (is(0x1f, 0x8b)) return 'gzip';
  if (is(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (is(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (is(0x42, 0x5a, 0x68)) return 'bzip2';
  return 'none';
}

/** The first `n` bytes of a stream (fewer if it is shorter) and the whole stream, unchanged. */
export async function peek(src: AsyncIterable<Uint8Array>, n: number): Promise<{ head: Uint8Array; stream: AsyncIterable<Uint8Array> }> {
  const it = src[Symbol.asyncIterator]();
  const held: Uint8Array[] = [];
  let have = 0;
  let done = false;
  while (have < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    held.push(r.value);
    have += r.value.length;
  }
  const head = Buffer.concat(held).subarray(0, n);
  async function* rest(): AsyncGenerator<Uint8Array> {
    try {
      yield* held;
      if (done) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    } finally {
      if (!done) await it.return?.();
    }
  }
  return { head, stream: rest() };
}

/** Pass chunks through, feeding each to `tap` (a hash, a counter). */
export async function* tapped(src: AsyncIterable<Uint8Array>, tap: (chunk: Uint8Array) => void): AsyncGenerator<Uint8Array> {
  for await (const chunk of src) {
    tap(chunk);
    yield chunk;
  }
}

function decodeError(where: string, what: string, e: unknown): MkportableError {
  if (e instanceof MkportableError) return e;
  return new MkportableError('ARCHIVE_INVALID', `${where}: ${what} data does not decompress (${(e as Error).message})`, where);
}

async function* gunzip(src: AsyncIterable<Uint8Array>, where: string): AsyncGenerator<Uint8Array> {
  const z = zlib.createGunzip({ chunkSize: 256 << 10 });
  pipeline(Readable.from(src, { objectMode: false }), z, () => {});
  try {
    for await (const chunk of z) yield chunk as Buffer;
  } catch (e) {
    throw decodeError(where, 'gzip', e);
  } finally {
    z.destroy();
  }
}

interface ZstdDCtx {
  setParameter(param: number, value: number): void;
  decompressStream(dst: Uint8Array, src: Uint8Array): [number, number, number];
}
interface ZstdStreamBinding {
  DCtx: new () => ZstdDCtx;
  DParameter: { windowLogMax: number };
}

/** zstd's default limit too: frames with a larger window need `--long` on both sides, and that much memory. */
const ZSTD_WINDOW_LOG_MAX = 27;

async function* unzstd(src: AsyncIterable<Uint8Array>, where: string): AsyncGenerator<Uint8Array> {
  const zstd = requireNative('zstd-napi/binding.js') as ZstdStreamBinding;
  const d = new zstd.DCtx();
  d.setParameter(zstd.DParameter.windowLogMax, ZSTD_WINDOW_LOG_MAX);
  const OUT = 256 << 10;
  let hint = 1;
  let sawInput = false;
  try {
    for await (const chunk of src) {
      if (chunk.length > 0) sawInput = true;
      let inPos = 0;
      for (;;) {
        const out = Buffer.allocUnsafe(OUT);
        const [h, wrote, read] = d.decompressStream(out, chunk.subarray(inPos));
        hint = h;
        inPos += read;
        if (wrote > 0) yield out.subarray(0, wrote);
        // More output may be pending while the output buffer was filled; otherwise move on when input is used up.
        if (wrote < OUT && inPos >= chunk.length) break;
        if (wrote === 0 && read === 0) break;
      }
    }
  } catch (e) {
    throw decodeError(where, 'zstd', e);
  }
  if (!sawInput || hint !== 0) throw new MkportableError('ARCHIVE_INVALID', `${where}: zstd data is truncated`, where);
}

/** Decompress through a program (xz, bzip2), reading its output as it comes. */
async function* throughProgram(src: AsyncIterable<Uint8Array>, where: string, program: string, pkg: string): AsyncGenerator<Uint8Array> {
  const child = spawn(program, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code;
      reject(code === 'ENOENT'
        ? new MkportableError('ARCHIVE_INVALID', `${where}: ${program}-compressed data needs the '${program}' program (Debian package ${pkg})`, where)
        : e);
    });
    child.on('close', (code) => resolve(code));
  });
  exited.catch(() => {});
  pipeline(Readable.from(src, { objectMode: false }), child.stdin, () => {});
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    const code = await exited;
    if (code !== 0) throw new MkportableError('ARCHIVE_INVALID', `${where}: ${program} failed: ${stderr.trim() || `exit ${code}`}`, where);
  } finally {
    if (child.exitCode === null) child.kill();
  }
}

/** The decompressed bytes of `src`, whatever its compression; `compression` says which was found. */
export async function decompressed(src: AsyncIterable<Uint8Array>, where: string): Promise<{ compression: Compression; stream: AsyncIterable<Uint8Array> }> {
  const { head, stream } = await peek(src, 6);
  const compression = detectCompression(head);
  switch (compression) {
    case 'none': return { compression, stream };
    case 'gzip': return { compression, stream: gunzip(stream, where) };
    case 'zstd': return { compression, stream: unzstd(stream, where) };
    case 'xz': return { compression, stream: throughProgram(stream, where, 'xz', 'xz-utils') };
    case 'bzip2': return { compression, stream: throughProgram(stream, where, 'bzip2', 'bzip2') };
  }
}
