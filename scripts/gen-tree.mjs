#!/usr/bin/env node
// A deterministic tree of the shape of /usr/share, for benchmarks that compare across machines:
//   node scripts/gen-tree.mjs DIR [--files N] [--max-size BYTES] [--seed S]
// Many small files (most under 4 KiB), some medium and a few large ones (--max-size caps them all: a tree of a
// million tiny files for measuring memory per entry); text that compresses about like
// documentation, some binary-looking data, some incompressible (like .gz and .png), a few duplicates and symlinks,
// spread over nested folders. The same arguments give the same bytes.
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  options: { files: { type: 'string' }, 'max-size': { type: 'string' }, seed: { type: 'string' } },
  allowPositionals: true,
});
const root = positionals[0];
if (!root) {
  console.error('usage: gen-tree.mjs DIR [--files N] [--max-size BYTES] [--seed S]');
  process.exit(2);
}
const files = Number(values.files ?? 30000);
const maxSize = Number(values['max-size'] ?? 8 << 20);
let s = Number(values.seed ?? 1) >>> 0 || 1;
/** xorshift32 */
const rand = () => {
  s ^= s << 13;
  s ^= s >>> 17;
  s ^= s << 5;
  return (s >>> 0) / 4294967296;
};

// Corpora to cut files from: text from a vocabulary, "binary" (structured, repetitive), noise.
const words = 'the of and to in is that for on with as by this be are from at or an it not which have config value name file path data system user service default option error return type string list set get use when'.split(' ');
const corpus = (n, gen) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; ) i += gen(b, i);
  return b;
};
const TEXT = corpus(4 << 20, (b, i) => {
  const w = words[Math.floor(rand() * words.length)] + (rand() < 0.1 ? '\n' : ' ');
  return b.write(w, i);
});
const BIN = corpus(4 << 20, (b, i) => {
  const run = 1 + Math.floor(rand() * 16);
  const v = Math.floor(rand() * 256);
  for (let k = 0; k < run && i + k < b.length; k++) b[i + k] = rand() < 0.7 ? v : Math.floor(rand() * 256);
  return run;
});
const NOISE = corpus(4 << 20, (b, i) => {
  b[i] = Math.floor(rand() * 256);
  return 1;
});

/** About /usr/share's: three in four under 4 KiB, a mean of about 12 KiB; none over --max-size. */
const sizeOf = () => Math.min(maxSize, shapedSize());
function shapedSize() {
  const r = rand();
  if (r < 0.75) return Math.floor(rand() * 4096);
  if (r < 0.97) return 4096 + Math.floor(rand() * 28672);
  if (r < 0.999) return 32768 + Math.floor(rand() * 229376);
  return (1 << 20) + Math.floor(rand() * 3 * (1 << 20));
}

function contentOf(size) {
  const r = rand();
  const src = r < 0.7 ? TEXT : r < 0.9 ? BIN : NOISE;
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; ) {
    const n = Math.min(size - at, 512 + Math.floor(rand() * 8192));
    const from = Math.floor(rand() * (src.length - n));
    src.copy(out, at, from, from + n);
    at += n;
  }
  return out;
}

// Folders: a few levels, ~12 files each on average.
const dirs = [''];
const dirCount = Math.max(1, Math.floor(files / 12));
for (let i = 1; i < dirCount; i++) {
  const parent = dirs[Math.floor(rand() * dirs.length)];
  const depth = parent.split('/').length;
  dirs.push(depth > 6 ? `d${i}` : `${parent}${parent ? '/' : ''}d${i}`);
}
if (!existsSync(root)) mkdirSync(root, { recursive: true });
for (const d of dirs) mkdirSync(path.join(root, d), { recursive: true });

let bytes = 0;
const made = [];
for (let i = 0; i < files; i++) {
  const dir = dirs[Math.floor(rand() * dirs.length)];
  const name = path.join(root, dir, `f${i}${['.txt', '.conf', '.html', '.png', '.gz', '', '.json'][Math.floor(rand() * 7)]}`);
  const r = rand();
  if (r < 0.03 && made.length) {
    symlinkSync(path.relative(path.dirname(name), made[Math.floor(rand() * made.length)]), name);
    continue;
  }
  const data = r < 0.08 && made.length ? null : contentOf(sizeOf());
  if (data) {
    writeFileSync(name, data);
    bytes += data.length;
    made.push(name);
  } else {
    // A duplicate of an earlier file: same bytes under another name.
    const copy = readFileSync(made[Math.floor(rand() * made.length)]);
    writeFileSync(name, copy);
    bytes += copy.length;
  }
}
console.log(JSON.stringify({ root, files, dirs: dirs.length, bytes }));
