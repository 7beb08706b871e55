/**
 * What a compression worker does with a task (see task.ts): read its pieces (host files by path, with plain
 * synchronous reads into reusable buffers; or the inline bytes), hash what it is asked to, look blocks up in the
 * block cache, compress the rest, and return everything in one buffer. Ordering and layout are the main thread's
 * business; this only turns pieces into stored bytes. Runs in a worker thread (worker.ts), or in-process in tests.
 */
import { hash as digest } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { incompressibleCheck } from '../native/entropy.js';
import { nativeReadFile } from '../native/fs.js';
import { createCompressor } from '../compress/registry.js';
import type { CompressorSpec } from '../compress/types.js';
import { BlockCache, emptyCounters } from './block-cache.js';
import { PIECE_FIELDS, Piece, Stored, errnoReadFailure, pathStart, resultSlack, slotHashes, slotMeta, slotPath, slotView, type Arena, type ReadFailure, type TaskRequest, type TaskResult } from './task.js';

export interface WorkerSetup {
  spec: CompressorSpec;
  /** The block cache folder for this spec, or null for no cache. */
  cacheFolder: string | null;
  arena: Arena;
}

class ReadError extends Error {
  constructor(readonly failure: ReadFailure) {
    super(failure.kind);
  }
}

/** Read `length` bytes at `offset` into `into[at..]`; with `end`, check the file ends there (reads one byte more). */
function readPiece(fd: number, piece: number, into: Uint8Array, at: number, offset: number, length: number, end: boolean): void {
  const want = end ? length + 1 : length;
  let done = 0;
  try {
    while (done < want) {
      const n = readSync(fd, into, at + done, want - done, offset + done);
      if (n === 0) break;
      done += n;
    }
  } catch (e) {
    throw readError(piece, e);
  }
  if (done < length) throw new ReadError({ piece, kind: 'shrank', got: offset + done });
  if (end && done > length) throw new ReadError({ piece, kind: 'grew' });
}

function readError(piece: number, e: unknown): ReadError {
  const code = (e as NodeJS.ErrnoException).code;
  return new ReadError({ piece, kind: 'error', message: e instanceof Error ? e.message : String(e), ...(typeof code === 'string' ? { code } : {}) });
}

/** A task runner with its own compressor, cache handle and buffers. */
export function makeTaskRunner(setup: WorkerSetup): (task: TaskRequest) => TaskResult {
  const compressor = createCompressor(setup.spec);
  const readFile = nativeReadFile();
  const incompressible = incompressibleCheck(setup.spec);
  const cache = setup.cacheFolder ? new BlockCache(setup.cacheFolder) : null;
  const blockSize = setup.spec.blockSize;
  const zeros = Buffer.alloc(blockSize);
  if (setup.arena.slotSize < blockSize + resultSlack(blockSize)) throw new Error('arena slots are smaller than a block');
  /** Block being read for compression (one byte more for the end check). */
  let input = Buffer.alloc(blockSize + 1);
  const zeroDigests = new Map<number, Buffer>();
  const zeroDigest = (length: number): Buffer => {
    let d = zeroDigests.get(length);
    if (!d) zeroDigests.set(length, (d = digest('sha256', zeros.subarray(0, length), 'buffer')));
    return d;
  };

  function run(task: TaskRequest): TaskResult {
    const pieces = task.pieces;
    const count = pieces.length / PIECE_FIELDS;
    const meta = slotMeta(setup.arena, task.out);
    const hashes = slotHashes(setup.arena, task.out);
    const data = slotView(setup.arena, task.out);
    const inline = task.input >= 0 ? slotView(setup.arena, task.input) : null;
    let at = 0;
    let inlineAt = 0;
    let fd = -1;
    let fdSlot = -1;
    const before = cache ? { ...cache.counters } : null;
    try {
      for (let i = 0; i < count; i++) {
        const p = i * PIECE_FIELDS;
        const slot = pieces[p];
        const offset = pieces[p + 1];
        const length = pieces[p + 2];
        const flags = pieces[p + 3];
        const end = (flags & Piece.END) !== 0;
        let bytes: Uint8Array;
        const compress = (flags & Piece.COMPRESS) !== 0;
        if (flags & Piece.INLINE) {
          bytes = inline!.subarray(inlineAt, inlineAt + length);
          inlineAt += length;
        } else if (readFile && slot !== fdSlot && offset === 0 && end && !(flags & Piece.HOLE)) {
          // A whole file in one piece (most small files): opened, read and closed in one native call.
          if (compress && input.length < length + 1) input = Buffer.alloc(length + 1);
          const n = readFile(task.paths, pathStart(task, slot), task.pathEnds[slot], compress ? input : data, compress ? 0 : at, length);
          if (n < 0) throw new ReadError(errnoReadFailure(i, -n, slotPath(task, slot)));
          if (n < length) throw new ReadError({ piece: i, kind: 'shrank', got: n });
          if (n > length) throw new ReadError({ piece: i, kind: 'grew' });
          bytes = compress ? input.subarray(0, length) : data.subarray(at, at + length);
        } else {
          if (slot !== fdSlot) {
            if (fd >= 0) closeSync(fd);
            fd = -1;
            try {
              fd = openSync(slotPath(task, slot), 'r');
            } catch (e) {
              throw readError(i, e);
            }
            fdSlot = slot;
          }
          if (compress) {
            if (input.length < length + 1) input = Buffer.alloc(length + 1);
            readPiece(fd, i, input, 0, offset, length, end);
            bytes = input.subarray(0, length);
          } else {
            // Kept bytes go straight to their place in the result (the end-check byte is overwritten by the next).
            readPiece(fd, i, data, at, offset, length, end);
            bytes = data.subarray(at, at + length);
          }
          if (end) {
            closeSync(fd);
            fd = -1;
            fdSlot = -1;
          }
        }
        const wantHash = flags & Piece.HASH || (compress && cache);
      const hash = !wantHash ? null : flags & Piece.HOLE ? zeroDigest(length) : digest('sha256', bytes, 'buffer');
        if (hash) hashes.set(hash, i * 32);
        if (!compress) {
          if (flags & Piece.INLINE) data.set(bytes, at);
          meta[i * 2] = length;
          meta[i * 2 + 1] = 0;
          at += length;
          continue;
        }
        if (flags & Piece.SPARSE && Buffer.from(bytes.buffer, bytes.byteOffset, length).equals(length === blockSize ? zeros : zeros.subarray(0, length))) {
          meta[i * 2] = 0;
          meta[i * 2 + 1] = Stored.ZERO;
          continue;
        }
        const hit = cache && hash ? cache.get(hash, length) : null;
        let raw: boolean;
        let n: number;
        if (hit) {
          raw = hit.raw;
          n = raw ? length : hit.payload.length;
          data.set(raw ? bytes : hit.payload, at);
        } else {
          // Bytes that are compressed already (evenly spread, nothing repeated) are stored as they are, unrun.
          n = incompressible?.(bytes) ? -1 : compressor.compressInto(bytes, data.subarray(at));
          raw = n < 0;
          if (raw) {
            n = length;
            data.set(bytes, at);
          }
          if (cache && hash) cache.put(hash, raw, data.subarray(at, at + n));
        }
        meta[i * 2] = n;
        meta[i * 2 + 1] = (raw ? Stored.RAW : 0) | (hit ? Stored.CACHED : 0);
        at += n;
      }
    } catch (e) {
      const result: TaskResult = { id: task.id, length: 0 };
      if (e instanceof ReadError) result.failure = e.failure;
      else result.error = e instanceof Error ? e.message : String(e);
      return result;
    } finally {
      if (fd >= 0) closeSync(fd);
    }
    const result: TaskResult = { id: task.id, length: at };
    if (cache && before) {
      const c = cache.counters;
      const delta = emptyCounters();
      for (const k of Object.keys(delta) as (keyof typeof delta)[]) delta[k] = c[k] - before[k];
      result.cache = delta;
    }
    return result;
  }

  return run;
}
