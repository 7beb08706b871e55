/**
 * Our compressors against the reference tools: (a) blocks mksquashfs wrote decode with our decompressors and its
 * options blocks are byte-for-byte ours; (b) blocks we wrote decode with xz, zstd, lz4 and Python's zlib, with the
 * properties the kernel needs (CRC32 check, dictionary and window no larger than the block size). A missing tool
 * skips its tests (apt-get install squashfs-tools xz-utils zstd lz4); in CI a skip fails the run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { isMkportableError } from '../errors.js';
import { compressorFromImage, createCompressor, parseCompression } from './registry.js';
import { binaryBytes, lz4Frame, textBytes } from '../../test/support/compress-data.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mkportable-compress-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

function run(cmd: string, args: string[], input?: Uint8Array): Buffer {
  const r = spawnSync(cmd, args, { input, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.toString()}`);
  return r.stdout;
}

const skipUnless = (tool: string) => (has(tool) ? false : `${tool} is not installed`);

let fileNo = 0;
function tmpFile(data: Uint8Array): string {
  const p = path.join(tmp, `f${fileNo++}`);
  fs.writeFileSync(p, data);
  return p;
}

/** The pieces of a one-file, one-block image read by hand: options payload and the file's only data block. */
interface OneBlockImage {
  compression: number;
  blockSize: number;
  options: Uint8Array | null;
  block: Uint8Array;
}

function mksquashfsOneBlock(data: Uint8Array, blockSize: number, words: string[]): OneBlockImage {
  const dir = fs.mkdtempSync(path.join(tmp, 'src-'));
  fs.writeFileSync(path.join(dir, 'file'), data);
  const img = path.join(tmp, `img${fileNo++}.sqfs`);
  const [name, ...opts] = words;
  run('mksquashfs', [dir, img, '-noappend', '-no-fragments', '-no-xattrs', '-all-root', '-quiet', '-no-progress', '-b', String(blockSize), '-comp', name, ...opts]);
  const b = new Uint8Array(fs.readFileSync(img));
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(0, true), 0x73717368);
  const flags = v.getUint16(24, true);
  let at = 96;
  let options: Uint8Array | null = null;
  if (flags & 0x400) {
    const header = v.getUint16(96, true);
    assert.ok(header & 0x8000, 'the options block is stored uncompressed');
    options = b.slice(98, 98 + (header & 0x7fff));
    at = 98 + (header & 0x7fff);
  }
  // No fragments and one file of at most one block: its block runs from here to the inode table.
  const inodeTable = Number(v.getBigUint64(64, true));
  return { compression: v.getUint16(20, true), blockSize: v.getUint32(12, true), options, block: b.slice(at, inodeTable) };
}

describe('mksquashfs blocks decode with our decompressors', { skip: skipUnless('mksquashfs') }, () => {
  const configs: Array<[string[], number]> = [
    [['gzip'], 131072],
    [['gzip', '-Xcompression-level', '1'], 131072],
    [['gzip', '-Xwindow-size', '10', '-Xstrategy', 'filtered,run_length_encoded'], 65536],
    [['xz'], 131072],
    [['xz'], 4096],
    [['xz', '-Xbcj', 'x86'], 131072],
    [['xz', '-Xdict-size', '50%'], 131072],
    [['xz', '-Xbcj', 'arm,x86', '-Xdict-size', '32K'], 65536],
    [['zstd'], 131072],
    [['zstd', '-Xcompression-level', '19'], 131072],
    [['lz4'], 131072],
    [['lz4', '-Xhc'], 131072],
  ];
  for (const [words, blockSize] of configs) {
    it(`${words.join(' ')} -b ${blockSize}`, () => {
      for (const data of [textBytes(blockSize - 1000), binaryBytes(blockSize, 3 << 20)]) {
        const img = mksquashfsOneBlock(data, blockSize, words);
        const ours = createCompressor(parseCompression(words, blockSize));
        assert.equal(img.compression, ours.id);
        assert.equal(img.blockSize, blockSize);
        assert.deepEqual(img.options, ours.options(), 'options block bytes');
        assert.ok(img.block.length < data.length, 'mksquashfs compressed the block');
        const reader = compressorFromImage(img.compression, img.options, img.blockSize);
        assert.deepEqual(reader.decompressSync(img.block, data.length), data);
        assert.deepEqual(ours.decompressSync(img.block, blockSize), data);
        assert.throws(() => reader.decompressSync(img.block, data.length - 1), { code: 'IMAGE_CORRUPT' });
      }
    });
  }
});

/** Inputs for (b): a metadata-sized chunk, a partial block and a full block of code. */
function inputs(blockSize: number): Uint8Array[] {
  return [textBytes(8192), binaryBytes(100000, 5 << 20), binaryBytes(blockSize, 7 << 20), textBytes(blockSize)];
}

describe('our blocks decode with the reference tools', () => {
  it('gzip: Python zlib', { skip: skipUnless('python3') }, () => {
    const py = 'import sys, zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read()))';
    for (const words of [['gzip'], ['gzip', '-Xwindow-size', '8', '-Xcompression-level', '3'], ['gzip', '-Xstrategy', 'fixed,filtered']]) {
      const c = createCompressor(parseCompression(words, 1 << 20));
      for (const data of inputs(1 << 20)) {
        const packed = c.compressSync(data)!;
        assert.deepEqual(new Uint8Array(run('python3', ['-c', py], packed)), data, words.join(' '));
      }
    }
  });

  it('xz: xz -dc, with a CRC32 check and a dictionary no larger than the block', { skip: skipUnless('xz') }, () => {
    for (const [words, blockSize] of [
      [['xz'], 1 << 20],
      [['xz', '-Xbcj', 'x86,arm'], 1 << 20],
      [['xz', '-Xdict-size', '25%'], 1 << 20],
      [['xz'], 4096],
    ] as Array<[string[], number]>) {
      const c = createCompressor(parseCompression(words, blockSize));
      for (const data of inputs(blockSize)) {
        const packed = c.compressSync(data)!;
        const file = tmpFile(packed);
        assert.deepEqual(new Uint8Array(run('xz', ['-dc', file])), data, words.join(' '));
        const list = run('xz', ['--robot', '--list', '-vv', file]).toString();
        const block = list.split('\n').find((l) => l.startsWith('block\t'))!.split('\t');
        assert.ok(block.includes('CRC32'), list);
        const dict = /--lzma2=dict=(\d+)(KiB|MiB|B)?/.exec(block[block.length - 1])!;
        const bytes = Number(dict[1]) * (dict[2] === 'MiB' ? 1 << 20 : dict[2] === 'KiB' ? 1024 : 1);
        assert.ok(bytes <= c.spec.dictSize!, `${words.join(' ')}: dictionary ${bytes} > ${c.spec.dictSize}`);
      }
    }
  });

  it('xz: our reader refuses what the kernel refuses from the xz tool', { skip: skipUnless('xz') }, () => {
    const data = textBytes(50000);
    const reader = compressorFromImage(4, null, 1 << 20);
    const decode = (args: string[]) => reader.decompressSync(new Uint8Array(run('xz', [...args, '-c'], data)), data.length);
    assert.deepEqual(decode(['--check=crc32', '--lzma2=preset=6,dict=1MiB']), data);
    assert.deepEqual(decode(['--check=none', '--lzma2=preset=1,dict=64KiB']), data);
    assert.throws(() => decode(['--check=crc64', '--lzma2=preset=6,dict=1MiB']), /check type CRC64/);
    assert.throws(() => decode(['--check=crc32', '-6']), /8388608-byte dictionary/);
  });

  it('zstd: zstd -dc with the window limited to the block size', { skip: skipUnless('zstd') }, () => {
    for (const [words, blockSize] of [
      [['zstd'], 1 << 20],
      [['zstd', '-Xcompression-level', '22'], 1 << 20],
      [['zstd', '-Xcompression-level', '3'], 4096],
    ] as Array<[string[], number]>) {
      const c = createCompressor(parseCompression(words, blockSize));
      const limit = Math.max(blockSize, 8192);
      for (const data of inputs(blockSize)) {
        const packed = c.compressSync(data)!;
        assert.deepEqual(new Uint8Array(run('zstd', ['-dc', `--memory=${limit}`, tmpFile(packed)])), data, words.join(' '));
      }
    }
  });

  it('zstd: our reader refuses a frame whose window the kernel would refuse', { skip: skipUnless('zstd') }, () => {
    const data = textBytes(300000);
    // From a pipe zstd does not know the size: no content size, a window from the level (8 MiB at 19).
    const packed = new Uint8Array(run('zstd', ['-19', '-c'], data));
    assert.throws(() => compressorFromImage(6, null, 1 << 20).decompressSync(packed, 1 << 20), (e: unknown) => {
      assert.ok(isMkportableError(e) && e.code === 'IMAGE_CORRUPT');
      assert.match(e.message, /window, more than the 1048576 bytes/);
      return true;
    });
    const fits = new Uint8Array(run('zstd', ['-19', '-c', tmpFile(data)]));
    assert.deepEqual(compressorFromImage(6, null, 1 << 20).decompressSync(fits, 1 << 20), data);
  });

  it('lz4: the lz4 tool decodes our raw blocks (wrapped in a minimal frame)', { skip: skipUnless('lz4') }, () => {
    for (const words of [['lz4'], ['lz4', '-Xhc']]) {
      const c = createCompressor(parseCompression(words, 1 << 20));
      for (const data of inputs(1 << 20)) {
        const packed = c.compressSync(data)!;
        assert.deepEqual(new Uint8Array(run('lz4', ['-dc', tmpFile(lz4Frame([packed]))])), data, words.join(' '));
      }
    }
  });
});
