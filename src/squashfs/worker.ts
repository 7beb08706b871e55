/**
 * Compression worker: receives batches of blocks (transferred ArrayBuffers), compresses them with the spec's
 * compressor, sends them back by transfer. It never touches files; ordering is the main thread's business (every
 * job carries its id).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createCompressor } from '../compress/registry.js';
import type { CompressorSpec } from '../compress/types.js';
import { copyBytes } from './bytes.js';
import type { BatchRequest, BatchResult, JobRequest, JobResult } from './pool.js';

const port = parentPort!;
const compressor = createCompressor((workerData as { spec: CompressorSpec }).spec);

/**
 * The compressed bytes in an ArrayBuffer of their own. Always a copy: a compressor may hand back a view of memory it
 * reuses, and transferring that would take it away from it.
 */
function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  return copyBytes(bytes).buffer as ArrayBuffer;
}

function compressOne(job: JobRequest, transfer: ArrayBuffer[]): JobResult {
  try {
    const input = new Uint8Array(job.buf, 0, job.length);
    const packed = compressor.compressSync(input);
    if (packed && packed.length < input.length) {
      const buf = ownBuffer(packed);
      transfer.push(buf);
      return { id: job.id, buf, length: packed.length, raw: false };
    }
    transfer.push(job.buf);
    return { id: job.id, buf: job.buf, length: job.length, raw: true };
  } catch (e) {
    return { id: job.id, error: e instanceof Error ? e.message : String(e) };
  }
}

port.on('message', (batch: BatchRequest) => {
  const transfer: ArrayBuffer[] = [];
  const results: JobResult[] = [];
  for (const job of batch.jobs) results.push(compressOne(job, transfer));
  const reply: BatchResult = { results };
  port.postMessage(reply, transfer);
});
