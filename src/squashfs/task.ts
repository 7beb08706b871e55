/**
 * What the data path sends to a compression worker and gets back: a task is a run of pieces (file blocks, small
 * files, tails, fragment blocks), described in flat typed arrays so that a thousand small files cost one message,
 * not a thousand objects. Workers read host files themselves (paths travel in the task), so opening and reading
 * spread over every core; bytes that only the main thread can get (generated files, archive members) are put in an
 * arena slot.
 *
 * The arena: one SharedArrayBuffer cut into equal slots, made once per image and shared with every worker. A task
 * names the slot its result goes in (and the slot holding its inline bytes); no big buffer ever moves between
 * threads, so nothing is allocated per block and memory is the arena, whatever the size of the tree.
 */
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import type { CacheCounters } from './block-cache.js';

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
  /** A block inside a hole of a sparse file: zeros, not read (with END, only the file's size is checked). */
  HOLE: 32,
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
  /** Arena slot the result goes in. */
  out: number;
  /** Arena slot holding the bytes of the INLINE pieces back to back in piece order, or -1. */
  input: number;
}

/** Room a task's result needs beyond its pieces' bytes: the end-check byte and a compressor's worst case. */
export const resultSlack = (blockSize: number): number => 1 + (blockSize >> 8) + 256;

/** Pieces a task may have (at most). */
export const TASK_PIECES = 1024;

export interface Arena {
  buffer: SharedArrayBuffer;
  slotSize: number;
  slots: number;
  /** Per slot, TASK_PIECES × [stored bytes, Stored flags] (Float64). */
  meta: SharedArrayBuffer;
  /** Per slot, TASK_PIECES × 32 bytes of SHA-256. */
  hashes: SharedArrayBuffer;
}

export function createArena(slotSize: number, slots: number): Arena {
  return {
    buffer: new SharedArrayBuffer(slotSize * slots),
    slotSize,
    slots,
    meta: new SharedArrayBuffer(slots * TASK_PIECES * 2 * 8),
    hashes: new SharedArrayBuffer(slots * TASK_PIECES * 32),
  };
}

export const slotView = (a: Arena, slot: number): Uint8Array => new Uint8Array(a.buffer, slot * a.slotSize, a.slotSize);
export const slotMeta = (a: Arena, slot: number): Float64Array => new Float64Array(a.meta, slot * TASK_PIECES * 16, TASK_PIECES * 2);
export const slotHashes = (a: Arena, slot: number): Uint8Array => new Uint8Array(a.hashes, slot * TASK_PIECES * 32, TASK_PIECES * 32);

/** Why a piece could not be read: the main thread turns it into a message naming the file. */
export type ReadFailure =
  | { piece: number; kind: 'shrank'; got: number | null }
  | { piece: number; kind: 'grew' }
  | { piece: number; kind: 'error'; message: string; code?: string };

/** Where file slot `slot`'s host path starts in task.paths (it ends at task.pathEnds[slot]). */
export const pathStart = (task: TaskRequest, slot: number): number => (slot === 0 ? 0 : task.pathEnds[slot - 1]);

/** The host path of a task's file slot (a view of task.paths). */
export const slotPath = (task: TaskRequest, slot: number): Buffer =>
  Buffer.from(task.paths.buffer, task.paths.byteOffset + pathStart(task, slot), task.pathEnds[slot] - pathStart(task, slot));

/** Why a native read failed (errno), shaped like Node's errors ("ENOENT: no such file or directory, open '…'"). */
export function errnoReadFailure(piece: number, errno: number, path: Uint8Array): ReadFailure {
  const code = getSystemErrorName(-errno); // Node numbers system errors as libuv does: negative
  const text = getSystemErrorMap().get(-errno)?.[1] ?? 'system error';
  return { piece, kind: 'error', message: `${code}: ${text}, open '${Buffer.from(path).toString()}'`, code };
}

/**
 * A task's result: the bytes are in its out slot, and what each piece became in the slot's metadata (slotMeta:
 * bytes it takes, Stored flags; slotHashes: 32 bytes per piece, zeros where not hashed).
 */
export interface TaskResult {
  id: number;
  /** Bytes used in the out slot: the pieces' stored bytes back to back (compressed, raw, or kept as they are). */
  length: number;
  failure?: ReadFailure;
  /** Anything else that went wrong (a compressor error). */
  error?: string;
  /** What the block cache did for this task. */
  cache?: WorkerCounters;
}

/** The block cache's counters, as a worker reports them for one task. */
export type WorkerCounters = CacheCounters;
