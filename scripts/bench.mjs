#!/usr/bin/env node
// npm run bench [-- DIR] — the native writer vs mksquashfs on the same tree, same compression and block size,
// run alternately in one invocation. Prints wall time, CPU time, peak RSS and image size as ratios
// (native / mksquashfs; below 1.0 means the native writer wins). The figures only count when the two images
// hold the same tree: each pair is compared with sqfsdiff -T (entries, contents, owners, modes, times, link
// targets, device numbers), and the benchmark exits 1 when any pair differs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dir = process.argv[2] ?? '/usr/bin';
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const configs = [
  { label: 'xz -Xdict-size 100%, 1M', comp: 'xz -Xdict-size 100%', block: '1M' },
  { label: 'gzip, 128K', comp: 'gzip', block: '128K' },
  { label: 'zstd -Xcompression-level 15, 1M', comp: 'zstd -Xcompression-level 15', block: '1M' },
];
const only = process.env.BENCH_ONLY;
const repo = path.resolve(new URL('..', import.meta.url).pathname);
const cli = path.join(repo, 'bin', 'mkportable.js');
const work = mkdtempSync(path.join(os.tmpdir(), 'mkportable-bench-'));
const failures = [];

// Children's rusage (CPU and peak RSS) needs wait4(); python's resource module reads it for us.
const MEASURE = `
import resource, subprocess, sys, time, json
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.monotonic() - t
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": r.returncode, "wall": wall, "cpu": u.ru_utime + u.ru_stime, "rss": u.ru_maxrss * 1024, "err": r.stderr.decode()[-500:]}))
`;

function measure(argv) {
  const r = spawnSync('python3', ['-c', MEASURE, ...argv], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`measure failed: ${r.stderr}`);
  const m = JSON.parse(r.stdout);
  if (m.code !== 0) throw new Error(`${argv.join(' ')} failed: ${m.err}`);
  return m;
}

/** sqfsdiff's verdict on two images; a difference or a sqfsdiff failure is a message, equal is undefined. */
function differences(peerImage, nativeImage) {
  const d = spawnSync('sqfsdiff', ['-T', '-a', peerImage, '-b', nativeImage], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (d.error) return `sqfsdiff could not run (${d.error.message}); install squashfs-tools-ng`;
  if (d.status === 0) return undefined;
  return `sqfsdiff -T exited ${d.status}:\n${(d.stdout + d.stderr).slice(0, 4000)}`;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => x.toFixed(2);
const mb = (x) => (x / 1048576).toFixed(1);

console.log(`tree: ${dir}   rounds: ${rounds}   cores: ${os.availableParallelism()}`);
const spawnCheck = spawnSync('mksquashfs', ['-version'], { encoding: 'utf8' });
console.log(`peer: ${spawnCheck.stdout.split('\n')[0]}`);
for (const c of configs) {
  if (only && !c.label.startsWith(only)) continue;
  const native = [];
  const peer = [];
  for (let i = 0; i < rounds; i++) {
    const a = path.join(work, 'native.raw');
    const b = path.join(work, 'mksquashfs.raw');
    rmSync(a, { force: true });
    rmSync(b, { force: true });
    // Alternate which one goes first so caches and turbo favour neither.
    const runNative = () => native.push({ ...measure([process.execPath, cli, 'pack', dir, a, '--squash-compression', c.comp, '--squash-block-size', c.block]), size: 0, file: a });
    const runPeer = () => peer.push({ ...measure(['mksquashfs', dir, b, '-noappend', '-quiet', '-no-progress', '-no-xattrs', '-comp', ...c.comp.split(' '), '-b', c.block]), size: 0, file: b });
    if (i % 2 === 0) { runNative(); runPeer(); } else { runPeer(); runNative(); }
    native[i].size = statSync(a).size;
    peer[i].size = statSync(b).size;
    const diff = differences(b, a);
    if (diff) failures.push(`${c.label}, round ${i + 1}: the images differ; ${diff}`);
  }
  const row = (k) => [median(native.map((x) => x[k])), median(peer.map((x) => x[k]))];
  const [nw, pw] = row('wall');
  const [nc, pc] = row('cpu');
  const [nr, pr] = row('rss');
  const [ns, ps] = row('size');
  console.log(`\n${c.label}`);
  console.log(`  wall   native ${fmt(nw)} s   mksquashfs ${fmt(pw)} s   ratio ${fmt(nw / pw)}`);
  console.log(`  cpu    native ${fmt(nc)} s   mksquashfs ${fmt(pc)} s   ratio ${fmt(nc / pc)}`);
  console.log(`  rss    native ${mb(nr)} MiB   mksquashfs ${mb(pr)} MiB   ratio ${fmt(nr / pr)}`);
  console.log(`  size   native ${mb(ns)} MiB   mksquashfs ${mb(ps)} MiB   ratio ${(ns / ps).toFixed(3)}`);
  console.log(`  same tree (sqfsdiff -T): ${failures.some((f) => f.startsWith(`${c.label},`)) ? 'NO' : `yes, all ${rounds} rounds`}`);
}
rmSync(work, { recursive: true, force: true });
if (failures.length) {
  console.error(`\nbenchmark invalid: the images are not equivalent\n${failures.join('\n')}`);
  process.exit(1);
}

// --- verity and DDI overhead (issue 12): its own script, run after the writer comparison ---
if (!only || only === 'verity') {
  const v = spawnSync(process.execPath, [path.join(repo, 'scripts', 'bench-verity.mjs'), ...(process.env.BENCH_VERITY_DIR ? [process.env.BENCH_VERITY_DIR] : [])], { stdio: 'inherit' });
  if (v.status !== 0) process.exitCode = v.status ?? 1;
}
// --- end verity and DDI overhead ---
