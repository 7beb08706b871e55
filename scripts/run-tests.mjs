#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node's test runner (Node 20 has no --test globs), then applies the
// CI check (scripts/testing/check.mjs) to the runner's own per-test events.
//
//   node scripts/run-tests.mjs [--unit] [--no-build] [FILE | SUBSTRING]...
//
// --unit limits the run to src/ (fast tests without root, kernel or containers); --no-build skips compiling dist/.
// An argument naming an existing file runs that file (whatever its name); any other argument selects the
// *.test.ts files whose path contains it.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { inCI } from './testing/ci.mjs';
import { ciProblems, failures } from './testing/check.mjs';

const args = process.argv.slice(2);
// The CLI tests run bin/mkportable.js, which uses dist/: compile first so they never test stale output.
if (!args.includes('--no-build')) {
  const tsc = spawnSync(process.execPath, [join('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { stdio: 'inherit' });
  if (tsc.status !== 0) process.exit(tsc.status ?? 1);
}

const roots = args.includes('--unit') ? ['src'] : ['src', 'test'];
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(p);
  }
};
roots.forEach(walk);
const extra = args.filter((a) => !a.startsWith('--'));
const named = extra.filter((a) => existsSync(a) && statSync(a).isFile());
const patterns = extra.filter((a) => !named.includes(a));
const selected = extra.length ? [...named, ...files.filter((f) => patterns.some((e) => f.includes(e)))] : files;
if (!selected.length) {
  console.error(`no test files match ${extra.join(' ')}`);
  process.exit(1);
}

const here = fileURLToPath(new URL('.', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'mkportable-tests-'));
const tmp = freshTempDir();
const recordsFile = join(work, 'records.jsonl');
const r = spawnSync(
  process.execPath,
  [
    '--enable-source-maps', '--import', 'tsx',
    // Every test body counts its assertions and subtests; one that checks nothing fails (testing/assertion-count.mjs).
    '--import', join(here, 'testing', 'count-register.mjs'),
    '--test', '--test-concurrency=2',
    // Node's own report for people and CI logs, and one JSON line per test for the check below.
    `--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`, '--test-reporter-destination=stdout',
    `--test-reporter=${join(here, 'testing', 'reporter.mjs')}`, `--test-reporter-destination=${recordsFile}`,
    ...selected,
  ],
  { stdio: 'inherit', env: { ...process.env, TMPDIR: tmp } },
);
const leftTemp = checkTempLeftovers(tmp);
const records = existsSync(recordsFile)
  ? readFileSync(recordsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
  : [];
rmSync(work, { recursive: true, force: true });

const ci = inCI();
const problems = ciProblems(records, { ci });
const failed = failures(records);
if (failed.length) console.error(`\n${failed.length} test(s) failed:\n${failed.map((l) => `  ${l}`).join('\n')}`);
if (problems.length) {
  console.error(`\n${ci ? 'CI check' : 'test check'}: ${problems.length} problem(s); ${ci ? 'in CI every test must run and check something' : 'every test must check something'}:`);
  console.error(problems.map((l) => `  ${l}`).join('\n'));
  process.exit(r.status || 1);
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
