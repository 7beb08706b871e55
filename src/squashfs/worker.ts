/**
 * Compression worker thread: runs the tasks the pool sends (run-task.ts) and sends the results back by transfer.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { makeTaskRunner, type WorkerSetup } from './run-task.js';

export type { WorkerSetup } from './run-task.js';

const port = parentPort!;
const run = makeTaskRunner(workerData as WorkerSetup);

port.on('message', (task) => {
  const result = run(task);
  port.postMessage(result, [result.meta.buffer, result.hashes.buffer] as ArrayBuffer[]);
});
