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
// Builds in the tests share a block cache of their own, never the user's ($XDG_CACHE_HOME/mkportable).
const cacheHome = mkdtempSync(join(tmpdir(), 'mkportable-test-cache-'));
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...selected], {
  stdio: ['inherit', 'pipe', 'inherit'],
  maxBuffer: 1 << 30,
  env: { ...process.env, XDG_CACHE_HOME: cacheHome },
});
rmSync(cacheHome, { recursive: true, force: true });
process.stdout.write(r.stdout);
// In CI every test must run: a skip there means a prerequisite is missing, and that is a failure.
const ci = process.env.CI === 'true' || process.env.CI === '1';
const skipped = Number(/^# skipped (\d+)$/m.exec(r.stdout.toString())?.[1] ?? 0);
if (ci && skipped > 0) {
  const lines = r.stdout.toString().split('\n').filter((l) => /# SKIP/.test(l));
  console.error(`CI: ${skipped} test(s) skipped; every test must run in CI:\n${lines.join('\n')}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
