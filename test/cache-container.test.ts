/**
 * The block cache through `mkportable build` with the container writer: a DDI with verity built with an empty
 * cache, with the cache that build filled, and with --no-cache is the same file byte for byte, with the same root
 * hash; the warm build finds every block in $XDG_CACHE_HOME/mkportable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { runCli, tempDir } from './support/env.js';
import type { BuildResult } from '../src/index.js';

test('a verity DDI built cold, warm and without the cache: the same bytes and root hash; the warm build hits every block', async (t) => {
  const work = tempDir(t);
  const env = { ...process.env, XDG_CACHE_HOME: path.join(work, 'xdg'), SOURCE_DATE_EPOCH: '1700000000' };
  const build = async (name: string, extra: string[] = []): Promise<BuildResult> => {
    const r = await runCli(['build', 'examples/demo', '--out', path.join(work, name), '--json', '--format', 'ddi', '--verity', ...extra], { env });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as BuildResult;
  };
  const none = await build('none', ['--no-cache']);
  assert.equal(none.cache, null);
  assert.ok(!existsSync(path.join(work, 'xdg')), '--no-cache neither reads nor writes the cache');
  const cold = await build('cold');
  const warm = await build('warm');
  assert.ok(cold.cache && cold.cache.stored > 0, 'the cold build fills the cache');
  assert.ok(readdirSync(path.join(work, 'xdg', 'mkportable')).includes('blocks-v1'), 'in $XDG_CACHE_HOME/mkportable');
  assert.equal(warm.cache?.misses, 0, 'the warm build finds every block');
  assert.ok(warm.cache!.hits > 0);
  assert.equal(warm.cache?.corrupt, 0);
  for (const r of [cold, warm]) {
    assert.equal(r.format, 'ddi');
    assert.equal(r.sha256, none.sha256, 'the DDI is byte-identical with and without the cache');
    assert.equal(r.rootHash, none.rootHash);
  }
  assert.match(none.rootHash ?? '', /^[0-9a-f]{64}$/);
});
