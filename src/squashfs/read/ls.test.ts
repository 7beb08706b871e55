import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { formatMode, formatTime, listCommand } from './ls.js';
import { openImage } from './index.js';
import { needs } from '../../../test/support/env.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const skip = hasTool('mksquashfs') ? false : 'mksquashfs not installed';

test('formatMode and formatTime: fixed mode strings and times', () => {
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

test('formatMode spells the mode of every node type and special bit as ls -ld does', async (t) => {
  if (!needs(t, process.getuid?.() === 0 && hasTool('python3'), 'needs root (mknod) and python3 (a socket)')) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mkportable-ls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const p = (n: string) => path.join(dir, n);
  const cases: Array<[string, Parameters<typeof formatMode>[0], number, () => void]> = [
    ['d755', 'dir', 0o755, () => fs.mkdirSync(p('d755'))],
    ['d1777', 'dir', 0o1777, () => fs.mkdirSync(p('d1777'))],
    ['d1770', 'dir', 0o1770, () => fs.mkdirSync(p('d1770'))],
    ['f644', 'file', 0o644, () => fs.writeFileSync(p('f644'), '')],
    ['f4755', 'file', 0o4755, () => fs.writeFileSync(p('f4755'), '')],
    ['f4644', 'file', 0o4644, () => fs.writeFileSync(p('f4644'), '')],
    ['f2750', 'file', 0o2750, () => fs.writeFileSync(p('f2750'), '')],
    ['f6070', 'file', 0o6070, () => fs.writeFileSync(p('f6070'), '')],
    ['f000', 'file', 0o000, () => fs.writeFileSync(p('f000'), '')],
    ['c666', 'char', 0o666, () => assert.equal(spawnSync('mknod', [p('c666'), 'c', '1', '3']).status, 0)],
    ['b660', 'block', 0o660, () => assert.equal(spawnSync('mknod', [p('b660'), 'b', '7', '200']).status, 0)],
    ['p600', 'fifo', 0o600, () => assert.equal(spawnSync('mkfifo', [p('p600')]).status, 0)],
    ['s000', 'socket', 0o000, () => assert.equal(spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', p('s000')]).status, 0)],
  ];
  for (const [name, type, mode, make] of cases) {
    make();
    fs.chmodSync(p(name), mode);
  }
  fs.symlinkSync('target', p('l777'));
  cases.push(['l777', 'symlink', 0o777, () => {}]);
  for (const [name, type, mode] of cases) {
    const ls = spawnSync('ls', ['-ld', p(name)], { encoding: 'utf8' });
    assert.equal(ls.status, 0, ls.stderr);
    assert.equal(formatMode(type, mode), ls.stdout.slice(0, 10), `${name}: ${ls.stdout}`);
  }
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
