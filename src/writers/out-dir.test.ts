import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MkportableError } from '../errors.js';
import { prepareOutDir } from './out-dir.js';

const scratch = (t: { after: (f: () => void) => void }) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mkportable-outdir-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

const refused = async (p: Promise<unknown>, re: RegExp) =>
  assert.rejects(p, (e: unknown) => e instanceof MkportableError && e.code === 'OUTPUT_FAILED' && re.test(e.message));

test('makes missing folders, level by level, and leaves nothing behind', async (t) => {
  const dir = scratch(t);
  const out = path.join(dir, 'a', 'b', 'c');
  await prepareOutDir(out);
  assert.ok(statSync(out).isDirectory());
  assert.deepEqual(readdirSync(out), []);
  await prepareOutDir(out); // exists: fine
});

test('a file in the way is named', async (t) => {
  const dir = scratch(t);
  writeFileSync(path.join(dir, 'f'), '');
  await refused(prepareOutDir(path.join(dir, 'f', 'x', 'y')), new RegExp(`${dir}/f is a file, not a folder`));
  await refused(prepareOutDir(path.join(dir, 'f')), /is a file, not a folder/);
});

test('a folder under /proc fails at once instead of spinning (Node\'s recursive mkdir loops there)', { timeout: 10_000 }, async () => {
  await refused(prepareOutDir('/proc/mkportable-nope/deeper'), /cannot create \/proc\/mkportable-nope: \/proc does not allow new folders \(ENOENT\)/);
});

test('without create, the folder must exist', async (t) => {
  const dir = scratch(t);
  await refused(prepareOutDir(path.join(dir, 'nope'), { create: false }), /no such file or directory \(ENOENT\)/);
  await prepareOutDir(dir, { create: false });
});
