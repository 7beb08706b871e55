/**
 * The image file: appends go through a large buffer and reach the disk as big sequential writes. Writes are
 * synchronous: the writer is the only thing the main thread does while the workers compress, and a write to the
 * page cache is cheaper than the promise around it. `rewind` drops everything after a position (a duplicate file's
 * blocks); `finish` trims the file to the final length.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';

const BUFFER_SIZE = 4 << 20;

export class ImageFile {
  #fd: number;
  readonly #buf = Buffer.allocUnsafe(BUFFER_SIZE);
  /** File position of buf[0]. */
  #bufStart = 0;
  #fill = 0;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  static async create(file: string): Promise<ImageFile> {
    return new ImageFile(openSync(file, 'w'));
  }

  /** Where the next appended byte goes. */
  get position(): number {
    return this.#bufStart + this.#fill;
  }

  append(data: Uint8Array): void {
    if (this.#fill + data.length > BUFFER_SIZE) this.flush();
    if (data.length >= BUFFER_SIZE) {
      this.#writeAt(data, this.#bufStart);
      this.#bufStart += data.length;
      return;
    }
    this.#buf.set(data, this.#fill);
    this.#fill += data.length;
  }

  appendAll(pieces: readonly Uint8Array[]): void {
    for (const p of pieces) this.append(p);
  }

  /** Forget everything from `pos` on; later appends overwrite it. */
  rewind(pos: number): void {
    if (pos > this.position) throw new RangeError(`rewind to ${pos} past ${this.position}`);
    if (pos >= this.#bufStart) this.#fill = pos - this.#bufStart;
    else {
      this.#bufStart = pos;
      this.#fill = 0;
    }
  }

  flush(): void {
    if (this.#fill === 0) return;
    this.#writeAt(this.#buf.subarray(0, this.#fill), this.#bufStart);
    this.#bufStart += this.#fill;
    this.#fill = 0;
  }

  #writeAt(data: Uint8Array, pos: number): void {
    let done = 0;
    while (done < data.length) done += writeSync(this.#fd, data, done, data.length - done, pos + done);
  }

  /** Write `data` at `pos` (before the buffered region, e.g. the superblock). */
  writeAt(data: Uint8Array, pos: number): void {
    this.flush();
    this.#writeAt(data, pos);
  }

  /** Flush, cut the file at the current position and close it. */
  async finish(): Promise<number> {
    this.flush();
    const size = this.position;
    ftruncateSync(this.#fd, size);
    closeSync(this.#fd);
    this.#fd = -1;
    return size;
  }

  async close(): Promise<void> {
    if (this.#fd < 0) return;
    try {
      closeSync(this.#fd);
    } catch {
      // already closed
    }
    this.#fd = -1;
  }
}
