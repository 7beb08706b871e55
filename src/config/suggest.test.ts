import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closest, didYouMean, editDistance } from './suggest.js';

test('edit distance counts a swap of neighbours as one edit', () => {
  assert.equal(editDistance('contnets', 'contents'), 1);
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
});

test('closest: typos, swapped letters and unique prefixes; nothing for far-off words', () => {
  const flags = ['--pname', '--version', '--unit', '--contents', '--squash-compression', '--squash-block-size'];
  assert.equal(closest('--contnets', flags), '--contents');
  assert.equal(closest('--pnam', flags), '--pname');
  assert.equal(closest('--Version', flags), '--version');
  assert.equal(closest('--squash-comp', flags), '--squash-compression');
  assert.equal(closest('--squash', flags), undefined); // a prefix of two
  assert.equal(closest('--frobnicate', flags), undefined);
  assert.equal(didYouMean('unitz', ['units', 'pname'], (c) => `'${c}'`), " (did you mean 'units'?)");
  assert.equal(didYouMean('zzz', ['units']), '');
});
