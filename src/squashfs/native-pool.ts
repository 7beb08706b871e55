/**
 * The data path in native threads (native/tasks.c) for plain lz4: the same tasks as the worker pool (pool.ts), run
 * by POSIX threads that read, hash and compress into the same shared arena. lz4 compresses a block faster than a
 * JavaScript worker boots, compiles and posts, so with it the worker pool's own cost was a third of the CPU on trees
 * of many small files. Other compressors keep the workers: their time is in the compressor, and they use the block
 * cache, which lives in JavaScript. MKPORTABLE_DATA_PATH=workers turns it off (for comparison).
 */
import { fastCompressor } from '../compress/registry.js';
import type { CompressorSpec } from '../compress/types.js';
import { optionalNative } from '../native/optional.js';
import type { OwnedRunner } from './pool.js';
import { PIECE_FIELDS, TASK_PIECES, errnoReadFailure, slotPath, type Arena, type TaskRequest, type TaskResult } from './task.js';

type Handle = object;
type OnDone = (id: number, length: number, kind: number, piece: number, got: number, errno: number, message: string | undefined) => void;

interface TaskPoolBinding {
  available(): boolean;
  create(arena: Uint8Array, meta: Uint8Array, hashes: Uint8Array, slotSize: number, slotPieces: number, blockSize: number, threads: number, onDone: OnDone): Handle;
  run(pool: Handle, id: number, pieces: Float64Array, paths: Uint8Array, pathEnds: Uint32Array, out: number, input: number, urgent: boolean): void;
  close(pool: Handle): void;
}

/** tasks.c's result kinds. */
const Kind = { DONE: 0, SHRANK: 1, GREW: 2, SYSTEM: 3, OTHER: 4 } as const;

let binding: TaskPoolBinding | null | undefined;
function taskPoolBinding(): TaskPoolBinding | null {
  if (binding === undefined) {
    const available = optionalNative<() => boolean>('taskPoolAvailable');
    const create = optionalNative<TaskPoolBinding['create']>('taskPoolCreate');
    const run = optionalNative<TaskPoolBinding['run']>('taskPoolRun');
    const close = optionalNative<TaskPoolBinding['close']>('taskPoolClose');
    binding = available && create && run && close && available() ? { available, create, run, close } : null;
  }
  return binding;
}

/** Whether the native data path can run tasks for `spec` here (plain lz4, the system liblz4, no block cache). */
export function nativeDataPath(spec: CompressorSpec, cacheFolder: string | null): boolean {
  if (process.env.MKPORTABLE_DATA_PATH === 'workers') return false;
  return fastCompressor(spec) && cacheFolder === null && taskPoolBinding() !== null;
}

interface Pending {
  task: TaskRequest;
  resolve: (r: TaskResult) => void;
  reject: (e: Error) => void;
}

export class NativeTaskPool implements OwnedRunner {
  readonly #size: number;
  readonly #arena: Arena;
  readonly #binding: TaskPoolBinding;
  readonly #handle: Handle;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #closed = false;

  constructor(spec: CompressorSpec, size: number, arena: Arena) {
    const b = taskPoolBinding();
    if (!b || !fastCompressor(spec)) throw new Error('the native data path runs plain lz4 with the system liblz4 only');
    this.#binding = b;
    this.#size = Math.max(1, Math.floor(size));
    this.#arena = arena;
    this.#handle = b.create(new Uint8Array(arena.buffer), new Uint8Array(arena.meta), new Uint8Array(arena.hashes), arena.slotSize, TASK_PIECES, spec.blockSize, this.#size, this.#done);
  }

  get size(): number {
    return this.#size;
  }

  get arena(): Arena {
    return this.#arena;
  }

  /** Nothing to boot: the threads start with the pool. */
  start(): void {}

  run(task: TaskRequest, urgent = false): Promise<TaskResult> {
    if (this.#closed) return Promise.reject(new Error('compression pool is closed'));
    task.id = this.#nextId++;
    const promise = new Promise<TaskResult>((resolve, reject) => this.#pending.set(task.id, { task, resolve, reject }));
    this.#binding.run(this.#handle, task.id, task.pieces, task.paths, task.pathEnds, task.out, task.input, urgent);
    return promise;
  }

  readonly #done: OnDone = (id, length, kind, piece, got, errno, message) => {
    const p = this.#pending.get(id);
    if (!p) return; // closed meanwhile
    this.#pending.delete(id);
    const result: TaskResult = { id, length };
    if (kind === Kind.SHRANK) result.failure = { piece, kind: 'shrank', got: got < 0 ? null : got };
    else if (kind === Kind.GREW) result.failure = { piece, kind: 'grew' };
    else if (kind === Kind.SYSTEM) result.failure = errnoReadFailure(piece, errno, slotPath(p.task, p.task.pieces[piece * PIECE_FIELDS]));
    else if (kind === Kind.OTHER) result.error = message ?? 'native task failed';
    p.resolve(result);
  };

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#binding.close(this.#handle);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(new Error('compression pool is closed'));
  }
}
