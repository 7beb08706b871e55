/**
 * The native data path (native-pool.ts, native/tasks.c) against the worker pool it stands in for: the same image,
 * byte for byte, from the same tree (host files whole and in blocks, holes, zero blocks, duplicates, inline bytes),
 * with one thread or several; the pool is picked for plain lz4 only; it keeps the process alive exactly while a
 * task is in flight; close() rejects what is pending.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CompressorSpec } from '../compress/types.js';
import { planFromSource } from '../plan/from-source.js';
import type { Entry, ImageTree } from '../plan/tree.js';
import { directorySource } from '../sources/host.js';
import { arenaLayout } from './data.js';
import { NativeTaskPool, nativeDataPath } from './native-pool.js';
import { CompressionPool, type OwnedRunner } from './pool.js';
import { Piece, createArena, slotMeta, slotView } from './task.js';
import { writeSquashfs } from './write.js';
import { randomBytes, textBytes } from '../../test/support/compress-data.js';

let work = '';
let src = '';

const noise = (length: number, seed: number) => Buffer.from(randomBytes(length, seed));
const text = (length: number, seed: number) => Buffer.from(textBytes(length, seed));

before(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'mkp-native-pool-'));
  src = path.join(work, 'src');
  const file = async (rel: string, data: Uint8Array) => {
    await fs.mkdir(path.dirname(path.join(src, rel)), { recursive: true });
    await fs.writeFile(path.join(src, rel), data);
  };
  for (let i = 0; i < 300; i++) await file(`small/f${i}`, i % 3 ? text(50 + i * 13, i) : noise(50 + i * 13, i));
  for (const size of [0, 1, 2, 4095, 4096, 4097, 131071, 131072, 131073, 300_000]) await file(`sizes/${size}`, text(size, size));
  await file('rand', noise(200_000, 7)); // raw blocks
  await file('zeros', Buffer.alloc(3 * 131072)); // allocated zero blocks: sparse in the image
  await file('dup/a', noise(150_000, 9));
  await file('dup/b', noise(150_000, 9));
  await file('dup/small-a', text(700, 1));
  await file('dup/small-b', text(700, 1));
  // Holes: probed with SEEK_DATA/SEEK_HOLE, their blocks sent as HOLE pieces.
  const holes = path.join(src, 'holes');
  const fh = await fs.open(holes, 'w');
  await fh.write(noise(5000, 3), 0, 5000, 0);
  await fh.write(text(7000, 4), 0, 7000, 2 << 20);
  await fh.truncate(3 << 20);
  await fh.close();
});

after(() => rmSync(work, { recursive: true, force: true }));

/** The host tree plus files only the main thread has (inline pieces). */
async function tree(): Promise<ImageTree> {
  const t = await planFromSource(directorySource(src), '/', { owners: 'root', mtime: 'keep' });
  const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, reason: 'test', origin: 'generated' };
  const inline = (data: Uint8Array): Entry => ({ ...base, type: 'file', size: data.length, content: { kind: 'bytes', data } }) as Entry;
  t.entries.set('/gen-small', inline(text(900, 5)));
  t.entries.set('/gen-big', inline(Buffer.concat([text(200_000, 6), noise(70_000, 6)])));
  t.entries.set('/gen-dup', inline(noise(150_000, 9))); // the same bytes as /dup/a
  return t;
}

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

async function write(spec: CompressorSpec, img: string, runner?: (arena: ReturnType<typeof createArena>, size: number) => OwnedRunner, size = 2): Promise<string> {
  const layout = arenaLayout(size, spec.blockSize);
  const pool = runner?.(createArena(layout.slotSize, layout.slots), size);
  try {
    await writeSquashfs(await tree(), img, { compressor: spec, mtime: 1_700_000_000, ...(pool ? { runner: pool } : { workers: size }) });
  } finally {
    await pool?.close();
  }
  return sha(img);
}

test('picked for plain lz4 without a block cache only, and not with MKPORTABLE_DATA_PATH=workers', () => {
  assert.equal(nativeDataPath({ name: 'lz4', blockSize: 131072 }, null), true, 'the system liblz4 and Node\'s SHA256 are here');
  assert.equal(nativeDataPath({ name: 'lz4', blockSize: 131072, hc: true }, null), false);
  assert.equal(nativeDataPath({ name: 'gzip', blockSize: 131072 }, null), false);
  assert.equal(nativeDataPath({ name: 'lz4', blockSize: 131072 }, '/some/cache'), false);
  const saved = process.env.MKPORTABLE_DATA_PATH;
  process.env.MKPORTABLE_DATA_PATH = 'workers';
  try {
    assert.equal(nativeDataPath({ name: 'lz4', blockSize: 131072 }, null), false);
  } finally {
    if (saved === undefined) delete process.env.MKPORTABLE_DATA_PATH;
    else process.env.MKPORTABLE_DATA_PATH = saved;
  }
  assert.throws(() => new NativeTaskPool({ name: 'gzip', blockSize: 4096 }, 1, createArena(8192, 2)), /plain lz4/);
});

for (const blockSize of [4096, 131072]) {
  test(`lz4 ${blockSize / 1024}K: the native threads write the worker pool's image, byte for byte, with 1 or 3 threads`, async () => {
    const spec: CompressorSpec = { name: 'lz4', blockSize };
    const img = (n: string) => path.join(work, `${n}-${blockSize}.sqfs`);
    const workers = await write(spec, img('workers'), (arena, size) => new CompressionPool(spec, size, arena));
    const one = await write(spec, img('native-1'), (arena, size) => new NativeTaskPool(spec, size, arena), 1);
    const three = await write(spec, img('native-3'), (arena, size) => new NativeTaskPool(spec, size, arena), 3);
    const picked = await write(spec, img('default'));
    assert.equal(one, workers);
    assert.equal(three, workers);
    assert.equal(picked, workers);
    // And the image holds the files: unsquashfs reads every byte back.
    const out = path.join(work, `x-${blockSize}`);
    const r = spawnSync('unsquashfs', ['-d', out, '-no-xattrs', img('native-3')], { encoding: 'utf8' });
    if (r.error) throw new Error('unsquashfs (squashfs-tools) is needed for this test');
    assert.equal(r.status, 0, r.stderr);
    for (const rel of ['small/f7', 'sizes/131073', 'rand', 'zeros', 'dup/b', 'holes']) {
      assert.ok(readFileSync(path.join(out, rel)).equals(readFileSync(path.join(src, rel))), rel);
    }
    assert.ok(readFileSync(path.join(out, 'gen-dup')).equals(noise(150_000, 9)));
    rmSync(out, { recursive: true, force: true });
    for (const n of ['workers', 'native-1', 'native-3', 'default']) rmSync(img(n));
  });
}

/** One task of one piece: the file at `file`, whole, compressed. */
function oneTask(file: string, size: number) {
  const paths = Buffer.from(file);
  return {
    id: 0,
    pieces: new Float64Array([0, 0, size, Piece.COMPRESS | Piece.END]),
    paths: new Uint8Array(paths),
    pathEnds: new Uint32Array([paths.length]),
    out: 0,
    input: -1,
  };
}

test('a task reports what became of its piece, and a file that changed or went is a failure naming the piece', async () => {
  const spec: CompressorSpec = { name: 'lz4', blockSize: 4096 };
  const arena = createArena(16384, 4);
  const pool = new NativeTaskPool(spec, 2, arena);
  try {
    const f = path.join(src, 'sizes', '4096');
    const done = await pool.run(oneTask(f, 4096));
    assert.equal(done.failure, undefined);
    assert.equal(slotMeta(arena, 0)[0], done.length);
    assert.ok(done.length > 0 && done.length < 4096, 'text compresses');
    const raw = await pool.run({ ...oneTask(path.join(src, 'rand'), 4096), pieces: new Float64Array([0, 0, 4096, Piece.COMPRESS]), out: 1 });
    assert.equal(raw.length, 4096);
    assert.equal(slotMeta(arena, 1)[1], 1, 'stored raw');
    assert.ok(Buffer.from(slotView(arena, 1).subarray(0, 4096)).equals(noise(200_000, 7).subarray(0, 4096)));
    assert.deepEqual((await pool.run(oneTask(f, 5000))).failure, { piece: 0, kind: 'shrank', got: 4096 });
    assert.deepEqual((await pool.run(oneTask(f, 3000))).failure, { piece: 0, kind: 'grew' });
    const gone = (await pool.run(oneTask(path.join(src, 'nope'), 10))).failure;
    assert.equal(gone?.kind, 'error');
    assert.equal(gone?.kind === 'error' && gone.code, 'ENOENT');
    assert.match(gone?.kind === 'error' ? gone.message : '', /^ENOENT: no such file or directory, open '.*\/nope'$/);
    const big = await pool.run({ ...oneTask(f, 4096), out: 9 });
    assert.match(big.error ?? '', /slot outside the arena/);
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.run(oneTask(path.join(src, 'rand'), 10)), /closed/);
});

test('a pending task keeps the process alive until its result arrives; an idle pool does not', () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const script = (closeIt: boolean, runIt: boolean) => `
    import { NativeTaskPool } from ${JSON.stringify(path.join(here, 'native-pool.ts'))};
    import { createArena, Piece } from ${JSON.stringify(path.join(here, 'task.ts'))};
    const pool = new NativeTaskPool({ name: 'lz4', blockSize: 131072 }, 2, createArena(1 << 20, 2));
    if (${runIt}) {
      const paths = Buffer.from(${JSON.stringify(path.join(src, 'rand'))});
      pool.run({ id: 0, pieces: new Float64Array([0, 0, 200000, Piece.END]), paths: new Uint8Array(paths), pathEnds: new Uint32Array([paths.length]), out: 0, input: -1 })
        .then((r) => { console.log('length', r.length); ${closeIt ? 'return pool.close();' : ''} });
    }
  `;
  for (const [closeIt, runIt, want] of [[true, true, 'length 200000\n'], [false, true, 'length 200000\n'], [false, false, '']] as const) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(closeIt, runIt)], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.signal, null, `timed out (closed: ${closeIt}, ran: ${runIt}): the pool kept the process alive`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, want);
  }
});
