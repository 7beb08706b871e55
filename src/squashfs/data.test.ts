import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTree, type Entry, type ImageTree } from '../plan/tree.js';
import { pathOf } from '../plan/packed.js';
import { arenaLayout, blockCount, writeData, type DataResult } from './data.js';
import { DATA_UNCOMPRESSED, INVALID_FRAGMENT } from './format.js';
import { ImageFile } from './output.js';
import { planImage } from './plan.js';
import type { TaskRunner } from './pool.js';
import { makeTaskRunner } from './run-task.js';
import { createArena } from './task.js';

const BS = 4096;
const base = { mode: 0o644, uid: 0, gid: 0, mtime: 0, reason: 'test', origin: 'generated' };

function bytesOf(length: number, seed: number): Uint8Array {
  const b = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = seed % 3 === 0 ? x >>> 24 : (i * seed) & 0x0f; // some incompressible, some compressible
  }
  return b;
}

const file = (data: Uint8Array): Entry => ({ ...base, type: 'file', size: data.length, content: { kind: 'bytes', data } });

function sampleTree(): ImageTree {
  const tree = createTree();
  tree.entries.set('/', { ...base, type: 'dir' });
  const big = bytesOf(10 * BS + 123, 3);
  tree.entries.set('/a-big', file(big));
  tree.entries.set('/b-exact', file(bytesOf(4 * BS, 5)));
  tree.entries.set('/c-dup-of-big', file(big.slice()));
  const sparse = bytesOf(6 * BS, 7);
  sparse.fill(0, BS, 4 * BS); // blocks 1..3 are zeros
  tree.entries.set('/d-sparse', file(sparse));
  for (let i = 0; i < 40; i++) tree.entries.set(`/small-${String(i).padStart(2, '0')}`, file(bytesOf(300 + i * 97, 11 + i)));
  tree.entries.set('/z-empty', file(new Uint8Array(0)));
  return tree;
}

/**
 * Runs tasks in this thread with the real task code (gzip), finishing them after random delays so that results
 * come back out of order; counts how many are outstanding at once.
 */
function shufflingRunner(opts: { shuffle: boolean; workers?: number }): TaskRunner & { maxOutstanding: number } {
  const workers = opts.workers ?? 2;
  const layout = arenaLayout(workers, BS);
  const arena = createArena(layout.slotSize, layout.slots);
  const run = makeTaskRunner({ spec: { name: 'gzip', blockSize: BS }, cacheFolder: null, arena });
  let outstanding = 0;
  const runner = {
    size: workers,
    arena,
    maxOutstanding: 0,
    run(task: Parameters<TaskRunner['run']>[0]) {
      outstanding++;
      runner.maxOutstanding = Math.max(runner.maxOutstanding, outstanding);
      const delay = opts.shuffle ? Math.floor(Math.random() * 4) : 0;
      return new Promise<ReturnType<typeof run>>((resolve) => setTimeout(() => {
        outstanding--;
        resolve(run(task));
      }, delay));
    },
  };
  return runner;
}

async function run(tree: ImageTree, runner: TaskRunner): Promise<{ bytes: Buffer; data: DataResult; plan: ReturnType<typeof planImage> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sqfs-data-'));
  try {
    const plan = planImage(tree);
    const out = await ImageFile.create(path.join(dir, 'img'));
    const { taskSlots } = arenaLayout(runner.size, BS);
    const data = await writeData(plan, out, { blockSize: BS, tailPacking: true, pool: runner, taskSlots, hashBlocks: false });
    await out.finish();
    return { bytes: readFileSync(path.join(dir, 'img')), data, plan };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('blocks land in the same order whatever order tasks finish in; the arena bounds what is alive', async () => {
  const tree = sampleTree();
  const reference = await run(tree, shufflingRunner({ shuffle: false }));
  for (const workers of [1, 2, 3]) {
    const runner = shufflingRunner({ shuffle: true, workers });
    const shuffled = await run(tree, runner);
    assert.ok(shuffled.bytes.equals(reference.bytes), `${workers} workers: same bytes`);
    assert.ok(runner.maxOutstanding <= runner.arena.slots, `at most one task per arena slot (${runner.arena.slots}), saw ${runner.maxOutstanding}`);
  }
});

test('layouts: full blocks contiguous, tails packed, sparse blocks free, duplicates shared, empty files bare', async () => {
  const { data, plan, bytes } = await run(sampleTree(), shufflingRunner({ shuffle: true }));
  const t = plan.tree;
  const L = data.layouts;
  const layout = (p: string) => {
    const row = [...plan.files].find((r) => pathOf(t, r) === p)!;
    const first = L.blockStart[row];
    return {
      start: L.start[row], size: t.size[row], sparse: L.sparse.get(row) ?? 0, fragment: L.fragment[row], fragmentOffset: L.fragmentOffset[row],
      blocks: L.blocks.subarray(first, first + blockCount(t.size[row], BS, true)),
    };
  };
  const stored = (entry: number) => (entry & ~DATA_UNCOMPRESSED) >>> 0;

  const big = layout('/a-big');
  assert.equal(big.blocks.length, 10);
  assert.notEqual(big.fragment, INVALID_FRAGMENT, 'the 123-byte tail is in a fragment');
  const exact = layout('/b-exact');
  assert.equal(exact.fragment, INVALID_FRAGMENT, 'exactly 4 blocks: no tail');
  assert.equal(exact.start, big.start + big.blocks.reduce((s, b) => s + stored(b), 0), 'blocks follow each other');

  const dup = layout('/c-dup-of-big');
  assert.equal(dup.start, big.start);
  assert.deepEqual([...dup.blocks], [...big.blocks]);
  assert.deepEqual([dup.fragment, dup.fragmentOffset], [big.fragment, big.fragmentOffset]);
  assert.equal(data.duplicates, 1);

  const sparse = layout('/d-sparse');
  assert.deepEqual([...sparse.blocks].map((b) => b === 0), [false, true, true, true, false, false]);
  assert.equal(sparse.sparse, 3 * BS);
  assert.equal(sparse.start, exact.start + exact.blocks.reduce((s, b) => s + stored(b), 0), 'the duplicate took no space');

  const empty = layout('/z-empty');
  assert.deepEqual([empty.start, empty.blocks.length, empty.fragment], [0, 0, INVALID_FRAGMENT]);

  // Fragments: tails in order, none split, each entry pointing inside the data written.
  const offsets = new Map<number, number>();
  let tails = 0;
  for (const row of plan.files) {
    const p = pathOf(t, row);
    const l = layout(p);
    if (l.fragment === INVALID_FRAGMENT || p === '/c-dup-of-big') continue;
    tails++;
    const tail = l.size % BS;
    assert.ok(l.fragmentOffset + tail <= BS, `${p}: tail fits its fragment`);
    assert.ok((offsets.get(l.fragment) ?? 0) <= l.fragmentOffset, `${p}: tails packed in order`);
    offsets.set(l.fragment, l.fragmentOffset + tail);
  }
  assert.ok(tails >= 2 && data.fragments.length >= 1, `${tails} tails in ${data.fragments.length} fragments checked`);
  for (const f of data.fragments) assert.ok(f.start + stored(f.size) <= bytes.length);
});
