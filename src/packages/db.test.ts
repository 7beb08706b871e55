import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { directorySource } from '../sources/host.js';
import { readPackageDb } from './db.js';

const made: string[] = [];
after(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tree(files: Record<string, string>, links: Record<string, string> = {}): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mkp-pkgdb-'));
  made.push(root);
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    writeFileSync(path.join(root, p), text);
  }
  for (const [p, target] of Object.entries(links)) {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    symlinkSync(target, path.join(root, p));
  }
  return root;
}

test('dpkg: owners through a merged /usr, Multi-Arch ids, folders owned by nobody, removed packages ignored', async () => {
  const status = [
    'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc\nVersion: 2.36-9\nDescription: GNU C Library\n continuation line',
    'Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2',
    'Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1',
    'Package: tzdata\nStatus: install ok installed\nArchitecture: all\nSource: tzdata (2024a-0+deb12u1)\nVersion: 2024a-0+deb12u1',
  ].join('\n\n') + '\n';
  const root = tree(
    {
      'var/lib/dpkg/status': status,
      'var/lib/dpkg/info/libc6:amd64.list': '/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libc.so.6\n',
      'var/lib/dpkg/info/bash.list': '/.\n/bin\n/bin/bash\n/usr/share/doc/bash/README\n',
      'var/lib/dpkg/info/gone.list': '/usr/bin/gone\n',
      'var/lib/dpkg/info/tzdata.list': '/usr/share/zoneinfo/UTC\n',
      'usr/lib/x86_64-linux-gnu/libc.so.6': 'elf',
      'usr/bin/bash': 'elf',
      'usr/bin/gone': 'x',
      'usr/share/zoneinfo/UTC': 'tz',
    },
    { lib: 'usr/lib', bin: 'usr/bin' },
  );
  const db = await readPackageDb(directorySource(root));
  assert.equal(db?.manager, 'dpkg');
  assert.deepEqual(db!.packages.map((p) => p.id), ['libc6:amd64', 'bash', 'tzdata']);
  assert.deepEqual(db!.packages[0], { id: 'libc6:amd64', name: 'libc6', version: '2.36-9', architecture: 'amd64', manager: 'dpkg', sourcePackage: 'glibc' });
  assert.equal(db!.packages[2].sourcePackage, undefined, 'a Source: that names the package itself is not repeated');
  assert.equal((await db!.owner('/usr/lib/x86_64-linux-gnu/libc.so.6'))?.id, 'libc6:amd64', 'listed as /lib/…, reached as /usr/lib/…');
  assert.equal((await db!.owner('/lib/x86_64-linux-gnu/libc.so.6'))?.id, 'libc6:amd64');
  assert.equal((await db!.owner('/usr/bin/bash'))?.id, 'bash');
  assert.equal((await db!.owner('/usr/share/zoneinfo/UTC'))?.id, 'tzdata');
  assert.equal(await db!.owner('/usr/bin/gone'), undefined, 'a removed package owns nothing');
  assert.equal(await db!.owner('/lib'), undefined, 'a folder is nobody\'s file');
  assert.equal(await db!.owner('/usr/bin/other'), undefined);
});

test('apk: /lib/apk/db/installed with F:/R: entries, version, architecture, license, origin', async () => {
  const installed = [
    'C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\nT:the musl c library\nL:MIT\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\nR:libc.musl-x86_64.so.1',
    'C:Q1def=\nP:busybox-binsh\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\no:busybox\nF:bin\nR:sh\nF:usr/share/doc\nR:x',
  ].join('\n\n') + '\n\n';
  const root = tree({ 'lib/apk/db/installed': installed, 'lib/ld-musl-x86_64.so.1': 'elf', 'bin/sh': 'x' });
  const db = await readPackageDb(directorySource(root));
  assert.equal(db?.manager, 'apk');
  assert.deepEqual(db!.packages, [
    { id: 'musl', name: 'musl', version: '1.2.4-r2', architecture: 'x86_64', manager: 'apk', license: 'MIT' },
    { id: 'busybox-binsh', name: 'busybox-binsh', version: '1.36.1-r15', architecture: 'x86_64', manager: 'apk', license: 'GPL-2.0-only', sourcePackage: 'busybox' },
  ]);
  assert.equal((await db!.owner('/lib/ld-musl-x86_64.so.1'))?.id, 'musl');
  assert.equal((await db!.owner('/bin/sh'))?.id, 'busybox-binsh');
  assert.equal(await db!.owner('/usr/share/doc'), undefined);
});

test('a source without a package database has none', async () => {
  assert.equal(await readPackageDb(directorySource(tree({ 'usr/bin/x': 'x' }))), undefined);
});
