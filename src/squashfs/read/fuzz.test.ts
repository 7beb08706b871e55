/**
 * The fuzz run (scripts/fuzz.mjs) as part of the test suite: 2000 seeded mutations of small images from every
 * compressor, each fully read in a watched child process. Nothing but IMAGE_CORRUPT / IMAGE_UNSUPPORTED may escape,
 * no iteration may hang (fuzz.mjs's watchdog; the runner's timeout catches a hung run) and memory must stay flat.
 * The budget is a count of iterations, never seconds: a loaded machine is slower, not wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildCorpus, makeCase, runCase } from '../../../test/support/squashfs-fuzz.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const skip = hasTool('mksquashfs') ? false : 'mksquashfs not installed';
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ITERATIONS = 2000;

test(`fuzz: ${ITERATIONS} mutated images, only image errors, no hang, bounded memory`, { skip, timeout: 20 * 60_000 }, async (t) => {
  const r = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve, reject) => {
    const cp = spawn(process.execPath, ['scripts/fuzz.mjs', '--seed', '1', '--iterations', String(ITERATIONS), '--json'], {
      cwd: REPO,
      signal: t.signal, // the runner's timeout (a hung run) kills it
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    cp.stdout.on('data', (d) => (stdout += d));
    cp.stderr.on('data', (d) => (stderr = (stderr + d).slice(-8000)));
    cp.on('error', reject);
    cp.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let summary;
  try {
    summary = JSON.parse(last);
  } catch {
    assert.fail(`fuzz.mjs gave no summary (status ${r.code}, signal ${r.signal}): ${r.stdout.slice(-2000)} ${r.stderr.slice(-2000)}`);
  }
  const report = summary.failures.map((f: { seed: number; kind: string; detail: string }) => `seed ${f.seed} (${f.kind}): ${f.detail}`).join('\n');
  assert.deepEqual(summary.failures, [], `fuzz failures:\n${report}`);
  assert.equal(summary.iterations, ITERATIONS, 'every iteration ran');
  assert.ok(summary.read > 0 && summary.rejected > 0, 'mutations both keep and break images');
  assert.ok(summary.maxRss - summary.baseline < 512 * 2 ** 20, `rss grew from ${summary.baseline >> 20} to ${summary.maxRss >> 20} MiB`);
  assert.equal(r.code, 0);
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
