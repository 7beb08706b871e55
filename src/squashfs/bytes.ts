/**
 * Little-endian byte building, in one place: every on-disk structure is encoded through this.
 */
export class ByteBuilder {
  #buf: Uint8Array;
  #view: DataView;
  #length = 0;

  constructor(capacity = 64) {
    this.#buf = new Uint8Array(Math.max(16, capacity));
    this.#view = new DataView(this.#buf.buffer);
  }

  get length(): number {
    return this.#length;
  }

  #reserve(n: number): number {
    const at = this.#length;
    const need = at + n;
    if (need > this.#buf.length) {
      let cap = this.#buf.length * 2;
      while (cap < need) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.#buf.subarray(0, at));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
    }
    this.#length = need;
    return at;
  }

  u16(v: number): this {
    const at = this.#reserve(2);
    this.#view.setUint16(at, v, true);
    return this;
  }

  s16(v: number): this {
    const at = this.#reserve(2);
    this.#view.setInt16(at, v, true);
    return this;
  }

  u32(v: number): this {
    const at = this.#reserve(4);
    this.#view.setUint32(at, v >>> 0, true);
    return this;
  }

  u64(v: number | bigint): this {
    const at = this.#reserve(8);
    this.#view.setBigUint64(at, BigInt(v), true);
    return this;
  }

  bytes(b: Uint8Array): this {
    // Reserve first: growing replaces #buf, and `this.#buf.set(b, this.#reserve(n))` would write the old one.
    const at = this.#reserve(b.length);
    this.#buf.set(b, at);
    return this;
  }

  /** The bytes written so far (a view; the builder must not be used afterwards). */
  finish(): Uint8Array {
    return this.#buf.subarray(0, this.#length);
  }
}

export function u64le(values: readonly number[]): Uint8Array {
  const b = new ByteBuilder(values.length * 8);
  for (const v of values) b.u64(v);
  return b.finish();
}

/**
 * A copy of `bytes[start, end)` in a fresh ArrayBuffer of its own. (Not `.slice()`: on a Buffer that is a view
 * of the same memory, and transferring it to a worker would detach the caller's data.)
 */
export function copyBytes(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(bytes.subarray(start, end));
  return out;
}

/** Byte-wise unsigned comparison, the order squashfs directories are sorted in. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}
