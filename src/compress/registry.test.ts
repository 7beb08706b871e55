import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isMkportableError } from '../errors.js';
import { openImageBuffer } from '../squashfs/read/index.js';
import { needs } from '../../test/support/env.js';
import { compressorFromImage, createCompressor, parseCompression, specWords } from './registry.js';
import type { CompressorSpec } from './types.js';
import { isXzDictSize } from './xz.js';

const M = 1 << 20;
const K = 1024;
const hasTools = ['mksquashfs', 'unsquashfs'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);

function bytes(...fields: Array<[2 | 4, number]>): Uint8Array {
  const out: number[] = [];
  for (const [n, v] of fields) for (let i = 0; i < n; i++) out.push((v >>> (8 * i)) & 0xff);
  return Uint8Array.from(out);
}

/** Asserts a COMPRESSION_INVALID error whose message quotes `quoted`. */
function rejects(words: string[], quoted: string | RegExp, blockSize = M): void {
  assert.throws(
    () => parseCompression(words, blockSize),
    (e: unknown) => {
      assert.ok(isMkportableError(e), `not a MkportableError: ${String(e)}`);
      assert.equal(e.code, 'COMPRESSION_INVALID');
      assert.equal(e.subject, 'squashCompression');
      assert.match(e.message, /^squashCompression: /);
      if (typeof quoted === 'string') assert.ok(e.message.includes(quoted), `${e.message} should quote ${quoted}`);
      else assert.match(e.message, quoted);
      return true;
    },
    words.join(' '),
  );
}

describe('parseCompression', () => {
  const cases: Array<[string[], number, CompressorSpec]> = [
    [['gzip'], M, { name: 'gzip', blockSize: M, level: 9, windowBits: 15, strategies: 0 }],
    [['gzip', '-Xcompression-level', '6'], M, { name: 'gzip', blockSize: M, level: 6, windowBits: 15, strategies: 0 }],
    [['gzip', '-Xwindow-size', '8'], M, { name: 'gzip', blockSize: M, level: 9, windowBits: 8, strategies: 0 }],
    [['gzip', '-Xstrategy', 'default'], M, { name: 'gzip', blockSize: M, level: 9, windowBits: 15, strategies: 0 }],
    [['gzip', '-Xstrategy', 'filtered,fixed'], M, { name: 'gzip', blockSize: M, level: 9, windowBits: 15, strategies: 0x12 }],
    [
      ['gzip', '-Xstrategy', 'default,filtered,huffman_only,run_length_encoded,fixed'],
      M,
      { name: 'gzip', blockSize: M, level: 9, windowBits: 15, strategies: 0x1f },
    ],
    [['gzip', '-Xstrategy', 'fixed', '-Xstrategy', 'filtered'], M, { name: 'gzip', blockSize: M, level: 9, windowBits: 15, strategies: 0x12 }],
    [['gzip', '-Xcompression-level', '1', '-Xcompression-level', '7'], M, { name: 'gzip', blockSize: M, level: 7, windowBits: 15, strategies: 0 }],
    [['xz'], M, { name: 'xz', blockSize: M, dictSize: M, filters: 0 }],
    [['xz', '-Xdict-size', '100%'], M, { name: 'xz', blockSize: M, dictSize: M, filters: 0 }],
    [['xz', '-Xdict-size', '50%'], M, { name: 'xz', blockSize: M, dictSize: 512 * K, filters: 0 }],
    [['xz', '-Xdict-size', '75%'], M, { name: 'xz', blockSize: M, dictSize: 768 * K, filters: 0 }],
    [['xz', '-Xdict-size', '37.5%'], M, { name: 'xz', blockSize: M, dictSize: 384 * K, filters: 0 }],
    [['xz', '-Xdict-size', '512K'], M, { name: 'xz', blockSize: M, dictSize: 512 * K, filters: 0 }],
    [['xz', '-Xdict-size', '512k'], M, { name: 'xz', blockSize: M, dictSize: 512 * K, filters: 0 }],
    [['xz', '-Xdict-size', '1M'], M, { name: 'xz', blockSize: M, dictSize: M, filters: 0 }],
    [['xz', '-Xdict-size', '65536'], 128 * K, { name: 'xz', blockSize: 128 * K, dictSize: 65536, filters: 0 }],
    [['xz', '-Xdict-size', '8K'], 8 * K, { name: 'xz', blockSize: 8 * K, dictSize: 8 * K, filters: 0 }],
    [['xz', '-Xbcj', 'x86'], M, { name: 'xz', blockSize: M, dictSize: M, filters: 1 }],
    [['xz', '-Xbcj', 'x86,powerpc,ia64,arm,armthumb,sparc'], M, { name: 'xz', blockSize: M, dictSize: M, filters: 0x3f }],
    [['xz', '-Xbcj', 'arm', '-Xbcj', 'x86,arm'], M, { name: 'xz', blockSize: M, dictSize: M, filters: 9 }],
    [['xz', '-Xbcj', 'x86', '-Xdict-size', '50%'], 64 * K, { name: 'xz', blockSize: 64 * K, dictSize: 32 * K, filters: 1 }],
    [['zstd'], M, { name: 'zstd', blockSize: M, level: 15 }],
    [['zstd', '-Xcompression-level', '19'], M, { name: 'zstd', blockSize: M, level: 19 }],
    [['zstd', '-Xcompression-level', '1'], M, { name: 'zstd', blockSize: M, level: 1 }],
    [['zstd', '-Xcompression-level', '22'], M, { name: 'zstd', blockSize: M, level: 22 }],
    [['lz4'], M, { name: 'lz4', blockSize: M, hc: false }],
    [['lz4', '-Xhc'], M, { name: 'lz4', blockSize: M, hc: true }],
    [['lz4'], 4 * K, { name: 'lz4', blockSize: 4 * K, hc: false }],
  ];
  for (const [words, blockSize, spec] of cases) {
    it(`${words.join(' ')} (block ${blockSize})`, () => {
      const parsed = parseCompression(words, blockSize);
      assert.deepEqual(parsed, spec);
      // The words for a spec parse back to the same spec.
      assert.deepEqual(parseCompression(specWords(parsed), blockSize), spec);
      assert.deepEqual(createCompressor(parsed).spec, spec);
    });
  }

  it('refuses a missing or unknown compressor', () => {
    rejects([], /no compressor named/);
    rejects([''], /no compressor named/);
    rejects(['gz'], '"gz"');
    rejects(['XZ'], '"XZ"');
    rejects(['-Xhc'], '"-Xhc"');
  });

  it('refuses lzo and lzma with the reason', () => {
    rejects(['lzo'], /lzo .*mksquashfs/);
    rejects(['lzma'], /lzma .*kernel/);
  });

  it('refuses unknown options and options of another compressor', () => {
    rejects(['gzip', '-Xbcj', 'x86'], '"-Xbcj"');
    rejects(['gzip', '-Xhc'], '"-Xhc"');
    rejects(['xz', '-Xcompression-level', '6'], '"-Xcompression-level"');
    rejects(['xz', 'x86'], '"x86"');
    rejects(['zstd', '-Xwindow-size', '10'], '"-Xwindow-size"');
    rejects(['lz4', '-Xcompression-level', '9'], '"-Xcompression-level"');
    rejects(['lz4', '-Xhc', 'yes'], '"yes"');
    rejects(['lz4', '-hc'], '"-hc"');
    rejects(['gzip', '-Xcompression-level=6'], '"-Xcompression-level=6"');
  });

  it('refuses a missing value', () => {
    rejects(['gzip', '-Xcompression-level'], '"-Xcompression-level"');
    rejects(['gzip', '-Xwindow-size'], '"-Xwindow-size"');
    rejects(['gzip', '-Xstrategy'], '"-Xstrategy"');
    rejects(['gzip', '-Xstrategy', ''], '"-Xstrategy"');
    rejects(['xz', '-Xbcj'], '"-Xbcj"');
    rejects(['xz', '-Xdict-size'], '"-Xdict-size"');
    rejects(['zstd', '-Xcompression-level'], '"-Xcompression-level"');
  });

  it('refuses bad gzip values', () => {
    for (const v of ['0', '10', '-1', '6.5', 'six', '0x6', ' 6', '1e1']) rejects(['gzip', '-Xcompression-level', v], `"${v}"`);
    for (const v of ['7', '16', '0', 'big']) rejects(['gzip', '-Xwindow-size', v], `"${v}"`);
    rejects(['gzip', '-Xstrategy', 'fast'], '"fast"');
    rejects(['gzip', '-Xstrategy', 'Default'], '"Default"');
    rejects(['gzip', '-Xstrategy', 'default,,fixed'], '"default,,fixed"');
    rejects(['gzip', '-Xstrategy', 'fixed,'], '"fixed,"');
    rejects(['gzip', '-Xstrategy', 'rle'], '"rle"');
  });

  it('refuses bad zstd levels', () => {
    for (const v of ['0', '23', '-5', '15.0', 'max']) rejects(['zstd', '-Xcompression-level', v], `"${v}"`);
  });

  it('refuses bad xz BCJ filters, and arm64 with the kernel as reason', () => {
    rejects(['xz', '-Xbcj', 'arm64'], /"arm64".*kernel/);
    rejects(['xz', '-Xbcj', 'x86,arm64'], /"arm64".*kernel/);
    rejects(['xz', '-Xbcj', 'riscv'], /"riscv".*kernel/);
    rejects(['xz', '-Xbcj', 'x86_64'], '"x86_64"');
    rejects(['xz', '-Xbcj', 'X86'], '"X86"');
    rejects(['xz', '-Xbcj', 'x86,,arm'], '"x86,,arm"');
  });

  it('refuses xz dictionary sizes mksquashfs refuses, naming the nearest good ones', () => {
    rejects(['xz', '-Xdict-size', '60%'], /"60%" gives 629145 bytes.*524288 \(50%\) or 786432 \(75%\)/);
    rejects(['xz', '-Xdict-size', '100000'], /"100000".*98304 \(9\.38%\) or 131072 \(12\.5%\)/);
    rejects(['xz', '-Xdict-size', '0%'], '"0%"');
    rejects(['xz', '-Xdict-size', '101%'], '"101%"');
    rejects(['xz', '-Xdict-size', '150%'], '"150%"');
    rejects(['xz', '-Xdict-size', '2M'], /"2M".*larger than the block size/);
    rejects(['xz', '-Xdict-size', '1M'], /"1M".*larger than the block size/, 512 * K);
    rejects(['xz', '-Xdict-size', '4K'], /"4K".*at least 8192/);
    rejects(['xz', '-Xdict-size', '0'], '"0"');
    rejects(['xz', '-Xdict-size', '0.5%'], /"0\.5%".*at least 8192/);
    rejects(['xz', '-Xdict-size', '1G'], '"1G"');
    rejects(['xz', '-Xdict-size', '1.5M'], '"1.5M"');
    rejects(['xz', '-Xdict-size', '-8K'], '"-8K"');
    rejects(['xz', '-Xdict-size', '50 %'], '"50 %"');
  });

  it('refuses a block size that is not a squashfs block size', () => {
    for (const bs of [0, 2048, 4095, 3 * 4096, 2 * M, 1.5]) {
      assert.throws(() => parseCompression(['gzip'], bs), { code: 'COMPRESSION_INVALID' });
    }
  });
});

describe('createCompressor', () => {
  it('checks hand-made specs like parsed ones', () => {
    const bad: CompressorSpec[] = [
      { name: 'gzip', blockSize: M, level: 0 },
      { name: 'gzip', blockSize: M, windowBits: 16 },
      { name: 'gzip', blockSize: M, strategies: 0x20 },
      { name: 'xz', blockSize: M, dictSize: 2 * M },
      { name: 'xz', blockSize: M, dictSize: 1000000 },
      { name: 'xz', blockSize: M, dictSize: 4096 },
      { name: 'xz', blockSize: M, filters: 0x40 },
      { name: 'zstd', blockSize: M, level: 23 },
      { name: 'lzo' as 'lz4', blockSize: M },
      { name: 'gzip', blockSize: 1000 },
    ];
    for (const spec of bad) assert.throws(() => createCompressor(spec), { code: 'COMPRESSION_INVALID' }, JSON.stringify(spec));
  });

  it('fills in defaults of a partial spec', () => {
    assert.deepEqual(createCompressor({ name: 'xz', blockSize: 128 * K }).spec, { name: 'xz', blockSize: 128 * K, dictSize: 128 * K, filters: 0 });
    assert.deepEqual(createCompressor({ name: 'gzip', blockSize: M, strategies: 1 }).spec.strategies, 0);
  });
});

describe('options blocks (golden bytes)', () => {
  const golden: Array<[string[], number, Uint8Array | null, number]> = [
    [['gzip'], M, null, 1],
    [['gzip', '-Xstrategy', 'default'], M, null, 1],
    [['gzip', '-Xcompression-level', '6'], M, bytes([4, 6], [2, 15], [2, 0]), 1],
    [['gzip', '-Xwindow-size', '12'], M, bytes([4, 9], [2, 12], [2, 0]), 1],
    [['gzip', '-Xstrategy', 'default,filtered'], M, bytes([4, 9], [2, 15], [2, 3]), 1],
    [['gzip', '-Xstrategy', 'huffman_only,run_length_encoded,fixed'], M, bytes([4, 9], [2, 15], [2, 0x1c]), 1],
    [['xz'], M, null, 4],
    [['xz', '-Xdict-size', '100%'], M, null, 4],
    [['xz', '-Xdict-size', '50%'], M, bytes([4, 512 * K], [4, 0]), 4],
    [['xz', '-Xbcj', 'x86'], M, bytes([4, M], [4, 1]), 4],
    [['xz', '-Xbcj', 'sparc,arm'], 128 * K, bytes([4, 128 * K], [4, 0x28]), 4],
    [['zstd'], M, null, 6],
    [['zstd', '-Xcompression-level', '19'], M, bytes([4, 19]), 6],
    [['lz4'], M, bytes([4, 1], [4, 0]), 5],
    [['lz4', '-Xhc'], M, bytes([4, 1], [4, 1]), 5],
  ];
  for (const [words, blockSize, expected, id] of golden) {
    it(words.join(' '), () => {
      const c = createCompressor(parseCompression(words, blockSize));
      assert.equal(c.id, id);
      assert.deepEqual(c.options(), expected);
      // The reader, given those bytes, gets the same spec back.
      assert.deepEqual(compressorFromImage(id, c.options(), blockSize).spec, c.spec);
    });
  }
});

describe('compressorFromImage', () => {
  const fails = (id: number, options: Uint8Array | null, code: string, message: RegExp, blockSize = M) =>
    assert.throws(() => compressorFromImage(id, options, blockSize), (e: unknown) => {
      assert.ok(isMkportableError(e));
      assert.equal(e.code, code);
      assert.match(e.message, message);
      assert.doesNotMatch(e.message, /squashCompression/);
      return true;
    });

  it('refuses unknown ids, lzo and lzma', () => {
    fails(0, null, 'IMAGE_CORRUPT', /unknown compression id 0/);
    fails(7, null, 'IMAGE_CORRUPT', /unknown compression id 7/);
    fails(3, null, 'IMAGE_UNSUPPORTED', /lzo/);
    fails(2, null, 'IMAGE_UNSUPPORTED', /lzma/);
  });

  it('checks gzip options: level 1..9, window 8..15, exactly 8 bytes; strategy bits are not checked', () => {
    fails(1, bytes([4, 0], [2, 15], [2, 0]), 'IMAGE_CORRUPT', /compression level 0/);
    fails(1, bytes([4, 10], [2, 15], [2, 0]), 'IMAGE_CORRUPT', /compression level 10/);
    fails(1, bytes([4, 9], [2, 7], [2, 0]), 'IMAGE_CORRUPT', /window size 7/);
    fails(1, bytes([4, 9], [2, 16], [2, 0]), 'IMAGE_CORRUPT', /window size 16/);
    fails(1, bytes([4, 9], [2, 15]), 'IMAGE_CORRUPT', /6 bytes, expected 8/);
    // Unknown strategy bits are ignored, as squashfs-tools does.
    assert.equal(compressorFromImage(1, bytes([4, 9], [2, 15], [2, 0xff02]), M).spec.strategies, 2);
  });

  it('checks xz options: dictionary size 2^n or 2^n + 2^(n-1), exactly 8 bytes', () => {
    fails(4, bytes([4, 1000000], [4, 0]), 'IMAGE_CORRUPT', /dictionary size 1000000/);
    fails(4, bytes([4, 0], [4, 0]), 'IMAGE_CORRUPT', /dictionary size 0/);
    fails(4, bytes([4, M]), 'IMAGE_CORRUPT', /4 bytes, expected 8/);
    fails(4, bytes([4, M], [4, 0], [4, 0]), 'IMAGE_CORRUPT', /12 bytes, expected 8/);
    assert.deepEqual(compressorFromImage(4, bytes([4, 3 * 64 * K], [4, 0x21]), M).spec, {
      name: 'xz',
      blockSize: M,
      dictSize: 3 * 64 * K,
      filters: 0x21,
    });
  });

  it('checks zstd and lz4 options', () => {
    fails(6, bytes([4, 0]), 'IMAGE_CORRUPT', /compression level 0/);
    fails(6, bytes([4, 23]), 'IMAGE_CORRUPT', /compression level 23/);
    fails(6, bytes([2, 15]), 'IMAGE_CORRUPT', /2 bytes, expected 4/);
    fails(5, null, 'IMAGE_CORRUPT', /no compressor options block/);
    fails(5, bytes([4, 2], [4, 0]), 'IMAGE_CORRUPT', /version 2/);
    fails(5, bytes([4, 1], [4, 2]), 'IMAGE_CORRUPT', /flags 0x2/);
    fails(5, bytes([4, 1]), 'IMAGE_CORRUPT', /4 bytes, expected 8/);
  });

  it('uses the defaults when there is no options block', () => {
    assert.deepEqual(compressorFromImage(1, null, M).spec, { name: 'gzip', blockSize: M, level: 9, windowBits: 15, strategies: 0 });
    assert.deepEqual(compressorFromImage(4, null, 4096).spec, { name: 'xz', blockSize: 4096, dictSize: 4096, filters: 0 });
    assert.deepEqual(compressorFromImage(6, null, M).spec, { name: 'zstd', blockSize: M, level: 15 });
  });
});

describe('compressor options blocks judged as unsquashfs -s judges them', () => {
  // Real mksquashfs images with an options block, one field patched in place; unsquashfs -s reports a block it
  // refuses on stderr ("error reading stored compressor options"; squashfs-tools 4.5 still exits 0).
  const cases: Array<{ comp: 'gzip' | 'xz'; what: string; at: number; size: 2 | 4; value: number; refused: boolean }> = [
    { comp: 'gzip', what: 'level 0', at: 0, size: 4, value: 0, refused: true },
    { comp: 'gzip', what: 'level 10', at: 0, size: 4, value: 10, refused: true },
    { comp: 'gzip', what: 'window 7', at: 4, size: 2, value: 7, refused: true },
    { comp: 'gzip', what: 'window 16', at: 4, size: 2, value: 16, refused: true },
    { comp: 'gzip', what: 'unknown strategy bits 0xff02', at: 6, size: 2, value: 0xff02, refused: false },
    { comp: 'xz', what: 'dictionary 1000000', at: 0, size: 4, value: 1000000, refused: true },
    { comp: 'xz', what: 'dictionary 0', at: 0, size: 4, value: 0, refused: true },
    { comp: 'xz', what: 'dictionary 192 KiB (3 * 2^16)', at: 0, size: 4, value: 3 * 64 * K, refused: false },
  ];
  let work = '';
  const images = new Map<string, Buffer>();
  before(() => {
    if (!hasTools) return;
    work = mkdtempSync(path.join(os.tmpdir(), 'mkportable-compopts-'));
    mkdirSync(path.join(work, 'tree'));
    writeFileSync(path.join(work, 'tree', 'a'), 'hello\n');
    for (const [comp, opts] of [['gzip', ['-Xcompression-level', '1']], ['xz', ['-Xbcj', 'x86']]] as const) {
      const out = path.join(work, `${comp}.sqfs`);
      const r = spawnSync('mksquashfs', [path.join(work, 'tree'), out, '-noappend', '-quiet', '-no-progress', '-comp', comp, ...opts]);
      assert.equal(r.status, 0, String(r.stderr));
      images.set(comp, readFileSync(out));
    }
  });
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  for (const c of cases) {
    it(`${c.comp} ${c.what}: ${c.refused ? 'refused' : 'accepted'} by unsquashfs -s and by the reader`, async (t) => {
      if (!needs(t, hasTools, 'mksquashfs/unsquashfs not installed (squashfs-tools)')) return;
      const b = Buffer.from(images.get(c.comp)!);
      const header = b.readUInt16LE(96);
      assert.equal(header, 0x8000 | 8, 'an uncompressed 8-byte options block follows the superblock');
      if (c.size === 4) b.writeUInt32LE(c.value, 98 + c.at);
      else b.writeUInt16LE(c.value, 98 + c.at);
      const file = path.join(work, `patched-${c.comp}.sqfs`);
      writeFileSync(file, b);
      const r = spawnSync('unsquashfs', ['-s', file], { encoding: 'utf8' });
      assert.equal(/error reading stored compressor options/.test(r.stderr), c.refused, `unsquashfs -s stderr: ${r.stderr}`);
      const opening = openImageBuffer(b, { name: 'p.sqfs' });
      if (c.refused) {
        await assert.rejects(opening, (e: unknown) => {
          assert.ok(isMkportableError(e), String(e));
          assert.equal(e.code, 'IMAGE_CORRUPT');
          assert.match(e.message, c.comp === 'gzip' ? /^p\.sqfs: .*(compression level|window size) \d+/ : /^p\.sqfs: .*dictionary size \d+/);
          return true;
        });
      } else {
        const img = await opening;
        assert.equal(Buffer.from(await img.readFile('/a')).toString(), 'hello\n');
        await img.close();
      }
    });
  }
});

describe('isXzDictSize', () => {
  it('accepts 2^n and 3*2^n only', () => {
    for (const n of [1, 2, 3, 4096, 6144, 8192, 12288, 3 * M, M, 0x80000000, 0xc0000000]) assert.ok(isXzDictSize(n), String(n));
    for (const n of [0, -8, 5, 10000, 5 * 4096, 7 * M, 1.5, 0xffffffff]) assert.ok(!isXzDictSize(n), String(n));
  });
});
