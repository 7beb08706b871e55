import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { formatMode, formatTime, listCommand } from './ls.js';
import { openImage } from './index.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const skip = hasTool('mksquashfs') ? false : 'mksquashfs not installed';

test('formatMode spells modes like ls -l', () => {
  assert.equal(formatMode('dir', 0o755), 'drwxr-xr-x');
  assert.equal(formatMode('file', 0o644), '-rw-r--r--');
  assert.equal(formatMode('file', 0o4755), '-rwsr-xr-x');
  assert.equal(formatMode('file', 0o4644), '-rwSr--r--');
  assert.equal(formatMode('file', 0o2750), '-rwxr-s---');
  assert.equal(formatMode('dir', 0o1777), 'drwxrwxrwt');
  assert.equal(formatMode('dir', 0o1770), 'drwxrwx--T');
  assert.equal(formatMode('symlink', 0o777), 'lrwxrwxrwx');
  assert.equal(formatMode('char', 0o666), 'crw-rw-rw-');
  assert.equal(formatMode('block', 0o660), 'brw-rw----');
  assert.equal(formatMode('fifo', 0o600), 'prw-------');
  assert.equal(formatMode('socket', 0o000), 's---------');
  assert.equal(formatTime(0), '1970-01-01T00:00:00Z');
  assert.equal(formatTime(4_000_000_000), '2096-10-02T07:06:40Z');
});

test('listCommand lists the whole image or a subtree', { skip }, async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sqfs-ls-'));
  try {
    const tree = path.join(work, 'tree');
    fs.mkdirSync(path.join(tree, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'etc', 'os-release'), 'ID=test\n');
    fs.symlinkSync('../usr/lib/os-release', path.join(tree, 'etc', 'lib-link'));
    fs.writeFileSync(path.join(tree, 'line\nbreak'), '');
    for (const p of ['etc/os-release', 'etc', 'line\nbreak', '']) fs.utimesSync(path.join(tree, p), 1_700_000_000, 1_700_000_000);
    fs.lutimesSync(path.join(tree, 'etc', 'lib-link'), 1_700_000_000, 1_700_000_000);
    fs.chmodSync(tree, 0o755);
    fs.chmodSync(path.join(tree, 'etc'), 0o755);
    fs.chmodSync(path.join(tree, 'etc', 'os-release'), 0o644);
    fs.chmodSync(path.join(tree, 'line\nbreak'), 0o600);
    const image = path.join(work, 'ls.sqfs');
    const r = spawnSync('mksquashfs', [tree, image, '-noappend', '-quiet', '-no-progress', '-all-root']);
    assert.equal(r.status, 0, r.stderr.toString());
    const out = await listCommand(image);
    const t = '2023-11-14T22:13:20Z';
    assert.equal(
      out,
      [
        `drwxr-xr-x 0/0 44 ${t} /`,
        `drwxr-xr-x 0/0 49 ${t} /etc`,
        `lrwxrwxrwx 0/0 21 ${t} /etc/lib-link -> ../usr/lib/os-release`,
        `-rw-r--r-- 0/0  8 ${t} /etc/os-release`,
        `-rw------- 0/0  0 ${t} /line\\x0abreak`,
        '',
      ].join('\n'),
    );
    assert.equal(await listCommand(image, '/etc/os-release'), `-rw-r--r-- 0/0 8 ${t} /etc/os-release\n`);
    const img = await openImage(image);
    try {
      assert.equal((await listCommand(img, 'etc')).split('\n').length, 4, 'an open image is listed and left open');
      assert.equal((await img.readdir('/')).length, 2);
    } finally {
      await img.close();
    }
    await assert.rejects(listCommand(image, '/nope'), { code: 'PATH_NOT_FOUND' });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
