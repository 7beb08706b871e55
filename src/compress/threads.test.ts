/**
 * The native bindings load and work in several worker threads at once, giving the main thread's bytes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { createCompressor, parseCompression } from './registry.js';
import { binaryBytes, textBytes } from '../../test/support/compress-data.js';

const WORDS = [['gzip'], ['xz', '-Xbcj', 'x86'], ['zstd'], ['lz4', '-Xhc'], ['lz4']];
const BLOCK = 131072;

/** A worker that compresses every input with every compressor and returns the results (tsx registered first). */
function startWorker(inputs: Uint8Array[]): Promise<Uint8Array[][]> {
  const registry = new URL('./registry.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const source = `
    const { parentPort, workerData } = await import('node:worker_threads');
    (await import(${JSON.stringify(tsx)})).register();
    const { createCompressor, parseCompression } = await import(${JSON.stringify(registry)});
    const out = workerData.words.map((w) => {
      const c = createCompressor(parseCompression(w, workerData.block));
      return workerData.inputs.map((d) => {
        const packed = c.compressSync(d);
        if (packed && c.decompressSync(packed, d.length).length !== d.length) throw new Error('bad round trip');
        return packed;
      });
    });
    parentPort.postMessage(out);`;
  const worker = new Worker(`import(${JSON.stringify(`data:text/javascript,${encodeURIComponent(source)}`)})`, {
    eval: true,
    workerData: { words: WORDS, block: BLOCK, inputs },
  });
  return new Promise((resolve, reject) => {
    worker.once('message', (m) => {
      resolve(m as Uint8Array[][]);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}

describe('worker threads', () => {
  it('compress in parallel workers exactly as on the main thread', async () => {
    const inputs = [textBytes(BLOCK), binaryBytes(BLOCK), textBytes(8192)];
    const results = await Promise.all([startWorker(inputs), startWorker(inputs), startWorker(inputs)]);
    const expected = WORDS.map((w) => {
      const c = createCompressor(parseCompression(w, BLOCK));
      return inputs.map((d) => c.compressSync(d));
    });
    for (const r of results) assert.deepEqual(r, expected);
  });
});
