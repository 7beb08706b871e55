#!/usr/bin/env node
// Runs the compiled CLI; in a checkout without dist/ (before `npm run build`) it runs the sources through tsx.
import { existsSync } from 'node:fs';
import v8 from 'node:v8';

// Less inlining into the hot functions of pack and build: their optimised code is compiled on the same two cores
// the compression threads need, and V8's default budget spent ~0.3 s of CPU on it for a 30k-file tree (README,
// benchmarks: 0.1 s less CPU, 0.04 s less wall with this budget).
v8.setFlagsFromString('--max-inlined-bytecode-size-cumulative=200');

const compiled = new URL('../dist/src/cli/bin.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  await import('tsx/esm');
  await import(new URL('../src/cli/bin.ts', import.meta.url).href);
}
