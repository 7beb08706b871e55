/**
 * The image file: appends go through a large buffer and reach the disk as big sequential writes. `rewind` drops
 * everything after a position (a duplicate file's blocks); `finish` trims the file to the final length.
 */
import { promises as fs } from 'node:fs';

const BUFFER_SIZE = 8 << 20;

export class ImageFile {
  readonly #fh: fs.FileHandle;
  readonly #buf = Buffer.allocUnsafe(BUFFER_SIZE);
  /** File position of buf[0]. */
  #bufStart = 0;
  #fill = 0;

  private constructor(fh: fs.FileHandle) {
    this.#fh = fh;
  }

  static async create(file: string): Promise<ImageFile> {
    return new ImageFile(await fs.open(file, 'w'));
  }

  /** Where the next appended byte goes. */
  get position(): number {
    return this.#bufStart + this.#fill;
  }

  async append(data: Uint8Array): Promise<void> {
    if (this.#fill + data.length > BUFFER_SIZE) await this.flush();
    if (data.length >= BUFFER_SIZE) {
      await this.#writeAt(data, this.#bufStart);
      this.#bufStart += data.length;
      return;
    }
    this.#buf.set(data, this.#fill);
    this.#fill += data.length;
  }

  async appendAll(pieces: readonly Uint8Array[]): Promise<void> {
    for (const p of pieces) await this.append(p);
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

  async flush(): Promise<void> {
    if (this.#fill === 0) return;
    await this.#writeAt(this.#buf.subarray(0, this.#fill), this.#bufStart);
    this.#bufStart += this.#fill;
    this.#fill = 0;
  }

  async #writeAt(data: Uint8Array, pos: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.#fh.write(data, done, data.length - done, pos + done);
      done += bytesWritten;
    }
  }

  /** Write `data` at `pos` (before the buffered region, e.g. the superblock). */
  async writeAt(data: Uint8Array, pos: number): Promise<void> {
    await this.flush();
    await this.#writeAt(data, pos);
  }

  /** Flush, cut the file at the current position and close it. */
  async finish(): Promise<number> {
    await this.flush();
    const size = this.position;
    await this.#fh.truncate(size);
    await this.#fh.close();
    return size;
  }

  async close(): Promise<void> {
    await this.#fh.close().catch(() => {});
  }
}
