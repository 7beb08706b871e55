import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectArchitecture } from './architecture.js';
import { canonicalArchitecture } from '../formats/dps.js';
import { createTree } from '../plan/tree.js';
import { addEntry } from '../plan/add.js';
import { hostArchitecture } from '../formats/dps.js';
import type { BuildWarning } from '../errors.js';

/** The first 20 bytes of an ELF file: magic, class, byte order, type, machine. */
function elf(machine: number, cls: 1 | 2 = 2, be = false): Uint8Array {
  const h = new Uint8Array(64);
  h.set([0x7f, 0x45, 0x4c, 0x46, cls, be ? 2 : 1, 1], 0);
  new DataView(h.buffer).setUint16(16, 2, !be);
  new DataView(h.buffer).setUint16(18, machine, !be);
  return h;
}

function treeOf(files: [string, Uint8Array, number][]) {
  const tree = createTree();
  addEntry(tree, '/', { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0, reason: 'root', origin: 'generated' });
  for (const [p, data, mode] of files) {
    addEntry(tree, p, { type: 'file', mode, uid: 0, gid: 0, mtime: 0, reason: 'test', origin: 'generated', size: data.length, content: { kind: 'bytes', data } });
  }
  return tree;
}

test('the architecture is the ELF machine of the executables, the majority winning, with a warning when mixed', async () => {
  const warnings: BuildWarning[] = [];
  const tree = treeOf([
    ['/usr/bin/a', elf(183), 0o755], ['/usr/bin/b', elf(183), 0o755], ['/usr/bin/c', elf(62), 0o755],
    // Libraries without the x bit count only when no executable is an ELF file.
    ['/usr/lib/l1.so', elf(62), 0o644], ['/usr/lib/l2.so', elf(62), 0o644], ['/usr/lib/l3.so', elf(62), 0o644],
    ['/etc/text', Buffer.from('not an elf file at all'), 0o644],
  ]);
  assert.equal(await detectArchitecture(tree, warnings), 'arm64');
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].code, 'ARCHITECTURE_MIXED');
  assert.match(warnings[0].message, /arm64: 2, x86-64: 1/);
});

test('no executable ELF: libraries decide; no ELF at all: the build host; an unknown machine is an error', async () => {
  assert.equal(await detectArchitecture(treeOf([['/usr/lib/x.so', elf(243), 0o644]]), []), 'riscv64');
  assert.equal(await detectArchitecture(treeOf([['/usr/bin/s', Buffer.from('#!/bin/sh\necho hi\n'), 0o755]]), []), hostArchitecture());
  await assert.rejects(detectArchitecture(treeOf([['/usr/bin/x', elf(2, 1, true), 0o755]]), []), /machine 2, which has no DPS partition type; set 'architecture'/);
});

test('architecture names: systemd\'s and the usual aliases', () => {
  assert.equal(canonicalArchitecture('x86-64'), 'x86-64');
  assert.equal(canonicalArchitecture('amd64'), 'x86-64');
  assert.equal(canonicalArchitecture('aarch64'), 'arm64');
  assert.equal(canonicalArchitecture('ppc64el'), 'ppc64-le');
  assert.equal(canonicalArchitecture('sparc'), undefined);
});
