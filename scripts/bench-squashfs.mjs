#!/usr/bin/env node
// Wall time and size of the native squashfs writer against mksquashfs on a host directory.
//   npm run build && node scripts/bench-squashfs.mjs [DIR=/usr/bin] [COMP=gzip] [BLOCK=131072] [ROUNDS=3]
// Uses dist/ (the compiled path users run). The tree keeps the directory's owners and times, as mksquashfs does,
// so sqfsdiff -T compares everything but xattrs; every round's pair must be equal, or the run exits 1.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSquashfs } from '../dist/src/squashfs/write.js';
import { planFromSource } from '../dist/src/plan/from-source.js';
import { directorySource } from '../dist/src/sources/host.js';

const [dir = '/usr/bin', comp = 'gzip', block = '131072', rounds = '3'] = process.argv.slice(2);
const blockSize = Number(block);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-squashfs-'));
const ours = path.join(tmp, 'native.sqfs');
const theirs = path.join(tmp, 'mksquashfs.sqfs');
const ms = (t0) => (performance.now() - t0).toFixed(0);

try {
  for (let r = 0; r < Number(rounds); r++) {
    const t0 = performance.now();
    const tree = await planFromSource(directorySource(dir), '/', {});
    const planned = ms(t0);
    await writeSquashfs(tree, ours, { compressor: { name: comp, blockSize }, mtime: 1_700_000_000 });
    const native = ms(t0);

    const t1 = performance.now();
    const m = spawnSync('mksquashfs', [dir, theirs, '-comp', comp, '-b', String(blockSize), '-noappend', '-quiet', '-no-progress']);
    if (m.status !== 0) throw new Error(`mksquashfs: ${m.stderr}`);
    const mk = ms(t1);
    console.log(`round ${r + 1}: native ${native} ms (plan ${planned} ms), ${statSync(ours).size} bytes | mksquashfs ${mk} ms, ${statSync(theirs).size} bytes`);
    const d = spawnSync('sqfsdiff', ['-T', '-a', theirs, '-b', ours], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (d.error) throw new Error(`sqfsdiff could not run (${d.error.message}); install squashfs-tools-ng`);
    console.log(`  sqfsdiff -T: ${d.status === 0 ? 'no differences' : `exit ${d.status}\n${d.stdout}${d.stderr}`}`);
    if (d.status !== 0) process.exitCode = 1;
  }
  console.log(`cores: ${os.availableParallelism()}, load: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
