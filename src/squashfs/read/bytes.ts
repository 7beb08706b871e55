/**
 * Byte helpers in one place. Inputs may be Node Buffers, whose slice() does not copy: always go through these.
 */

/** A little-endian reader over exactly these bytes (respects byteOffset). */
export function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A copy in an ArrayBuffer of its own, as a plain Uint8Array. */
export function copyBytes(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  return Uint8Array.prototype.slice.call(bytes, start, end);
}

/** The same memory as a plain Uint8Array (not a Buffer subclass). */
export function plain(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
