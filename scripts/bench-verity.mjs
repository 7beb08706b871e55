#!/usr/bin/env node
// node scripts/bench-verity.mjs [DIR] — what dm-verity and DDIs cost (npm run bench runs it last, with
// $BENCH_VERITY_DIR): the same build (examples/demo plus DIR as contents, xz) plain, with verity sidecars, as a
// DDI and as a signed DDI, run alternately in one invocation. Prints wall time, CPU time and peak RSS as ratios
// of the plain build (target: ≤ 1.1× wall).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { measure } from './measure.mjs';

const dir = process.argv[2] ?? '/usr/lib/python3.11';
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const repo = path.resolve(new URL('..', import.meta.url).pathname);
const cli = path.join(repo, 'bin', 'mkportable.js');
const work = mkdtempSync(path.join(os.tmpdir(), 'mkportable-bench-verity-'));

const key = path.join(work, 'bench.key');
const cert = path.join(work, 'bench.crt');
const ssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', '/CN=bench'], { encoding: 'utf8' });
if (ssl.status !== 0) throw new Error(`openssl: ${ssl.stderr}`);

const variants = [
  { label: 'plain squashfs', args: [] },
  { label: 'verity sidecars', args: ['--verity'] },
  { label: 'DDI with verity', args: ['--verity', '--format', 'ddi'] },
  { label: 'signed DDI', args: ['--verity', '--format', 'ddi', '--signing-key', key, '--signing-certificate', cert] },
];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => x.toFixed(2);

console.log(`\nverity and DDI overhead: examples/demo + contents ${dir}, xz -Xdict-size 100%, 1M   rounds: ${rounds}`);
const results = variants.map(() => []);
const failures = [];
for (let i = 0; i < rounds; i++) {
  // Rotate the order so caches and turbo favour none.
  for (let k = 0; k < variants.length; k++) {
    const v = (k + i) % variants.length;
    const out = path.join(work, `out-${v}`);
    rmSync(out, { recursive: true, force: true });
    const m = measure([process.execPath, cli, 'build', path.join(repo, 'examples/demo'), '--out', out, '--contents', dir, '--no-check', ...variants[v].args]);
    const image = path.join(out, 'demo_1.0.raw');
    m.size = statSync(image).size;
    results[v].push(m);
    // A figure counts only for a good image: inspect rechecks the tree (and the signature) block by block.
    const check = spawnSync(process.execPath, [cli, 'inspect', image, '--json', ...(variants[v].args.includes('--signing-key') ? ['--certificate', cert] : [])], { encoding: 'utf8' });
    const report = check.status === 0 ? JSON.parse(check.stdout) : undefined;
    const wantVerity = variants[v].args.includes('--verity');
    if (!report || (wantVerity && report.image?.treeValid !== true)) failures.push(`${variants[v].label}, round ${i + 1}: inspect says ${check.stdout.slice(0, 300)}${check.stderr}`);
  }
}
const base = { wall: median(results[0].map((m) => m.wall)), cpu: median(results[0].map((m) => m.cpu)), rss: median(results[0].map((m) => m.rss)), size: median(results[0].map((m) => m.size)) };
console.log(`  ${'variant'.padEnd(18)} ${'wall s'.padStart(8)} ${'ratio'.padStart(6)} ${'cpu s'.padStart(8)} ${'ratio'.padStart(6)} ${'rss MiB'.padStart(8)} ${'ratio'.padStart(6)} ${'size MiB'.padStart(9)}`);
variants.forEach((v, k) => {
  const w = median(results[k].map((m) => m.wall));
  const c = median(results[k].map((m) => m.cpu));
  const r = median(results[k].map((m) => m.rss));
  const s = median(results[k].map((m) => m.size));
  console.log(`  ${v.label.padEnd(18)} ${fmt(w).padStart(8)} ${fmt(w / base.wall).padStart(6)} ${fmt(c).padStart(8)} ${fmt(c / base.cpu).padStart(6)} ${(r / 1048576).toFixed(1).padStart(8)} ${fmt(r / base.rss).padStart(6)} ${(s / 1048576).toFixed(1).padStart(9)}`);
});
rmSync(work, { recursive: true, force: true });
console.log(`  images checked (mkportable inspect: tree matches, signature valid): ${failures.length ? 'NO' : `yes, all ${rounds} rounds`}`);
if (failures.length) {
  console.error(`\nbenchmark invalid: bad images\n${failures.join('\n')}`);
  process.exit(1);
}
