/**
 * A pool of compression workers running tasks (task.ts). Each task goes to the least busy worker, at most two
 * outstanding per worker so none waits for a round trip; urgent tasks (fragment blocks, which the writer is
 * waiting for) jump the queue. Bytes stay in the shared arena; messages carry only the small descriptions.
 * Workers start on first use (or start()) and end on close().
 */
import { Worker } from 'node:worker_threads';
import type { CompressorSpec } from '../compress/types.js';
import type { Arena, TaskRequest, TaskResult } from './task.js';
import type { WorkerSetup } from './run-task.js';

/** What the data path needs from a pool (tests run tasks in-process). */
export interface TaskRunner {
  /** Run a task; its buffers are transferred (the caller must not use them afterwards). */
  run(task: TaskRequest, urgent?: boolean): Promise<TaskResult>;
  readonly size: number;
  /** The slots results and inline bytes go in. */
  readonly arena: Arena;
}

/** A runner the writer makes, starts and closes itself (the worker pool, or the native one). */
export interface OwnedRunner extends TaskRunner {
  /** Get ready now rather than on first use. */
  start(): void;
  close(): Promise<void>;
}

interface Pending {
  resolve: (r: TaskResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: number;
}

const PER_WORKER = 4;

/**
 * Start the worker script next to this module: `worker.js` when compiled to dist/; when running from sources
 * under tsx, `worker.ts` through a small bootstrap that registers tsx in the worker first (an `--import tsx`
 * in execArgv does not yet apply to a worker's own entry module on Node 20).
 */
function startWorker(setup: WorkerSetup): Worker {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return new Worker(new URL('./worker.js', self), { workerData: setup });
  const script = new URL('./worker.ts', self).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(script)}); })`;
  return new Worker(bootstrap, { eval: true, workerData: setup });
}

export class CompressionPool implements OwnedRunner {
  readonly #setup: WorkerSetup;
  readonly #size: number;
  readonly #slots: Slot[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #queue: TaskRequest[] = [];
  #nextId = 0;
  #failure: Error | null = null;
  #closed = false;

  constructor(spec: CompressorSpec, size: number, arena: Arena, cacheFolder: string | null = null) {
    this.#setup = { spec, cacheFolder, arena };
    this.#size = Math.max(1, Math.floor(size));
  }

  get size(): number {
    return this.#size;
  }

  get arena(): Arena {
    return this.#setup.arena;
  }

  /** Start every worker now rather than on first use (they take a moment to boot). */
  start(): void {
    while (!this.#closed && !this.#failure && this.#slots.length < this.#size) this.#spawn();
  }

  run(task: TaskRequest, urgent = false): Promise<TaskResult> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new Error('compression pool is closed'));
    task.id = this.#nextId++;
    const promise = new Promise<TaskResult>((resolve, reject) => this.#pending.set(task.id, { resolve, reject }));
    if (urgent) this.#queue.unshift(task);
    else this.#queue.push(task);
    this.#dispatch();
    return promise;
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let slot = this.#slots.reduce<Slot | undefined>((best, s) => (!best || s.busy < best.busy ? s : best), undefined);
      if ((!slot || slot.busy > 0) && this.#slots.length < this.#size) slot = this.#spawn();
      if (!slot || slot.busy >= PER_WORKER) return;
      const task = this.#queue.shift()!;
      slot.busy++;
      slot.worker.postMessage(task, [...new Set([task.pieces.buffer, task.paths.buffer, task.pathEnds.buffer])] as ArrayBuffer[]);
    }
  }

  #spawn(): Slot {
    const worker = startWorker(this.#setup);
    const slot: Slot = { worker, busy: 0 };
    worker.on('message', (r: TaskResult) => {
      slot.busy--;
      const p = this.#pending.get(r.id);
      this.#pending.delete(r.id);
      p?.resolve(r);
      this.#dispatch();
    });
    worker.on('error', (e) => this.#fail(e instanceof Error ? e : new Error(String(e))));
    worker.on('exit', (code) => {
      if (!this.#closed) this.#fail(new Error(`compression worker exited with code ${code}`));
    });
    this.#slots.push(slot);
    return slot;
  }

  #fail(e: Error): void {
    if (this.#failure) return;
    this.#failure = e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
    this.#queue.length = 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(new Error('compression pool is closed'));
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }
}
