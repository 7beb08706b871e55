#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node's test runner (Node 20 has no --test globs).
// --unit limits the run to src/ (fast tests without root, kernel or containers).
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

// The CLI tests run bin/mkportable.js, which uses dist/: compile first so they never test stale output.
const tsc = spawnSync(process.execPath, [join('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const unitOnly = process.argv.includes('--unit');
const roots = unitOnly ? ['src'] : ['src', 'test'];
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(p);
  }
};
roots.forEach(walk);
const extra = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const selected = extra.length ? files.filter((f) => extra.some((e) => f.includes(e))) : files;
const tmp = freshTempDir();
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...selected], {
  stdio: ['inherit', 'pipe', 'inherit'],
  maxBuffer: 1 << 30,
  env: { ...process.env, TMPDIR: tmp },
});
process.stdout.write(r.stdout);
const leftTemp = checkTempLeftovers(tmp);
// In CI every test must run: a skip there means a prerequisite is missing, and that is a failure.
const ci = process.env.CI === 'true' || process.env.CI === '1';
const skipped = Number(/^# skipped (\d+)$/m.exec(r.stdout.toString())?.[1] ?? 0);
if (ci && skipped > 0) {
  const lines = r.stdout.toString().split('\n').filter((l) => /# SKIP/.test(l));
  console.error(`CI: ${skipped} test(s) skipped; every test must run in CI:\n${lines.join('\n')}`);
  process.exit(1);
}
process.exit(leftTemp ? 1 : (r.status ?? 1));

/**
 * Tests remove the temporary folders and files they make. The suite runs with TMPDIR set to a fresh folder (every
 * os.tmpdir() of the tests and of what they start lands there); whatever is still in it afterwards fails the run.
 */
function freshTempDir() {
  return mkdtempSync(join(tmpdir(), 'mkportable-run-'));
}

/** Print what the tests left in `dir` and remove it; true when something was left. */
function checkTempLeftovers(dir) {
  // tsx keeps its transform cache there (tsx-<uid>): not the tests' doing.
  const left = readdirSync(dir).filter((n) => !/^tsx-\d+$/.test(n)).sort();
  if (left.length) console.error(`tests left ${left.length} temporary file(s) or folder(s) behind:\n${left.map((n) => `  ${n}`).join('\n')}`);
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch (e) {
    console.error(`cannot remove ${dir} (a mount left behind?): ${e.message}`);
    return true;
  }
  return left.length > 0;
}
