/**
 * Compression worker thread: runs the tasks the pool sends (run-task.ts); results go in the shared arena, the reply
 * only says the task is done.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { makeTaskRunner, type WorkerSetup } from './run-task.js';

export type { WorkerSetup } from './run-task.js';

const port = parentPort!;
const run = makeTaskRunner(workerData as WorkerSetup);

port.on('message', (task) => {
  const result = run(task);
  port.postMessage(result);
});
