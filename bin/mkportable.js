#!/usr/bin/env node
// Runs the compiled CLI; in a checkout without dist/ (before `npm run build`) it runs the sources through tsx.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/src/cli/bin.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  await import('tsx/esm');
  await import(new URL('../src/cli/bin.ts', import.meta.url).href);
}
