/**
 * What the data path sends to a compression worker and gets back: a task is a run of pieces (file blocks, small
 * files, tails, fragment blocks), described in flat typed arrays so that a thousand small files cost one message,
 * not a thousand objects. Workers read host files themselves (paths travel in the task), so opening and reading
 * spread over every core; bytes that only the main thread can get (generated files, archive members) travel inline.
 */

/** Piece flags. */
export const Piece = {
  /** Compress the bytes (a file block or a fragment block); otherwise return them as they are. */
  COMPRESS: 1,
  /** The file's last piece: a host read asks for one byte more, so a file that grew is caught. */
  END: 2,
  /** Return the SHA-256 of the bytes. */
  HASH: 4,
  /** All zeros may be left out (a sparse block); never for fragment blocks. */
  SPARSE: 8,
  /** The bytes are in the task's inline buffer (at the running inline offset), not in a host file. */
  INLINE: 16,
} as const;

/** Result flags per piece. */
export const Stored = {
  /** Compressing did not help: the bytes are stored as they are. */
  RAW: 1,
  /** All zeros: nothing stored. */
  ZERO: 2,
  /** From the block cache. */
  CACHED: 4,
} as const;

/** Fields per piece in TaskRequest.pieces: file slot, offset in the file, length, flags. */
export const PIECE_FIELDS = 4;

export interface TaskRequest {
  id: number;
  pieces: Float64Array;
  /** Host paths of the task's file slots, back to back; slot i ends at pathEnds[i]. */
  paths: Uint8Array;
  pathEnds: Uint32Array;
  /** Bytes of the INLINE pieces, back to back in piece order. */
  inline: Uint8Array | null;
  /** A buffer to put the result in (one the main thread is done with), when it is big enough. */
  out: ArrayBuffer | null;
}

/** Room a task's result needs beyond its pieces' bytes: the end-check byte and a compressor's worst case. */
export const resultSlack = (blockSize: number): number => 1 + (blockSize >> 8) + 256;

/** Why a piece could not be read: the main thread turns it into a message naming the file. */
export type ReadFailure =
  | { piece: number; kind: 'shrank'; got: number }
  | { piece: number; kind: 'grew' }
  | { piece: number; kind: 'error'; message: string };

export interface TaskResult {
  id: number;
  /** Per piece: bytes it takes in `data`, Stored flags. */
  meta: Float64Array;
  /** 32 bytes per piece (zeros where not hashed). */
  hashes: Uint8Array;
  /** The pieces' stored bytes back to back (compressed, raw, or the kept bytes of uncompressed pieces). */
  data: Uint8Array;
  failure?: ReadFailure;
  /** Anything else that went wrong (a compressor error). */
  error?: string;
  /** What the block cache did for this task. */
  cache?: WorkerCounters;
  /** The task's inline buffer, handed back for reuse. */
  inline: Uint8Array | null;
}

export interface WorkerCounters {
  hits: number;
  misses: number;
  stores: number;
  corrupt: number;
  storedBytes: number;
  failures: number;
}
