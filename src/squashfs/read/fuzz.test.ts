/**
 * The fuzz run (scripts/fuzz.mjs) as part of the test suite: 3000 seeded mutations of small images from every
 * compressor, each fully read in a watched child process. Nothing but IMAGE_CORRUPT / IMAGE_UNSUPPORTED may escape,
 * no iteration may be slow or hang, and memory must stay flat.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildCorpus, makeCase, runCase } from '../../../test/support/squashfs-fuzz.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const skip = hasTool('mksquashfs') ? false : 'mksquashfs not installed';
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

test('fuzz: 3000 mutated images, only image errors, bounded time and memory', { skip, timeout: 120_000 }, () => {
  const r = spawnSync(process.execPath, ['scripts/fuzz.mjs', '--seed', '1', '--iterations', '3000', '--time', '25', '--json'], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 90_000,
    maxBuffer: 64 << 20,
  });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let summary;
  try {
    summary = JSON.parse(last);
  } catch {
    assert.fail(`fuzz.mjs gave no summary (status ${r.status}, signal ${r.signal}): ${r.stdout.slice(-2000)} ${r.stderr.slice(-2000)}`);
  }
  const report = summary.failures.map((f: { seed: number; kind: string; detail: string }) => `seed ${f.seed} (${f.kind}): ${f.detail}`).join('\n');
  assert.deepEqual(summary.failures, [], `fuzz failures:\n${report}`);
  assert.ok(summary.iterations >= 1000, `only ${summary.iterations} iterations ran in the time limit`);
  assert.ok(summary.read > 0 && summary.rejected > 0, 'mutations both keep and break images');
  assert.ok(summary.maxMs < 5000, `slowest iteration ${summary.maxMs} ms`);
  assert.ok(summary.maxRss - summary.baseline < 512 * 2 ** 20, `rss grew from ${summary.baseline >> 20} to ${summary.maxRss >> 20} MiB`);
  assert.equal(r.status, 0);
});

test('fuzz harness: cases are reproducible from their seed and unmutated images read fully', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-fuzz-t-'));
  try {
    const corpus = await buildCorpus(dir);
    assert.ok(corpus.length >= 4, `corpus has ${corpus.length} images`);
    for (const image of corpus) {
      const o = await runCase({ seed: 0, image: image.name, mutations: [], bytes: image.bytes });
      assert.equal(o.result, 'read', `${image.name}: ${o.message ?? o.failure}`);
      assert.ok(o.entries > 270, `${image.name}: ${o.entries} entries`);
    }
    const a = makeCase(corpus, 12345);
    const b = makeCase(corpus, 12345);
    assert.deepEqual(a.mutations, b.mutations);
    assert.deepEqual(a.bytes, b.bytes);
    const truncated = await runCase({ seed: 0, image: 'x', mutations: ['truncate'], bytes: corpus[0].bytes.subarray(0, 500) });
    assert.equal(truncated.result, 'rejected');
    assert.equal(truncated.code, 'IMAGE_CORRUPT');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
