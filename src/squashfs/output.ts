/**
 * The image file: appends go through a large buffer and reach the disk as big sequential writes.
 *
 * While the data area is written, a full buffer is written in the background (libuv's thread pool) while the next
 * one fills: a write that the kernel holds up (dirty page throttling) then does not stop the main thread from
 * feeding the workers. append() returns a promise only when it has to wait for the buffer being written. After the
 * data, sync() waits for that write and switches to plain synchronous writes for the small tables.
 *
 * `rewind` drops everything after a position (a duplicate file's blocks); `finish` trims the file to the final
 * length.
 */
import { closeSync, ftruncateSync, openSync, write, writeSync } from 'node:fs';
import { copyBytes } from '../native/copy.js';

const BUFFER_SIZE = 1 << 20;

function writeAllAsync(fd: number, data: Uint8Array, length: number, pos: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number) => {
      if (done === length) return resolve();
      write(fd, data, done, length - done, pos + done, (err, n) => (err ? reject(err) : step(done + n)));
    };
    step(0);
  });
}

export class ImageFile {
  #fd: number;
  #buf: Buffer = Buffer.allocUnsafe(BUFFER_SIZE);
  /** The buffer the background write uses, back once it is done. */
  #spare: Buffer | null = Buffer.allocUnsafe(BUFFER_SIZE);
  #inflight: Promise<void> | null = null;
  #background = true;
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

  append(data: Uint8Array): Promise<void> | void {
    if (this.#fill + data.length <= BUFFER_SIZE) {
      copyBytes(this.#buf, this.#fill, data, 0, data.length);
      this.#fill += data.length;
      return;
    }
    const wait = this.flush();
    if (wait) return wait.then(() => this.append(data));
    if (data.length >= BUFFER_SIZE) {
      this.#writeSync(data, this.#bufStart);
      this.#bufStart += data.length;
      return;
    }
    return this.append(data);
  }

  appendAll(pieces: readonly Uint8Array[]): void {
    if (this.#background) throw new Error('appendAll needs sync()');
    for (const p of pieces) this.append(p);
  }

  /**
   * Hand the buffer to the disk. In the background while the data is written (returns a promise when the previous
   * background write has to finish first, to get its buffer back); synchronously after sync().
   */
  flush(): Promise<void> | void {
    if (this.#fill === 0) return;
    if (!this.#background) {
      this.#writeSync(this.#buf.subarray(0, this.#fill), this.#bufStart);
      this.#bufStart += this.#fill;
      this.#fill = 0;
      return;
    }
    if (!this.#spare) return this.#inflight!.then(() => this.flush());
    const buf = this.#buf;
    const length = this.#fill;
    const start = this.#bufStart;
    this.#buf = this.#spare;
    this.#spare = null;
    this.#bufStart += length;
    this.#fill = 0;
    this.#inflight = writeAllAsync(this.#fd, buf, length, start).then(() => {
      this.#spare = buf;
      this.#inflight = null;
    });
    this.#inflight.catch(() => {}); // surfaced by whoever waits on it next
  }

  /** Forget everything from `pos` on; later appends overwrite it. */
  rewind(pos: number): Promise<void> | void {
    if (pos > this.position) throw new RangeError(`rewind to ${pos} past ${this.position}`);
    if (pos >= this.#bufStart) {
      this.#fill = pos - this.#bufStart;
      return;
    }
    // The region is on its way to the disk: let that write land before anything overwrites it.
    const move = () => {
      this.#bufStart = pos;
      this.#fill = 0;
    };
    if (this.#inflight) return this.#inflight.then(move);
    move();
  }

  /** Wait for the background write; from now on every write is synchronous (the tables after the data). */
  async sync(): Promise<void> {
    await this.flush();
    while (this.#inflight) await this.#inflight;
    this.#background = false;
  }

  #writeSync(data: Uint8Array, pos: number): void {
    let done = 0;
    while (done < data.length) done += writeSync(this.#fd, data, done, data.length - done, pos + done);
  }

  /** Write `data` at `pos` (before the buffered region, e.g. the superblock). */
  async writeAt(data: Uint8Array, pos: number): Promise<void> {
    await this.sync();
    this.flush();
    this.#writeSync(data, pos);
  }

  /** Flush, cut the file at the current position and close it. */
  async finish(): Promise<number> {
    await this.sync();
    this.flush();
    const size = this.position;
    ftruncateSync(this.#fd, size);
    closeSync(this.#fd);
    this.#fd = -1;
    return size;
  }

  async close(): Promise<void> {
    await this.#inflight?.catch(() => {});
    if (this.#fd < 0) return;
    try {
      closeSync(this.#fd);
    } catch {
      // already closed
    }
    this.#fd = -1;
  }
}
