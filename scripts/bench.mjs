#!/usr/bin/env node
// npm run bench — mkportable against its peers on the same trees, same compression and block size, run in turn
// (the order alternates every round), each figure the median of BENCH_ROUNDS (default 3) rounds:
//
//   pack       `mkportable pack DIR IMG` vs `mksquashfs DIR IMG` (and `gensquashfs -D DIR -j N` where it runs) on a
//              many-small-files tree (generated, the shape of /usr/share; or BENCH_SMALL=DIR), a large tree
//              (BENCH_LARGE, default /usr/lib/x86_64-linux-gnu) and, for xz 1M, a language runtime (BENCH_XZ,
//              default /usr/lib/python3.11); gzip rows also run mkportable with MKPORTABLE_GZIP=system (the system
//              zlib: the sizes of mksquashfs, at its speed). The native writer starts from an empty block cache each round: the
//              cost of filling it is counted, the gain of a warm one is not.
//   cache cost pack of the small tree with lz4: an empty block cache, none (--no-cache), and a warm one.
//   build      `mkportable build` end to end vs the seed's pipeline: copy the closure into a folder, then mksquashfs
//              it (nixpkgs portableService does the same), for a service whose closure is about 250 MB.
//   rebuild    that build again after changing one file, with the cache of the first: the time against the cold
//              build's, and the image against a cold build of the changed tree (must be byte-identical).
//   memory     peak RSS of pack on generated trees of 100k and 1M files of at most 1 KiB (BENCH_HUGE=1; slow):
//              the growth in bytes per file.
//
// BENCH_QUICK=1: one round, a 5000-file generated tree, /usr/lib/python3.11 as the large tree, no verity rows: a
// smoke run of every row in a few minutes (its figures are not the ones to quote). BENCH_VERITY=0 skips the
// verity/DDI overhead rows (scripts/bench-verity.mjs) that otherwise run last.
//
// Prints wall time, CPU time, peak RSS and image size, and ratios (mkportable / peer; below 1.0 the native writer
// wins). The figures only count when the images hold the same tree: each pack pair is compared with sqfsdiff -T,
// each build pair with sqfsdiff; any difference makes the benchmark exit 1. BENCH_ONLY=substring[,substring…] picks
// rows (e.g. 'pack large,rebuild').
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { measure } from './measure.mjs';

const quick = process.env.BENCH_QUICK === '1';
const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 1 : 3));
const only = process.env.BENCH_ONLY;
const repo = path.resolve(new URL('..', import.meta.url).pathname);
const cli = path.join(repo, 'bin', 'mkportable.js');
const work = mkdtempSync(path.join(os.tmpdir(), 'mkportable-bench-'));
const failures = [];
const cores = os.availableParallelism();

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr?.slice(-800)}`);
  return r.stdout;
}

/** sqfsdiff's verdict on two images; a difference or a sqfsdiff failure is a message, equal is undefined. */
function differences(peerImage, nativeImage, times = true) {
  const d = spawnSync('sqfsdiff', [...(times ? ['-T'] : []), '-a', peerImage, '-b', nativeImage], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (d.error) return `sqfsdiff could not run (${d.error.message}); install squashfs-tools-ng`;
  if (d.status === 0) return undefined;
  return `sqfsdiff${times ? ' -T' : ''} exited ${d.status}:\n${(d.stdout + d.stderr).slice(0, 4000)}`;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => x.toFixed(2);
const mib = (x) => (x / 1048576).toFixed(1);
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const pick = (label) => !only || only.split(',').some((o) => label.includes(o));
const report = [];
const say = (line = '') => {
  console.log(line);
  report.push(line);
};

/** A fresh, empty block cache for one run: what a first build pays. */
function freshCache() {
  const dir = mkdtempSync(path.join(work, 'xdg-'));
  return { ...process.env, XDG_CACHE_HOME: dir, SOURCE_DATE_EPOCH: '0' };
}

/**
 * Run the contenders of one row in turn, `rounds` times, alternating the order; returns medians. Each contender is
 * { name, argv(out), env?(), keepCache? }; the first is mkportable. A fresh cache folder (env().XDG_CACHE_HOME under the
 * bench's folder) is removed after each run unless keepCache.
 */
function contest(label, contenders, check) {
  const results = contenders.map(() => []);
  for (let i = 0; i < rounds; i++) {
    const order = contenders.map((_, k) => k);
    if (i % 2 === 1) order.reverse();
    const outs = [];
    for (const k of order) {
      const c = contenders[k];
      const out = path.join(work, `out-${k}.raw`);
      rmSync(out, { force: true });
      const env = c.env ? c.env() : process.env;
      const m = measure(c.argv(out), env);
      m.size = statSync(out).size;
      results[k].push(m);
      outs[k] = out;
      if (!c.keepCache && env !== process.env && env.XDG_CACHE_HOME?.startsWith(work)) rmSync(env.XDG_CACHE_HOME, { recursive: true, force: true });
    }
    const diff = check?.(outs);
    if (diff) failures.push(`${label}, round ${i + 1}: ${diff}`);
  }
  const med = (k, key) => median(results[k].map((x) => x[key]));
  say(`\n${label}`);
  for (let k = 0; k < contenders.length; k++) {
    const ratio = (key) => (k === 0 ? '' : `   (mkportable / ${contenders[k].name}: ${fmt(med(0, key) / med(k, key))})`);
    say(`  ${contenders[k].name.padEnd(12)} wall ${fmt(med(k, 'wall')).padStart(7)} s${ratio('wall')}`);
    say(`  ${''.padEnd(12)} cpu  ${fmt(med(k, 'cpu')).padStart(7)} s${ratio('cpu')}`);
    say(`  ${''.padEnd(12)} rss  ${mib(med(k, 'rss')).padStart(7)} MiB${ratio('rss')}`);
    if (contenders[k].sized !== false) say(`  ${''.padEnd(12)} size ${mib(med(k, 'size')).padStart(7)} MiB${k === 0 ? '' : `   (mkportable / ${contenders[k].name}: ${(med(0, 'size') / med(k, 'size')).toFixed(4)})`}`);
  }
  return { med, results };
}

// ------------------------------------------------------------------------------------------------------------
// Trees.

function generatedTree(name, files, extra = []) {
  const dir = path.join(work, name);
  const info = JSON.parse(run(process.execPath, [path.join(repo, 'scripts', 'gen-tree.mjs'), dir, '--files', String(files), ...extra]));
  return { dir, label: `generated ${files} files, ${mib(info.bytes)} MiB`, files };
}

const small = process.env.BENCH_SMALL ? { dir: process.env.BENCH_SMALL, label: process.env.BENCH_SMALL } : null;
const large = process.env.BENCH_LARGE ?? (quick ? '/usr/lib/python3.11' : '/usr/lib/x86_64-linux-gnu');
const xzTree = process.env.BENCH_XZ ?? '/usr/lib/python3.11';
const mksquashfsVersion = run('mksquashfs', ['-version']).split('\n')[0];
const gensquashfs = has('gensquashfs') ? run('gensquashfs', ['--version']).split('\n')[0] : null;

say(`mkportable benchmark: ${new Date().toISOString()}`);
say(`machine: ${os.cpus()[0]?.model ?? '?'}, ${cores} cores, ${mib(os.totalmem())} MiB; node ${process.version}; load before: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
say(`peers: ${mksquashfsVersion}${gensquashfs ? `; ${gensquashfs}` : '; gensquashfs not installed'}`);
say(`rounds: ${rounds} (medians), order alternating`);

const du = (dir) => {
  let files = 0;
  let bytes = 0;
  const out = spawnSync('find', [dir, '-type', 'f', '-printf', '%s\n'], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout;
  for (const l of out.split('\n')) if (l) { files++; bytes += Number(l); }
  return `${files} files, ${mib(bytes)} MiB`;
};

const packRows = [
  { tree: 'small', comp: 'lz4', block: '128K' },
  { tree: 'small', comp: 'gzip', block: '128K' },
  { tree: 'small', comp: 'zstd', block: '128K' },
  { tree: 'large', comp: 'lz4', block: '128K' },
  { tree: 'large', comp: 'gzip', block: '128K' },
  { tree: 'large', comp: 'zstd', block: '128K' },
  { tree: 'xz', comp: 'xz -Xdict-size 100%', block: '1M' },
];

let smallTree = small;
for (const row of packRows) {
  const label0 = `pack ${row.tree}: ${row.comp}, ${row.block}`;
  if (!pick(label0)) continue;
  if (row.tree === 'small' && !smallTree) smallTree = generatedTree('small', quick ? 5000 : 30000);
  const dir = row.tree === 'small' ? smallTree.dir : row.tree === 'large' ? large : xzTree;
  if (!existsSync(dir)) {
    say(`\n${label0}: ${dir} does not exist, skipped`);
    continue;
  }
  const label = `${label0}   [${dir}: ${row.tree === 'small' && !small ? smallTree.label : du(dir)}]`;
  const words = row.comp.split(' ');
  const bytes = row.block === '1M' ? 1 << 20 : 131072;
  const contenders = [
    { name: 'mkportable', argv: (out) => [process.execPath, cli, 'pack', dir, out, '--squash-compression', row.comp, '--squash-block-size', row.block], env: freshCache },
    { name: 'mksquashfs', argv: (out) => ['mksquashfs', dir, out, '-noappend', '-quiet', '-no-progress', '-comp', ...words, '-b', row.block] },
  ];
  // The gzip engines side by side: libdeflate (the default) against the system zlib that mksquashfs links.
  if (words[0] === 'gzip') {
    contenders.push({ name: 'system zlib', argv: contenders[0].argv, env: () => ({ ...freshCache(), MKPORTABLE_GZIP: 'system' }) });
  }
  // gensquashfs takes the compressor's options its own way; it runs where it knows the compressor.
  if (gensquashfs && !words.slice(1).length) {
    contenders.push({ name: 'gensquashfs', argv: (out) => ['gensquashfs', '-D', dir, '-c', words[0], '-b', String(bytes), '-j', String(cores), '-k', '-q', '-f', out] });
  }
  contest(label, contenders, (outs) => differences(outs[1], outs[0]));
}

// ------------------------------------------------------------------------------------------------------------
// What the block cache costs and saves on the fastest compressor: pack with an empty cache (what the rows above
// count), without one, and with the cache a first pack filled. The three images must be byte-identical.

if (pick('cache cost')) {
  if (!smallTree) smallTree = generatedTree('small', quick ? 5000 : 30000);
  const warm = freshCache();
  const argv = (extra) => (out) => [process.execPath, cli, 'pack', smallTree.dir, out, '--squash-compression', 'lz4', '--squash-block-size', '128K', ...extra];
  measure(argv([])(path.join(work, 'fill.raw')), warm);
  const sha = (f) => run('sha256sum', [f]).split(' ')[0];
  contest(`cache cost: pack small, lz4, 128K   [${smallTree.label}]`, [
    { name: 'cold cache', argv: argv([]), env: freshCache },
    { name: 'no cache', argv: argv(['--no-cache']), env: () => ({ ...process.env, SOURCE_DATE_EPOCH: '0' }) },
    { name: 'warm cache', argv: argv([]), env: () => warm, keepCache: true },
  ], (outs) => (new Set(outs.map(sha)).size === 1 ? undefined : 'the images differ with and without the cache'));
  rmSync(warm.XDG_CACHE_HOME, { recursive: true, force: true });
}

// ------------------------------------------------------------------------------------------------------------
// build end to end, and the rebuild with the cache.

function buildFixture() {
  // A service whose closure is about 250 MB: python3 and its standard library from the host, and an application
  // folder of our own (so that one of its files can change) holding real files from the host.
  const dir = path.join(work, 'build');
  const app = path.join(dir, 'app');
  mkdirSync(app, { recursive: true });
  for (const src of ['/usr/lib/python3.11', '/usr/share/perl', '/usr/lib/x86_64-linux-gnu/perl', '/usr/share/vim', '/usr/lib/gcc']) {
    if (existsSync(src)) cpSync(src, path.join(app, src.replaceAll('/', '_')), { recursive: true, verbatimSymlinks: true, errorOnExist: false, force: true });
  }
  writeFileSync(path.join(dir, 'bench.service'), '[Service]\nExecStart=/usr/bin/python3 -m http.server 8080\n');
  const config = { pname: 'bench', version: '1', units: ['bench.service'], contents: [app], outDir: path.join(dir, 'result') };
  writeFileSync(path.join(dir, 'portable.config.json'), JSON.stringify(config));
  return { dir, app, image: path.join(dir, 'result', 'bench_1.raw') };
}

/** The seed's pipeline: copy the closure mkportable found into a folder, then mksquashfs it, in one timed script. */
function seedScript(result, stage, out) {
  const script = path.join(work, 'seed.sh');
  const list = path.join(work, 'closure.list');
  const hostFiles = result.files.filter((f) => f.origin.startsWith('host:') && f.type !== 'dir').map((f) => f.path.slice(1));
  writeFileSync(list, hostFiles.join('\n') + '\n');
  writeFileSync(script, [
    'set -e',
    `rm -rf ${stage}.copy && cp -a ${stage} ${stage}.copy`,
    `tar -C / --no-recursion -cf - -T ${list} | tar -C ${stage}.copy -xf -`,
    `mksquashfs ${stage}.copy ${out} -noappend -quiet -no-progress -all-root -comp xz -Xdict-size 100% -b 1M`,
    `rm -rf ${stage}.copy`,
  ].join('\n'));
  return script;
}

const wantBuild = pick('build end to end');
const wantRebuild = pick('rebuild');
if (wantBuild || wantRebuild) {
  const f = buildFixture();
  /** `mkportable build` writing its BuildResult to outDir/result.json; returns the command. */
  const buildArgs = (outDir) => ['sh', '-c', `mkdir -p '${outDir}' && '${process.execPath}' '${cli}' build '${f.dir}' --out '${outDir}' --json > '${outDir}/result.json'`];
  const resultOf = (outDir) => JSON.parse(readFileSync(path.join(outDir, 'result.json'), 'utf8'));
  // What the seed's pipeline starts from: the generated files (units, os-release, skeleton) staged once, untimed.
  measure(buildArgs(path.join(work, 'probe')), freshCache());
  const result = resultOf(path.join(work, 'probe'));
  const stage = path.join(work, 'stage');
  mkdirSync(stage, { recursive: true });
  for (const e of result.files) {
    const p = path.join(stage, e.path);
    if (e.type === 'dir') {
      mkdirSync(p, { recursive: true });
      chmodSync(p, parseInt(e.mode, 8));
    } else if (!e.origin.startsWith('host:')) {
      mkdirSync(path.dirname(p), { recursive: true });
      if (e.type === 'symlink') spawnSync('ln', ['-sfn', e.target, p]);
      else if (e.type === 'file') {
        writeFileSync(p, spawnSync(process.execPath, [cli, 'cat', result.image, e.path]).stdout);
        chmodSync(p, parseInt(e.mode, 8));
      }
    }
  }
  const closureBytes = result.files.reduce((n, e) => n + (e.size ?? 0), 0);
  const label = `build end to end: xz -Xdict-size 100%, 1M   [closure of ${result.files.length} entries, ${mib(closureBytes)} MiB]`;
  if (wantBuild) contest(label, [
    {
      name: 'mkportable', sized: true,
      argv: (out) => ['sh', '-c', `${buildArgs(path.join(work, 'res'))[2]} && mv '${path.join(work, 'res', 'bench_1.raw')}' '${out}'`],
      env: freshCache,
    },
    { name: 'seed', argv: (out) => ['sh', seedScript(result, stage, out)] },
  ], (outs) => differences(outs[1], outs[0], false));

  // Rebuild after changing one file: cold build (fresh cache), change, rebuild with that cache; the rebuilt image
  // against a cold build of the changed tree.
  if (wantRebuild) {
    const coldTimes = [];
    const warmTimes = [];
    const target = path.join(f.app, '_usr_lib_python3.11', 'this.py');
    const original = readFileSync(target);
    for (let i = 0; i < rounds; i++) {
      writeFileSync(target, original);
      const env = freshCache();
      const cold = measure(buildArgs(path.join(work, 'cold')), env);
      appendFileSync(target, `\n# change ${i}\n`);
      const warm = measure(buildArgs(path.join(work, 'warm')), env);
      const checkEnv = freshCache();
      measure(buildArgs(path.join(work, 'check')), checkEnv);
      rmSync(checkEnv.XDG_CACHE_HOME, { recursive: true, force: true });
      const a = resultOf(path.join(work, 'warm'));
      const b = resultOf(path.join(work, 'check'));
      if (a.sha256 !== b.sha256) failures.push(`rebuild round ${i + 1}: the rebuilt image is not byte-identical to a cold build of the changed tree`);
      coldTimes.push(cold.wall);
      warmTimes.push(warm.wall);
      rmSync(env.XDG_CACHE_HOME, { recursive: true, force: true });
      if (i === 0) say(`\nrebuild after changing one file (${path.relative(f.app, target)}), cache of the cold build: hits ${a.cache?.hits}, misses ${a.cache?.misses}`);
    }
    writeFileSync(target, original);
    const c = median(coldTimes);
    const w = median(warmTimes);
    say(`  cold build ${fmt(c)} s   rebuild ${fmt(w)} s   rebuild / cold ${fmt(w / c)}   byte-identical to a cold build: ${failures.some((x) => x.startsWith('rebuild')) ? 'NO' : 'yes'}`);
  }
}

// ------------------------------------------------------------------------------------------------------------
// Memory per file on trees of 100k and 1M files.

if (process.env.BENCH_HUGE === '1' && pick('memory')) {
  say('\nmemory per file (pack, lz4 128K, generated trees of small files)');
  const rss = [];
  for (const files of [100000, 1000000]) {
    const t = generatedTree(`huge-${files}`, files, ['--max-size', '1024']);
    const m = measure([process.execPath, cli, 'pack', t.dir, path.join(work, 'huge.raw'), '--squash-compression', 'lz4', '--squash-block-size', '128K', '--no-cache']);
    const p = measure(['mksquashfs', t.dir, path.join(work, 'huge-peer.raw'), '-noappend', '-quiet', '-no-progress', '-comp', 'lz4', '-b', '128K']);
    rss.push([files, m.rss]);
    say(`  ${t.label}: mkportable ${mib(m.rss)} MiB in ${fmt(m.wall)} s; mksquashfs ${mib(p.rss)} MiB in ${fmt(p.wall)} s`);
    rmSync(t.dir, { recursive: true, force: true });
  }
  say(`  growth: ${((rss[1][1] - rss[0][1]) / (rss[1][0] - rss[0][0])).toFixed(0)} bytes per file`);
}

say(`\nload after: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
if (process.env.BENCH_REPORT) writeFileSync(process.env.BENCH_REPORT, report.join('\n') + '\n');
rmSync(work, { recursive: true, force: true });
if (failures.length) {
  console.error(`\nbenchmark invalid: the images are not equivalent\n${failures.join('\n')}`);
  process.exit(1);
}

// --- verity and DDI overhead (issue 12): its own script, run after the writer comparison ---
if ((!only || only === 'verity') && !quick && process.env.BENCH_VERITY !== '0') {
  const v = spawnSync(process.execPath, [path.join(repo, 'scripts', 'bench-verity.mjs'), ...(process.env.BENCH_VERITY_DIR ? [process.env.BENCH_VERITY_DIR] : [])], { stdio: 'inherit' });
  if (v.status !== 0) process.exitCode = v.status ?? 1;
}
// --- end verity and DDI overhead ---
