// The pipeline's stages import only stages before them (README, Architecture): a stage can then be read and tested
// on its own, and the build reads as the list of them. Type-only imports are left out: they run nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = path.dirname(fileURLToPath(import.meta.url));

/** What each folder (or top-level module) of src/ must not import. */
const FORBIDDEN: Record<string, string[]> = {
  'errors.ts': ['*'],
  formats: ['*'],
  systemd: ['*'],
  config: ['plan', 'sources', 'closure', 'units', 'layout', 'writers', 'squashfs', 'inspect', 'try', 'cli', 'build.ts', 'pack.ts'],
  plan: ['closure', 'units', 'layout', 'writers', 'inspect', 'try', 'cli', 'build.ts', 'pack.ts'],
  sources: ['closure', 'units', 'layout', 'writers', 'inspect', 'try', 'cli', 'build.ts', 'pack.ts'],
  units: ['layout', 'writers', 'inspect', 'try', 'cli', 'build.ts', 'pack.ts'],
  closure: ['units', 'layout', 'writers', 'inspect', 'try', 'cli', 'build.ts', 'pack.ts'],
  layout: ['closure', 'units', 'writers', 'inspect', 'try', 'cli', 'build.ts', 'pack.ts'],
  writers: ['sources', 'closure', 'units', 'layout', 'inspect', 'try', 'cli', 'build.ts', 'pack.ts'],
  inspect: ['layout', 'writers', 'try', 'cli', 'build.ts', 'pack.ts'],
  packages: ['closure', 'units', 'layout', 'writers', 'inspect', 'try', 'publish', 'sbom', 'cli', 'build.ts', 'pack.ts'],
  sbom: ['closure', 'units', 'layout', 'writers', 'inspect', 'try', 'publish', 'cli', 'build.ts', 'pack.ts'],
  publish: ['plan', 'sources', 'closure', 'units', 'layout', 'writers', 'inspect', 'try', 'cli', 'build.ts', 'pack.ts'],
  try: ['plan', 'closure', 'units', 'layout', 'writers', 'publish', 'sbom', 'cli', 'build.ts', 'pack.ts'],
};
/** Modules every stage may use. */
const BASE = ['errors.ts'];

function* sources(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) yield p;
  }
}

const stageOf = (file: string): string => path.relative(SRC, file).split(path.sep)[0];

test('stages import only from the stages before them', () => {
  const wrong: string[] = [];
  let checked = 0;
  for (const file of sources(SRC)) {
    const from = stageOf(file);
    const forbidden = FORBIDDEN[from];
    if (!forbidden) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(type\s+)?[^;]*?from\s+'(\.[^']+)'/gm)) {
      if (m[1]) continue;
      const to = stageOf(path.resolve(path.dirname(file), m[2]).replace(/\.js$/, '.ts'));
      checked++;
      if (to === from || BASE.includes(to) && from !== 'errors.ts') continue;
      if (forbidden.includes('*') || forbidden.includes(to)) wrong.push(`${path.relative(SRC, file)} imports ${m[2]} (${to})`);
    }
  }
  assert.ok(checked > 50, `only ${checked} imports seen`);
  assert.deepEqual(wrong, []);
});
