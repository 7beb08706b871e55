import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readlinkSync, readSync as readFd, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { addPath, createClosure, type Why } from './resolve.js';
import { SYSTEMD_DEFAULT_PATH } from '../systemd/portabled.js';
import { createTree } from '../plan/tree.js';
import { directorySource, hostSource } from '../sources/host.js';
import type { BuildWarning } from '../errors.js';
import { readElfInfo } from '../formats/elf.js';

function readSync(file: string, offset: number, length: number): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(length);
    return b.subarray(0, readFd(fd, b, 0, length, offset));
  } finally {
    closeSync(fd);
  }
}
import { tempDir } from '../../test/support/env.js';

const strict: Why = { reason: 'test', strict: true, envPath: SYSTEMD_DEFAULT_PATH };

function lddSet(binary: string): Set<string> {
  const r = spawnSync('ldd', [binary], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = new Set<string>([realpathSync(binary)]);
  for (const m of r.stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) out.add(realpathSync(m[1]));
  return out;
}

test('the closure of real host binaries holds exactly the files ldd reports (by real path)', async () => {
  const binaries = ['/usr/bin/bash', '/usr/bin/ls', '/usr/bin/memcached', '/usr/bin/mksquashfs', process.execPath, '/usr/bin/ssh', '/usr/bin/git']
    .filter((b) => existsSync(b));
  assert.ok(binaries.length >= 4);
  for (const bin of binaries) {
    const tree = createTree();
    const warnings: BuildWarning[] = [];
    const c = createClosure(hostSource(), tree, 0, warnings);
    await addPath(c, bin, strict);
    const files = new Set([...tree.entries].filter(([, e]) => e.type === 'file').map(([p]) => realpathSync(p)));
    assert.deepEqual([...files].sort(), [...lddSet(bin)].sort(), bin);
    assert.deepEqual(warnings, []);
  }
});

test('symlink chains stay symlinks: merged-/usr links and the interpreter link keep the form they have on the host', async () => {
  const tree = createTree();
  const c = createClosure(hostSource(), tree, 0, []);
  await addPath(c, '/bin/sh', strict);
  // Every node the kernel meets on the way to /bin/sh and to its ELF interpreter (each directory, each link and
  // what each link points to) is in the image as the same kind of node as on the host, links with the same target:
  // a link stays a link, whatever this host's layout is.
  const shell = realpathSync('/bin/sh');
  const interpreter = (await readElfInfo(async (o, l) => readSync(shell, o, l), statSync(shell).size, shell)).interpreter;
  assert.ok(interpreter, `${shell} has no ELF interpreter`);
  const seen = new Set<string>();
  let links = 0;
  const walk = (p: string): void => {
    const parts = p.split('/').filter(Boolean);
    let dir = '/';
    for (const name of parts) {
      const at = path.posix.join(dir, name);
      if (!seen.has(at)) {
        seen.add(at);
        const e = tree.entries.get(at);
        assert.ok(e, `${at} is not in the image`);
        const host = lstatSync(at);
        assert.equal(e.type, host.isSymbolicLink() ? 'symlink' : host.isDirectory() ? 'dir' : 'file', at);
        if (e.type === 'symlink') {
          assert.equal(e.target, readlinkSync(at), `${at}: link target`);
          links++;
          walk(path.posix.resolve(dir, e.target));
        }
      }
      dir = realpathSync(at);
    }
  };
  walk('/bin/sh');
  walk(interpreter);
  // /bin/sh is a link on every distribution this runs on (to dash or bash).
  assert.ok(links >= 1, `no symlink among ${[...seen].join(', ')}`);
  // Nothing in the image is a dangling link: every symlink's target exists in the tree.
  for (const [p, e] of tree.entries) {
    if (e.type !== 'symlink') continue;
    const target = path.posix.resolve(path.posix.dirname(p), e.target);
    const real = realpathSync(target);
    assert.ok(tree.entries.has(real), `${p} -> ${e.target}: ${real} not in the image`);
  }
});

test('scripts bring their interpreter; env resolves NAME in the given PATH inside the source', async (t) => {
  const root = tempDir('mkportable-src-', t);
  mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
  mkdirSync(path.join(root, 'opt/py/bin'), { recursive: true });
  symlinkSync('usr/bin', path.join(root, 'bin'));
  const script = (p: string, body: string) => {
    writeFileSync(path.join(root, p), body);
    chmodSync(path.join(root, p), 0o755);
  };
  script('usr/bin/env', '#!/bin/sh-not-elf\n'); // not ELF: only its own shebang matters
  script('usr/bin/sh-not-elf', 'plain\n');
  script('opt/py/bin/python3', 'plain\n');
  script('usr/bin/tool', '#!/usr/bin/env -S python3 -u\nprint(1)\n');
  const tree = createTree();
  const c = createClosure(directorySource(root), tree, 0, []);
  await addPath(c, '/bin/tool', { ...strict, envPath: ['/usr/local/bin', '/opt/py/bin'] });
  for (const p of ['/bin', '/usr/bin/tool', '/usr/bin/env', '/usr/bin/sh-not-elf', '/opt/py/bin/python3']) assert.ok(tree.entries.has(p), p);
  // Without it in PATH the unit's program fails…
  const c2 = createClosure(directorySource(root), createTree(), 0, []);
  await assert.rejects(addPath(c2, '/usr/bin/tool', strict), /needs 'python3' \(via \/usr\/bin\/env\)/);
});

test('files inside a contents folder that name missing interpreters or libraries are warnings, not failures', async (t) => {
  const root = tempDir('mkportable-src-', t);
  mkdirSync(path.join(root, 'usr/lib/python3/cgi'), { recursive: true });
  writeFileSync(path.join(root, 'usr/lib/python3/cgi/cgi.py'), '#! /usr/local/bin/python\nprint()\n');
  symlinkSync('/nowhere/at/all', path.join(root, 'usr/lib/python3/dangling'));
  const warnings: BuildWarning[] = [];
  const tree = createTree();
  const c = createClosure(directorySource(root), tree, 0, warnings);
  assert.equal(await addPath(c, '/usr/lib/python3', strict, true), '/usr/lib/python3');
  assert.ok(tree.entries.has('/usr/lib/python3/cgi/cgi.py'));
  assert.equal(tree.entries.get('/usr/lib/python3/dangling')?.type, 'symlink');
  assert.equal(warnings.length, 2, JSON.stringify(warnings));
  assert.match(warnings[0].message, /cgi\.py needs its interpreter \/usr\/local\/bin\/python/);
  assert.match(warnings[1].message, /dangling: symlink to '\/nowhere\/at\/all'/);
});
