/**
 * A pool of compression workers. Queued jobs go to the least busy worker in batches (one message carries up to
 * BATCH_BYTES of blocks, so small blocks do not pay a message round trip each; at most two batches outstanding per
 * worker, so none waits for a round trip); buffers move by transfer both ways. The pool does not bound memory itself: the data
 * pipeline never has more than its window of blocks alive. Workers start on first use (or start()) and end on
 * close().
 */
import { Worker } from 'node:worker_threads';
import type { CompressorSpec } from '../compress/types.js';
import { copyBytes } from './bytes.js';

export interface JobRequest {
  id: number;
  buf: ArrayBuffer;
  length: number;
}

export type JobResult =
  | { id: number; buf: ArrayBuffer; length: number; raw: boolean }
  | { id: number; error: string };

/** What goes to a worker, and what comes back: several jobs at a time. */
export interface BatchRequest {
  jobs: JobRequest[];
}
export interface BatchResult {
  results: JobResult[];
}

export interface Compressed {
  /** Bytes to store: the compressed block, or the input itself when compressing did not shrink it. */
  data: Uint8Array;
  raw: boolean;
}

interface Pending {
  resolve: (r: Compressed) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: number;
}

const PER_WORKER = 2;
const BATCH_BYTES = 1 << 20;
const BATCH_JOBS = 256;

/**
 * Start the worker script next to this module: `worker.js` when compiled to dist/; when running from sources
 * under tsx, `worker.ts` through a small bootstrap that registers tsx in the worker first (an `--import tsx`
 * in execArgv does not yet apply to a worker's own entry module on Node 20).
 */
function startWorker(spec: CompressorSpec): Worker {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return new Worker(new URL('./worker.js', self), { workerData: { spec } });
  const script = new URL('./worker.ts', self).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(script)}); })`;
  return new Worker(bootstrap, { eval: true, workerData: { spec } });
}

export class CompressionPool {
  readonly #spec: CompressorSpec;
  readonly #size: number;
  readonly #slots: Slot[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #queue: JobRequest[] = [];
  #nextId = 0;
  #failure: Error | null = null;
  #closed = false;

  constructor(spec: CompressorSpec, size: number) {
    this.#spec = spec;
    this.#size = Math.max(1, Math.floor(size));
  }

  get size(): number {
    return this.#size;
  }

  /** Start every worker now rather than on first use (they take a moment to boot). */
  start(): void {
    while (!this.#closed && !this.#failure && this.#slots.length < this.#size) this.#spawn();
  }

  /**
   * Compress `data`. When it starts at offset 0 of its ArrayBuffer, the whole buffer is handed over (transferred)
   * and must not be used afterwards; otherwise the bytes are copied first.
   */
  compress(data: Uint8Array): Promise<Compressed> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new Error('compression pool is closed'));
    const owns = data.byteOffset === 0 && data.buffer instanceof ArrayBuffer;
    const buf = (owns ? data.buffer : copyBytes(data).buffer) as ArrayBuffer;
    const id = this.#nextId++;
    const promise = new Promise<Compressed>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    this.#queue.push({ id, buf, length: data.byteLength });
    this.#dispatch();
    return promise;
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let slot = this.#slots.reduce<Slot | undefined>((best, s) => (!best || s.busy < best.busy ? s : best), undefined);
      if ((!slot || slot.busy > 0) && this.#slots.length < this.#size) slot = this.#spawn();
      if (!slot || slot.busy >= PER_WORKER) return;
      // Share what is queued among the workers that have room, up to a batch each.
      const room = this.#slots.filter((s) => s.busy < PER_WORKER).length + (this.#size - this.#slots.length);
      const share = Math.max(1, Math.ceil(this.#queue.length / Math.max(1, room)));
      const jobs: JobRequest[] = [];
      let bytes = 0;
      while (this.#queue.length > 0 && jobs.length < Math.min(share, BATCH_JOBS) && (jobs.length === 0 || bytes + this.#queue[0].length <= BATCH_BYTES)) {
        const job = this.#queue.shift()!;
        jobs.push(job);
        bytes += job.length;
      }
      slot.busy++;
      const batch: BatchRequest = { jobs };
      slot.worker.postMessage(batch, jobs.map((j) => j.buf));
    }
  }

  #spawn(): Slot {
    const worker = startWorker(this.#spec);
    const slot: Slot = { worker, busy: 0 };
    worker.on('message', (batch: BatchResult) => {
      slot.busy--;
      for (const r of batch.results) {
        const p = this.#pending.get(r.id);
        this.#pending.delete(r.id);
        if (!p) continue;
        if ('error' in r) p.reject(new Error(`compression failed: ${r.error}`));
        else p.resolve({ data: new Uint8Array(r.buf, 0, r.length), raw: r.raw });
      }
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
