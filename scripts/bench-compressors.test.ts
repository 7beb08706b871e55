/**
 * Compressor throughput benchmark (not part of npm test; it takes a minute or more):
 *
 *   node --import tsx --test scripts/bench-compressors.test.ts
 *
 * Cuts the regular files of MKPORTABLE_BENCH_DIR (default /usr/bin, the first MKPORTABLE_BENCH_MB MiB in name
 * order, default 64) into 1 MiB blocks, compresses them on this thread with each compressor, and prints MB/s of
 * CPU time next to the C tool's on the same bytes (xz, gzip, zstd, lz4). Every row also proves its output: each
 * block decompresses back to its input with our decompressor, and the C tool decodes all our blocks to the same
 * bytes (Python's zlib for gzip's zlib streams; lz4's raw blocks wrapped in a frame). For xz, whose tool is run as
 * mksquashfs drives liblzma (--block-size=1MiB: independent 1 MiB blocks, preset 6, CRC32, 1 MiB dictionary), it
 * fails when ours is more than twice as slow.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createCompressor, parseCompression } from '../src/compress/registry.js';
import { lz4Frame } from '../test/support/compress-data.js';

const BLOCK = 1 << 20;

function corpus(): Uint8Array[] {
  const dir = process.env.MKPORTABLE_BENCH_DIR ?? '/usr/bin';
  const cap = Number(process.env.MKPORTABLE_BENCH_MB ?? 64) * BLOCK;
  const blocks: Uint8Array[] = [];
  let total = 0;
  for (const name of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    const st = fs.lstatSync(p);
    if (!st.isFile() || total + st.size > cap) continue;
    const data = fs.readFileSync(p);
    total += data.length;
    for (let i = 0; i < data.length; i += BLOCK) blocks.push(data.subarray(i, i + BLOCK));
  }
  return blocks;
}

function cpuSeconds(fn: () => void): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

/** CPU seconds the children of one shell command used (the shell's `times` builtin). */
function childCpuSeconds(command: string): number {
  const r = spawnSync('sh', ['-c', `${command} >/dev/null; times`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const children = r.stdout.trim().split('\n').pop()!;
  return children
    .split(/\s+/)
    .map((t) => /^(\d+)m([\d.]+)s$/.exec(t)!)
    .reduce((s, m) => s + Number(m[1]) * 60 + Number(m[2]), 0);
}

/** How the C tool decodes a concatenation of our compressed blocks, and how it compresses the same bytes. */
const TOOLS: Record<string, { decode: (file: string) => string; encode: (file: string) => string; wrap?: (blocks: Uint8Array[]) => Uint8Array }> = {
  xz: { decode: (f) => `xz -dc '${f}'`, encode: (f) => `xz -6 --check=crc32 --lzma2=preset=6,dict=1MiB --block-size=1MiB -T1 -c '${f}'` },
  // squashfs's gzip blocks are zlib streams: Python's zlib (the C library) decodes them one after another.
  gzip: {
    decode: (f) => `python3 -c 'import sys, zlib
data = open(sys.argv[1], "rb").read()
while data:
    d = zlib.decompressobj()
    sys.stdout.buffer.write(d.decompress(data))
    data = d.unused_data' '${f}'`,
    encode: (f) => `gzip -9 -c '${f}'`,
  },
  zstd: { decode: (f) => `zstd -dc '${f}'`, encode: (f) => `zstd -15 -T1 -c '${f}'` },
  lz4: { decode: (f) => `lz4 -dc '${f}'`, encode: (f) => `lz4 -1 -c '${f}'`, wrap: (blocks) => lz4Frame(blocks) },
  'lz4 -Xhc': { decode: (f) => `lz4 -dc '${f}'`, encode: (f) => `lz4 -9 -c '${f}'`, wrap: (blocks) => lz4Frame(blocks) },
};

describe('compressor throughput, with outputs checked by our decompressor and by the C tools', () => {
  const blocks = corpus();
  const bytes = blocks.reduce((n, b) => n + b.length, 0);
  const mbs = (s: number) => (bytes / 1e6 / s).toFixed(2);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mkportable-bench-'));
  const input = path.join(work, 'corpus');
  // The same bytes back to back (the tools cut them into blocks again; the files' last blocks merge: same bytes).
  fs.writeFileSync(input, Buffer.concat(blocks));
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  for (const words of [['xz'], ['gzip'], ['zstd'], ['lz4'], ['lz4', '-Xhc']]) {
    const label = words.join(' ');
    it(`${label}: round trip, ${words[0]} tool decodes ours, speed against the ${words[0]} tool`, () => {
      assert.ok(blocks.length > 0, 'no input blocks');
      const c = createCompressor(parseCompression(words, BLOCK));
      const packed: (Uint8Array | null)[] = [];
      const s = cpuSeconds(() => {
        for (const b of blocks) packed.push(c.compressSync(b));
      });
      const out = packed.reduce((n, p, i) => n + (p ?? blocks[i]).length, 0);
      console.log(`${label}: ${blocks.length} blocks, ${bytes} -> ${out} bytes, ${s.toFixed(2)} s CPU, ${mbs(s)} MB/s`);

      // Our decompressor gives every block back.
      const kept = packed.flatMap((p, i) => (p ? [i] : []));
      assert.ok(kept.length >= blocks.length / 2, `only ${kept.length} of ${blocks.length} blocks compressed`);
      for (const i of kept) assert.ok(Buffer.from(c.decompressSync(packed[i]!, BLOCK)).equals(blocks[i]), `${label}: block ${i} round trip`);

      // The C tool decodes all our compressed blocks to the same bytes.
      const tool = TOOLS[label];
      const ours = path.join(work, `ours-${words.join('')}`);
      const ourBlocks = kept.map((i) => packed[i]!);
      fs.writeFileSync(ours, tool.wrap ? tool.wrap(ourBlocks) : Buffer.concat(ourBlocks));
      const decoded = spawnSync('sh', ['-c', tool.decode(ours)], { maxBuffer: 1 << 30 });
      assert.equal(decoded.status, 0, `${label}: ${decoded.stderr}`);
      assert.ok(Buffer.concat(kept.map((i) => blocks[i])).equals(decoded.stdout), `${label}: the ${words[0]} tool decodes our blocks to other bytes`);

      const ref = childCpuSeconds(tool.encode(input));
      console.log(`${words[0]} tool (${tool.encode('FILE')}): ${ref.toFixed(2)} s CPU, ${mbs(ref)} MB/s on the same bytes; ours/tool CPU ${(s / ref).toFixed(2)}x`);
      if (words[0] === 'xz') assert.ok(s < 2 * ref, 'ours is more than twice as slow as liblzma');
    });
  }
});
