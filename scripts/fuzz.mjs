#!/usr/bin/env node
// Fuzz the squashfs reader (src/squashfs/read): seeded mutations of small valid images, each fully read.
//
//   node scripts/fuzz.mjs [SEED | --seed N] [--iterations N] [--time SECONDS] [--hang-ms MS] [--json] [--reasons]
//
// Runs until --iterations or --time is reached (unbounded without either; Ctrl-C prints the summary). --time only
// bounds an interactive session; the test suite counts iterations. Iteration i uses seed N+i, so
// `--seed S --iterations 1` reproduces a failure. The cases run in a child process under a watchdog: an exception
// other than IMAGE_CORRUPT/IMAGE_UNSUPPORTED, a hang, a crash or runaway memory is reported with its seed. Time is
// never a verdict: an iteration is a hang only when it makes no progress for --hang-ms (default 120 s, some
// thousand times what a case takes, so a loaded machine never trips it). Exit status 1 when anything failed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = fileURLToPath(import.meta.url);
const REPO = path.dirname(path.dirname(HERE));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < args.length) return args[i + 1];
  // A bare number is the seed: `npm run fuzz -- 1234`.
  const bare = args.find((a, j) => /^\d+$/.test(a) && !(j > 0 && args[j - 1].startsWith('--')));
  return name === 'seed' && bare !== undefined ? bare : dflt;
};
const flag = (name) => args.includes(`--${name}`);

/** An iteration silent for this long is killed and reported as a hang (hang detection, not a speed limit). */
const HANG_MS = Number(opt('hang-ms', 120_000));
/** RSS above the post-warm-up baseline that counts as runaway memory. */
const MAX_RSS_GROWTH = Number(opt('max-rss-mb', 512)) * 2 ** 20;

if (flag('child')) await child();
else await parent();

async function child() {
  const harness = await import(pathToFileURL(path.join(REPO, 'test/support/squashfs-fuzz.ts')).href);
  const seed0 = Number(opt('seed', 1));
  const end = Number(opt('end', Infinity));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-fuzz-'));
  let corpus;
  try {
    corpus = await harness.buildCorpus(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.send({ t: 'corpus', images: corpus.map((c) => `${c.name} (${c.bytes.length} bytes)`) });
  let baseline = 0;
  let maxRss = 0;
  for (let seed = seed0, i = 0; seed < end; seed++, i++) {
    process.send({ t: 'start', seed });
    const c = harness.makeCase(corpus, seed);
    const o = await harness.runCase(c);
    const rss = process.memoryUsage().rss;
    maxRss = Math.max(maxRss, rss);
    if (i === 200) {
      globalThis.gc?.();
      baseline = process.memoryUsage().rss;
    }
    let failure = o.result === 'failed' ? o.failure : undefined;
    if (!failure && baseline && rss - baseline > MAX_RSS_GROWTH) {
      globalThis.gc?.();
      const after = process.memoryUsage().rss;
      if (after - baseline > MAX_RSS_GROWTH) failure = `memory: rss ${after >> 20} MiB, baseline ${baseline >> 20} MiB`;
    }
    process.send({ t: 'done', seed, result: o.result, code: o.code, message: o.message, ms: o.ms, image: o.image, mutations: o.mutations, failure, rss, baseline, maxRss });
  }
  process.send({ t: 'finished' });
  process.disconnect();
}

async function parent() {
  const seed0 = Number(opt('seed', Date.now() % 1_000_000_000));
  const iterations = Number(opt('iterations', Infinity));
  const seconds = Number(opt('time', Infinity));
  const json = flag('json');
  const end = seed0 + iterations;
  const started = Date.now();
  const deadline = started + seconds * 1000;
  const stats = { iterations: 0, read: 0, rejected: 0, failed: 0, maxMs: 0, slowestSeed: 0, totalMs: 0, maxRss: 0, baseline: 0, codes: {}, reasons: {} };
  const failures = [];
  let corpus = [];
  const log = (s) => { if (!json) console.log(s); };
  log(`fuzzing the squashfs reader from seed ${seed0}${Number.isFinite(iterations) ? `, ${iterations} iterations` : ''}${Number.isFinite(seconds) ? `, ${seconds} s` : ''}`);

  let next = seed0;
  let stopping = false;
  process.on('SIGINT', () => { stopping = true; });
  while (next < end && Date.now() < deadline && !stopping) {
    next = await runChild(next);
  }
  const wall = (Date.now() - started) / 1000;
  const { reasons, ...counts } = stats;
  const summary = { seed: seed0, ...counts, distinctReasons: Object.keys(reasons).length, wallSeconds: wall, corpus, failures };
  if (json) {
    console.log(JSON.stringify(summary));
  } else {
    console.log(`${stats.iterations} iterations in ${wall.toFixed(1)} s: ${stats.read} read fully, ${stats.rejected} rejected, ${stats.failed} failed; slowest ${stats.maxMs.toFixed(0)} ms; max rss ${stats.maxRss >> 20} MiB`);
    console.log(`slowest: seed ${stats.slowestSeed}; rejections by code: ${JSON.stringify(stats.codes)}`);
    if (flag('reasons')) {
      const top = Object.entries(stats.reasons).sort((a, b) => b[1] - a[1]);
      console.log(`${top.length} distinct rejection reasons:`);
      for (const [r, n] of top) console.log(`  ${String(n).padStart(6)}  ${r}`);
    }
    for (const f of failures) {
      console.log(`\nFAIL seed=${f.seed} kind=${f.kind}${f.image ? ` image=${f.image}` : ''}${f.mutations ? ` mutations=${JSON.stringify(f.mutations)}` : ''}`);
      console.log(`  ${String(f.detail).split('\n').join('\n  ')}`);
      console.log(`  reproduce: node scripts/fuzz.mjs --seed ${f.seed} --iterations 1`);
    }
  }
  process.exitCode = failures.length ? 1 : 0;

  /** Run a child from `seed` until the end, a hang or a crash; returns the next seed to run. */
  function runChild(seed) {
    return new Promise((resolve) => {
      const childArgs = ['--import', 'tsx', '--expose-gc', HERE, '--child', '--seed', String(seed), '--end', String(end)];
      if (opt('max-rss-mb')) childArgs.push('--max-rss-mb', opt('max-rss-mb'));
      const cp = spawn(process.execPath, childArgs, { cwd: REPO, stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
      let stderr = '';
      cp.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
      let current = seed;
      let lastBeat = Date.now();
      let settled = false;
      const finish = (nextSeed) => {
        if (settled) return;
        settled = true;
        clearInterval(watchdog);
        resolve(nextSeed);
      };
      const watchdog = setInterval(() => {
        if (stopping || Date.now() >= deadline) {
          cp.kill('SIGKILL');
          return finish(end);
        }
        if (Date.now() - lastBeat > HANG_MS) {
          failures.push({ seed: current, kind: 'hang', detail: `no progress for ${HANG_MS} ms: killed as a hang` });
          stats.failed++;
          cp.kill('SIGKILL');
          finish(current + 1);
        }
      }, 250);
      cp.on('message', (m) => {
        lastBeat = Date.now();
        if (m.t === 'corpus') corpus = m.images;
        else if (m.t === 'start') current = m.seed;
        else if (m.t === 'done') {
          stats.iterations++;
          stats.totalMs += m.ms;
          if (m.ms > stats.maxMs) {
            stats.maxMs = m.ms;
            stats.slowestSeed = m.seed;
          }
          stats.maxRss = Math.max(stats.maxRss, m.maxRss);
          stats.baseline = m.baseline;
          if (m.result === 'rejected') {
            stats.rejected++;
            stats.codes[m.code] = (stats.codes[m.code] ?? 0) + 1;
            const reason = String(m.message).replace(/^fuzz\.sqfs: /, '').replace(/ at offset \d+$/, '').replace(/"[^"]*"/g, '"…"').replace(/\d+/g, 'N').slice(0, 90);
            stats.reasons[reason] = (stats.reasons[reason] ?? 0) + 1;
          } else if (m.result === 'read') stats.read++;
          if (m.failure) {
            stats.failed++;
            failures.push({ seed: m.seed, kind: m.result === 'failed' ? 'exception' : 'limit', image: m.image, mutations: m.mutations, detail: m.failure });
          }
          current = m.seed + 1;
          if (!json && stats.iterations % 1000 === 0) log(`  ${stats.iterations} iterations, ${stats.failed} failed`);
          if (Date.now() >= deadline || stopping) {
            cp.kill('SIGKILL');
            finish(end);
          }
        } else if (m.t === 'finished') finish(end);
      });
      cp.on('exit', (code, signal) => {
        if (settled) return;
        if (current < end) {
          failures.push({ seed: current, kind: 'crash', detail: `child exited (${signal ?? code}): ${stderr.trim()}` });
          stats.failed++;
          finish(current + 1);
        } else finish(end);
      });
    });
  }
}
