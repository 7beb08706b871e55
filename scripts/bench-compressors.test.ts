/**
 * Compressor throughput benchmark (not part of npm test; it takes a minute or more):
 *
 *   node --import tsx --test scripts/bench-compressors.test.ts
 *
 * Cuts the regular files of MKPORTABLE_BENCH_DIR (default /usr/bin, the first MKPORTABLE_BENCH_MB MiB in name
 * order, default 64) into 1 MiB blocks, compresses them on this thread with each compressor, and prints MB/s of
 * CPU time. For xz it also times the xz tool on the same bytes (--block-size=1MiB: independent 1 MiB blocks,
 * preset 6, CRC32, 1 MiB dictionary, i.e. liblzma doing what mksquashfs asks of it) and fails when ours is more
 * than twice as slow.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createCompressor, parseCompression } from '../src/compress/registry.js';

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

describe('compressor throughput', () => {
  const blocks = corpus();
  const bytes = blocks.reduce((n, b) => n + b.length, 0);
  const mbs = (s: number) => (bytes / 1e6 / s).toFixed(2);

  for (const words of [['xz'], ['gzip'], ['zstd'], ['lz4'], ['lz4', '-Xhc']]) {
    it(words.join(' '), () => {
      const c = createCompressor(parseCompression(words, BLOCK));
      let out = 0;
      const s = cpuSeconds(() => {
        for (const b of blocks) out += c.compressSync(b)?.length ?? b.length;
      });
      console.log(`${words.join(' ')}: ${blocks.length} blocks, ${bytes} -> ${out} bytes, ${s.toFixed(2)} s CPU, ${mbs(s)} MB/s`);
      if (words[0] !== 'xz' || spawnSync('sh', ['-c', 'command -v xz']).status !== 0) return;
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mkportable-bench-')), 'corpus');
      // The same bytes back to back, cut into 1 MiB blocks again by xz (files' last blocks merge: same bytes).
      fs.writeFileSync(file, Buffer.concat(blocks));
      const ref = childCpuSeconds(`xz -6 --check=crc32 --lzma2=preset=6,dict=1MiB --block-size=1MiB -T1 -c '${file}'`);
      console.log(`xz tool: ${ref.toFixed(2)} s CPU, ${mbs(ref)} MB/s on the same bytes`);
      fs.rmSync(path.dirname(file), { recursive: true });
      assert.ok(s < 2 * ref, 'ours is more than twice as slow as liblzma');
    });
  }
});
