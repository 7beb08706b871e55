/**
 * Random access to the image bytes: a file handle for real images, a buffer for tests and fuzzing. Every read is
 * exact; reading past the end is IMAGE_CORRUPT (the caller names the structure it was reading).
 */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { MkportableError, systemReason } from '../../errors.js';
import { corrupt } from './errors.js';

export interface ByteSource {
  /** Total size of the image file in bytes. */
  readonly size: number;
  /** Exactly `length` bytes at `offset`; the result may be a view that must not be modified. */
  read(offset: number, length: number, what: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

function checkRange(file: string, size: number, offset: number, length: number, what: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw corrupt(file, `${what}: invalid position`, offset);
  }
  if (offset + length > size) {
    throw corrupt(file, `${what} (${length} bytes) extends past the end of the ${size}-byte file`, offset);
  }
}

export class BufferSource implements ByteSource {
  readonly #buf: Uint8Array;
  readonly #file: string;

  constructor(buf: Uint8Array, file: string) {
    this.#buf = buf;
    this.#file = file;
  }

  get size(): number {
    return this.#buf.length;
  }

  async read(offset: number, length: number, what: string): Promise<Uint8Array> {
    checkRange(this.#file, this.#buf.length, offset, length, what);
    return new Uint8Array(this.#buf.buffer, this.#buf.byteOffset + offset, length);
  }

  async close(): Promise<void> {}
}

export class FileSource implements ByteSource {
  readonly #fh: FileHandle;
  readonly #file: string;
  readonly size: number;

  private constructor(fh: FileHandle, size: number, file: string) {
    this.#fh = fh;
    this.size = size;
    this.#file = file;
  }

  static async open(file: string): Promise<FileSource> {
    const fh = await fs.open(file, 'r');
    try {
      const st = await fh.stat();
      return new FileSource(fh, st.size, file);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  async read(offset: number, length: number, what: string): Promise<Uint8Array> {
    checkRange(this.#file, this.size, offset, length, what);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.#fh.read(out, done, length - done, offset + done));
      } catch (e) {
        throw new MkportableError('SOURCE_READ', `${this.#file}: cannot read ${what}: ${systemReason(e)}`, this.#file);
      }
      if (bytesRead === 0) throw corrupt(this.#file, `${what}: the file ended early (was it truncated while open?)`, offset + done);
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.#fh.close();
  }
}

/** A window of another source: a partition inside a disk image. Closing it closes the underlying source. */
export class SliceSource implements ByteSource {
  readonly #inner: ByteSource;
  readonly #base: number;
  readonly #file: string;
  readonly size: number;

  constructor(inner: ByteSource, base: number, size: number, file: string) {
    if (base < 0 || size < 0 || base + size > inner.size) throw corrupt(file, `partition (${size} bytes) extends past the end of the ${inner.size}-byte file`, base);
    this.#inner = inner;
    this.#base = base;
    this.size = size;
    this.#file = file;
  }

  async read(offset: number, length: number, what: string): Promise<Uint8Array> {
    checkRange(this.#file, this.size, offset, length, what);
    return this.#inner.read(this.#base + offset, length, what);
  }

  async close(): Promise<void> {
    await this.#inner.close();
  }
}
