import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MkportableError } from '../errors.js';
import { nativeAddon } from './common.js';
import { requireCompressorLibrary } from './registry.js';

test('a native addon that is not built is one ADDON_MISSING line with the fix', () => {
  const load = nativeAddon<unknown>('./no-such-addon/build/Release/binding.node', 'frob compression needs the frob addon, which', 'run `npm rebuild frob`');
  assert.throws(load, (e: unknown) => {
    assert.ok(e instanceof MkportableError);
    assert.equal(e.code, 'ADDON_MISSING');
    assert.equal(e.message, "frob compression needs the frob addon, which is not built or not installed (Cannot find module './no-such-addon/build/Release/binding.node'): run `npm rebuild frob`");
    return true;
  });
});

test('the installed compressors\' addons load', () => {
  for (const name of ['gzip', 'xz', 'zstd', 'lz4'] as const) assert.doesNotThrow(() => requireCompressorLibrary(name), name);
});
