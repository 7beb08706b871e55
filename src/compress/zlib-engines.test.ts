import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { hasCommand, isRoot, needs } from '../../test/support/env.js';
import { gzipBinding, gzipEngine, gzipLibraryVersion, GzipCompressor, LIBDEFLATE_LEVEL, normalizeGzip } from './gzip.js';

/** Blocks of every kind: binary, text, noise, zeros, tiny ones. */
function blocks(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const elf = readFileSync(process.execPath);
  for (let i = 0; i < 12; i++) out.push(elf.subarray(i * 131072, (i + 1) * 131072));
  out.push(Buffer.from('portable service '.repeat(7000)), Buffer.alloc(65536), Buffer.from([1, 2]));
  let x = 7;
  out.push(Uint8Array.from({ length: 100_000 }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24)));
  return out;
}

const STRATEGIES = [zlib.constants.Z_DEFAULT_STRATEGY, zlib.constants.Z_FILTERED, zlib.constants.Z_RLE, zlib.constants.Z_FIXED];

test("the addon's deflate through Node's zlib (engine 1) gives zlib.deflateSync's bytes; the system zlib (engine 0) is another library", () => {
  const z = gzipBinding();
  assert.notEqual(z.zlibVersion(1), '', "Node's zlib is there");
  const out = Buffer.alloc(200_000);
  let differs = 0;
  for (const block of blocks()) {
    for (const strategy of STRATEGIES) {
      for (const [level, windowBits] of [[9, 15], [6, 12], [1, 9]]) {
        const want = zlib.deflateSync(block, { level, windowBits, memLevel: 8, strategy });
        const n = z.deflate(block, out, level, windowBits, 8, strategy, 1);
        assert.equal(n, want.length, `${block.length} bytes, strategy ${strategy}, level ${level}, window ${windowBits}`);
        assert.ok(out.subarray(0, n).equals(want), 'same bytes');
        const m = z.deflate(block, out, level, windowBits, 8, strategy, 0);
        assert.ok(Buffer.from(zlib.inflateSync(out.subarray(0, m))).equals(block), 'the system zlib inflates back');
        if (m !== n) differs++;
      }
    }
  }
  // Chromium's fork and the system zlib make other choices: the reason for two engines.
  assert.ok(differs > 0, 'the two engines are different libraries');
  // A stream that does not fit is -1, not a truncated stream.
  assert.equal(z.deflate(blocks().at(-1)!, out.subarray(0, 1000), 9, 15, 8, 0, 1), -1);
  assert.throws(() => z.deflate(Buffer.from('x'), out, 9, 15, 8, 0, 3), /engine must be 0/);
});

test('the gzip compressor writes through the addon: what it stores inflates back, and fits where it said', () => {
  const c = new GzipCompressor({ name: 'gzip', blockSize: 131072 });
  const out = new Uint8Array(new SharedArrayBuffer(140_000));
  for (const block of blocks()) {
    const n = c.compressInto(block, out);
    if (n < 0) continue; // did not shrink: stored raw by the writer
    assert.ok(n < block.length);
    assert.ok(Buffer.from(zlib.inflateSync(out.subarray(0, n))).equals(block));
  }
});

/**
 * What images hold, sampled: 128 KiB blocks spread over Node's binary (code, data, its snapshot) and mkportable's
 * own sources (text). The first blocks of an ELF file alone are not: there zlib -9 beats libdeflate's 7 by 0.9%.
 */
function sampleBlocks(): Uint8Array[] {
  const elf = readFileSync(process.execPath);
  const out: Uint8Array[] = [];
  for (let at = 0; at + 131072 <= elf.length && out.length < 60; at += 14 * 131072) out.push(elf.subarray(at, at + 131072));
  const src = fileURLToPath(new URL('..', import.meta.url));
  const text = Buffer.concat(
    readdirSync(src, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .sort()
      .map((f) => readFileSync(path.join(src, f))),
  );
  for (let at = 0; at < text.length && at < 40 * 131072; at += 131072) out.push(text.subarray(at, at + 131072));
  return out;
}

test('libdeflate (engine 2) makes zlib streams that inflate back, smaller than the system zlib at the level LIBDEFLATE_LEVEL maps to', () => {
  const z = gzipBinding();
  const file = z.zlibVersion(2);
  assert.ok(existsSync(file), `the loaded libdeflate is a file (${file})`);
  const out = Buffer.alloc(200_000);
  const total = { libdeflate: new Array(10).fill(0), zlib: new Array(10).fill(0) };
  let differs = 0;
  const sample = new Set(sampleBlocks());
  for (const block of [...blocks(), ...sample]) {
    for (let level = 1; level <= 9; level++) {
      const n = z.deflate(block, out, LIBDEFLATE_LEVEL[level], 15, 8, 0, 2);
      assert.ok(n > 0, `${block.length} bytes fit`);
      const stream = Buffer.from(out.subarray(0, n));
      assert.ok(Buffer.from(zlib.inflateSync(stream)).equals(block), `${block.length} bytes, level ${level}: inflates back`);
      const m = z.deflate(block, out, level, 15, 8, 0, 0);
      if (m !== n || !stream.equals(out.subarray(0, m))) differs++;
      if (sample.has(block)) {
        total.libdeflate[level] += n;
        total.zlib[level] += m;
      }
    }
  }
  assert.ok(differs > 0, 'another library than zlib');
  // The promise of the level map: a zlib level keeps (at least) its compression, on what images hold.
  for (let level = 1; level <= 9; level++) {
    assert.ok(total.libdeflate[level] <= total.zlib[level], `level ${level}: libdeflate ${LIBDEFLATE_LEVEL[level]} ${total.libdeflate[level]} ≤ zlib ${total.zlib[level]}`);
  }
  assert.equal(z.deflate(blocks().at(-1)!, out.subarray(0, 1000), 7, 15, 8, 0, 2), -1, 'a stream that does not fit is -1');
  assert.throws(() => z.deflate(blocks()[0], out, 7, 12, 8, 0, 2), /windowBits 15/, 'no smaller window');
  assert.throws(() => z.deflate(blocks()[0], out, 7, 15, 8, zlib.constants.Z_RLE, 2), /default strategy/, 'no strategies');
  assert.throws(() => z.deflate(blocks()[0], out, 13, 15, 8, 0, 2), /levels 1 to 12/);
});

test('the gzip compressor picks libdeflate where it can make the spec, and names it with its level in the identity', () => {
  const plain = normalizeGzip({ name: 'gzip', blockSize: 131072 });
  assert.equal(gzipEngine(plain), 'libdeflate');
  assert.match(gzipLibraryVersion(plain), /^libdeflate [0-9a-f]{16} level 7$/);
  assert.match(gzipLibraryVersion(normalizeGzip({ name: 'gzip', blockSize: 131072, level: 4 })), / level 3$/);
  // A smaller window or a strategy list: libdeflate has neither, so Node's zlib makes those.
  assert.equal(gzipEngine(normalizeGzip({ name: 'gzip', blockSize: 131072, windowBits: 12 })), 'node');
  assert.match(gzipLibraryVersion(normalizeGzip({ name: 'gzip', blockSize: 131072, strategies: 0x12 })), /^node zlib [^+]*$/, 'filtered, fixed');
  assert.match(gzipLibraryVersion(normalizeGzip({ name: 'gzip', blockSize: 131072, strategies: 0x13 })), /^libdeflate [0-9a-f]{16} level 7 \+ node zlib /, 'default, filtered, fixed');
  const c = new GzipCompressor(plain);
  const block = blocks()[3];
  const out = new Uint8Array(140_000);
  const n = c.compressInto(block, out);
  const want = Buffer.alloc(200_000);
  assert.equal(n, gzipBinding().deflate(block, want, 7, 15, 8, 0, 2), "libdeflate's stream at level 7");
  assert.ok(Buffer.from(out.subarray(0, n)).equals(want.subarray(0, n)));
});

const CLI = fileURLToPath(new URL('../../bin/mkportable.js', import.meta.url));

/** A folder of 20 files, text and code, for packing with gzip. */
function gzipTree(dir: string): string {
  const tree = path.join(dir, 'tree');
  mkdirSync(tree);
  const text = readFileSync(new URL('./gzip.ts', import.meta.url));
  const elf = readFileSync(process.execPath);
  for (let i = 0; i < 20; i++) writeFileSync(path.join(tree, `f${i}`), Buffer.concat([text, elf.subarray((i + 1) << 22, ((i + 1) << 22) + 200_000)]));
  return tree;
}

/** `mkportable pack TREE OUT --squash-compression gzip`, with MKPORTABLE_GZIP=engine, under `wrap` (a command prefix). */
function packGzip(tree: string, out: string, engine: string | undefined, wrap: string[] = []) {
  const argv = [...wrap, process.execPath, CLI, 'pack', tree, out, '--squash-compression', 'gzip', '--no-cache'];
  return spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { ...process.env, SOURCE_DATE_EPOCH: '0', MKPORTABLE_GZIP: engine ?? '' } });
}

test('MKPORTABLE_GZIP picks the engine; an unknown one is a one-line error before any output', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gzip-engine-'));
  try {
    const tree = gzipTree(dir);
    const sizes: Record<string, number> = {};
    for (const engine of [undefined, 'libdeflate', 'node', 'system']) {
      const out = path.join(dir, `${engine ?? 'default'}.raw`);
      const r = packGzip(tree, out, engine);
      assert.equal(r.status, 0, r.stderr);
      sizes[engine ?? 'default'] = statSync(out).size;
      const back = path.join(dir, `${engine ?? 'default'}-back`);
      const u = spawnSync('unsquashfs', ['-no-progress', '-d', back, out], { encoding: 'utf8' });
      if (u.error) assert.fail('unsquashfs (squashfs-tools) is needed: apt-get install squashfs-tools');
      assert.equal(u.status, 0, u.stderr);
      for (let i = 0; i < 20; i++) assert.ok(readFileSync(path.join(back, `f${i}`)).equals(readFileSync(path.join(tree, `f${i}`))), `${engine}: f${i}`);
    }
    assert.ok(readFileSync(path.join(dir, 'default.raw')).equals(readFileSync(path.join(dir, 'libdeflate.raw'))), 'libdeflate is the default');
    assert.ok(sizes.libdeflate < sizes.system, `libdeflate's image (${sizes.libdeflate}) is smaller than the system zlib's (${sizes.system})`);
    assert.notEqual(sizes.node, sizes.system, 'Node and the system zlib are other engines');
    const bad = packGzip(tree, path.join(dir, 'bad.raw'), 'zopfli');
    assert.notEqual(bad.status, 0);
    assert.equal(bad.stderr.trim(), 'mkportable: error: MKPORTABLE_GZIP: "zopfli" is not libdeflate, node or system');
    assert.ok(!existsSync(path.join(dir, 'bad.raw')), 'no image');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('where libdeflate.so.0 does not load, gzip falls back to Node zlib; MKPORTABLE_GZIP=libdeflate then stops with one line and no image', (t) => {
  if (!needs(t, isRoot() && hasCommand('unshare') && hasCommand('mount'), 'needs root, unshare and mount (util-linux) to hide libdeflate.so.0 in a mount namespace')) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'gzip-nolib-'));
  try {
    const tree = gzipTree(dir);
    const empty = path.join(dir, 'empty.so');
    writeFileSync(empty, '');
    // A private mount namespace where the library file the addon loads is an empty file: dlopen fails as on a host
    // without libdeflate0; nothing outside the namespace sees it.
    const hide = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" "$1" && shift 2 && exec "$@"', empty, gzipBinding().zlibVersion(2)];
    const node = packGzip(tree, path.join(dir, 'node.raw'), 'node');
    assert.equal(node.status, 0, node.stderr);
    const fallback = packGzip(tree, path.join(dir, 'fallback.raw'), undefined, hide);
    assert.equal(fallback.status, 0, fallback.stderr);
    assert.ok(readFileSync(path.join(dir, 'fallback.raw')).equals(readFileSync(path.join(dir, 'node.raw'))), "without libdeflate the default is Node's zlib, byte for byte");
    const normal = packGzip(tree, path.join(dir, 'normal.raw'), undefined);
    assert.ok(!readFileSync(path.join(dir, 'normal.raw')).equals(readFileSync(path.join(dir, 'fallback.raw'))), 'outside the namespace libdeflate is back');
    const forced = packGzip(tree, path.join(dir, 'forced.raw'), 'libdeflate', hide);
    assert.notEqual(forced.status, 0);
    assert.equal(
      forced.stderr.trim(),
      'mkportable: error: MKPORTABLE_GZIP=libdeflate: cannot open the system libdeflate (libdeflate.so.0): install libdeflate0 (apt-get install libdeflate0), or unset MKPORTABLE_GZIP',
    );
    assert.ok(!existsSync(path.join(dir, 'forced.raw')), 'no image');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
