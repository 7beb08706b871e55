import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTree } from './tree.js';
import { addEntry } from './add.js';
import { treeSource } from './tree-source.js';
import { realpathIn } from '../sources/realpath.js';

test('the image tree read as a Source: stat, links, listings and bytes as the image will have them', async () => {
  const tree = createTree();
  const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1, reason: 't', origin: 'generated' };
  const data = new TextEncoder().encode('hello world');
  addEntry(tree, '/usr/lib/x/libz.so.1.3', { ...base, type: 'file', size: data.length, content: { kind: 'bytes', data } });
  addEntry(tree, '/usr/lib/x/libz.so.1', { ...base, mode: 0o777, type: 'symlink', target: 'libz.so.1.3' });
  addEntry(tree, '/lib', { ...base, mode: 0o777, type: 'symlink', target: 'usr/lib' });
  addEntry(tree, '/usr/lib/x/hard', { ...base, type: 'hardlink', target: '/usr/lib/x/libz.so.1.3' });
  const s = treeSource(tree);
  assert.equal(await realpathIn(s, '/lib/x/libz.so.1'), '/usr/lib/x/libz.so.1.3');
  assert.deepEqual(await s.readdir('/usr/lib/x'), ['hard', 'libz.so.1', 'libz.so.1.3']);
  assert.equal((await s.lstat('/usr/lib/x/libz.so.1'))?.type, 'symlink');
  assert.equal((await s.lstat('/usr/lib/x/hard'))?.size, data.length);
  assert.equal((await s.lstat('/usr/lib'))?.type, 'dir');
  assert.equal(await s.lstat('/nope'), null);
  assert.equal(Buffer.from(await s.read('/usr/lib/x/hard', 6, 100)).toString(), 'world');
  assert.equal(Buffer.from(await s.readFile('/usr/lib/x/libz.so.1.3')).toString(), 'hello world');
  await assert.rejects(s.read('/usr/lib', 0, 1));
});
