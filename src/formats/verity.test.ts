import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  HashTreeBuilder, checkTree, deriveVerityIdentity, encodeVeritySuperblock, formatUuid, parseVeritySuperblock, treeGeometry,
  type VeritySuperblock,
} from './verity.js';

const BS = 4096;
const sha = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

async function build(data: Uint8Array, salt: Uint8Array, chunk = data.length) {
  const file = new Uint8Array(treeGeometry(data.length / BS).size);
  const b = new HashTreeBuilder({ dataBlocks: data.length / BS, salt, sink: (at, block) => void file.set(block, at) });
  for (let i = 0; i < data.length; i += chunk) await b.push(data.subarray(i, i + chunk));
  return { root: Buffer.from(await b.finish()), file, geometry: b.geometry };
}

test('tree geometry: levels as cryptsetup counts them, top level first after the superblock', () => {
  assert.deepEqual(treeGeometry(1), { dataBlocks: 1, levels: [], size: 4096, digestsPerBlock: 128 });
  assert.deepEqual(treeGeometry(128).levels, [{ offset: 4096, blocks: 1 }]);
  const g129 = treeGeometry(129);
  assert.deepEqual(g129.levels, [{ offset: 8192, blocks: 2 }, { offset: 4096, blocks: 1 }]);
  assert.equal(g129.size, 16384);
  const g = treeGeometry(16385);
  assert.deepEqual(g.levels.map((l) => l.blocks), [129, 2, 1]);
  assert.deepEqual(g.levels.map((l) => l.offset), [4096 * 4, 4096 * 2, 4096]);
  for (const n of [1, 2, 127, 128, 129, 16384, 16385, 2097153]) {
    // cryptsetup: levels = smallest L with (N-1) >> (7L) == 0.
    let levels = 0;
    while ((n - 1) / 2 ** (7 * levels) >= 1) levels++;
    assert.equal(treeGeometry(n).levels.length, levels, `${n} blocks`);
  }
});

test('root hash of one block is sha256(salt ‖ block); of two, sha256(salt ‖ their digests, zero-filled)', async () => {
  const salt = randomBytes(32);
  const one = randomBytes(BS);
  assert.deepEqual((await build(one, salt)).root, sha(salt, one));
  const two = randomBytes(2 * BS);
  const level0 = new Uint8Array(BS);
  level0.set(sha(salt, two.subarray(0, BS)), 0);
  level0.set(sha(salt, two.subarray(BS)), 32);
  const r = await build(two, salt);
  assert.deepEqual(r.root, sha(salt, level0));
  assert.deepEqual(r.file.subarray(4096, 8192), level0);
});

test('the tree does not depend on how the data is chunked', async () => {
  const salt = randomBytes(32);
  const data = randomBytes(300 * BS);
  const whole = await build(data, salt);
  for (const chunk of [1000, 4096, 65536 + 17]) {
    const r = await build(data, salt, chunk);
    assert.deepEqual(r.root, whole.root, `chunks of ${chunk}`);
    assert.deepEqual(r.file, whole.file);
  }
});

test('the builder refuses a partial last block and a wrong block count', async () => {
  const b = new HashTreeBuilder({ dataBlocks: 2, salt: new Uint8Array(32), sink: () => {} });
  await b.push(new Uint8Array(BS + 10));
  await assert.rejects(b.finish(), /pad it to 4096/);
  const c = new HashTreeBuilder({ dataBlocks: 2, salt: new Uint8Array(32), sink: () => {} });
  await c.push(new Uint8Array(BS));
  await assert.rejects(c.finish(), /got 1 data blocks, 2 announced/);
});

test('superblock: the layout veritysetup writes, and back', () => {
  const { salt, uuid } = deriveVerityIdentity(sha(new Uint8Array([1])));
  const sb: VeritySuperblock = { version: 1, hashType: 1, uuid, algorithm: 'sha256', dataBlockSize: 4096, hashBlockSize: 4096, dataBlocks: 221, salt };
  const b = encodeVeritySuperblock(sb);
  assert.equal(b.length, 4096);
  assert.equal(Buffer.from(b.subarray(0, 8)).toString('latin1'), 'verity\0\0');
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(8, true), 1);
  assert.equal(v.getUint32(64, true), 4096);
  assert.equal(v.getBigUint64(72, true), 221n);
  assert.equal(v.getUint16(80, true), 32);
  assert.deepEqual(b.subarray(88, 120), salt);
  assert.ok(b.subarray(120).every((x) => x === 0));
  assert.deepEqual(parseVeritySuperblock(b), sb);
  assert.match(String(parseVeritySuperblock(new Uint8Array(512))), /no "verity" superblock/);
});

test('salt and UUID derive from the seed: the same seed gives the same, another seed others; the UUID is v4', () => {
  const a = deriveVerityIdentity(sha(Buffer.from('a')));
  assert.deepEqual(deriveVerityIdentity(sha(Buffer.from('a'))), a);
  const b = deriveVerityIdentity(sha(Buffer.from('b')));
  assert.notDeepEqual(a.salt, b.salt);
  assert.match(formatUuid(a.uuid), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(a.salt.length, 32);
});

test('checkTree finds a flipped data byte, a flipped hash byte and a wrong root, anywhere', async () => {
  const salt = randomBytes(32);
  const n = 16385;
  const data = randomBytes(n * BS);
  const { root, file } = await build(data, salt);
  const sb: VeritySuperblock = { version: 1, hashType: 1, uuid: new Uint8Array(16), algorithm: 'sha256', dataBlockSize: BS, hashBlockSize: BS, dataBlocks: n, salt };
  const reader = (b: Uint8Array) => async (at: number, len: number) => b.subarray(at, at + len);

  const clean = await checkTree(sb, reader(data), reader(file));
  assert.deepEqual(Buffer.from(clean.storedRoot), root);
  assert.equal(clean.badDataCount, 0);
  assert.deepEqual(clean.badHashBlocks, []);

  for (const block of [0, 127, 128, 9000, n - 1]) {
    const d = Buffer.from(data);
    d[block * BS + 123] ^= 1;
    const r = await checkTree(sb, reader(d), reader(file));
    assert.deepEqual(r.badDataBlocks, [block]);
    assert.deepEqual(Buffer.from(r.storedRoot), root, 'the stored tree itself is intact');
  }

  const g = treeGeometry(n);
  for (const [level, index] of [[0, 5], [1, 1], [2, 0]] as const) {
    const f = Buffer.from(file);
    f[g.levels[level].offset + index * BS + 7] ^= 0x80;
    const r = await checkTree(sb, reader(data), reader(f));
    if (level === 2) {
      assert.notDeepEqual(Buffer.from(r.storedRoot), root, 'a changed top block changes the root');
    } else {
      assert.deepEqual(r.badHashBlocks, [[level, index]]);
      assert.equal(r.badDataCount, 0, 'data under a bad level-0 block is not blamed');
    }
  }
});

test('a one-block tree: the root is the digest of the data block', async () => {
  const salt = randomBytes(32);
  const data = randomBytes(BS);
  const { root, file } = await build(data, salt);
  const sb: VeritySuperblock = { version: 1, hashType: 1, uuid: new Uint8Array(16), algorithm: 'sha256', dataBlockSize: BS, hashBlockSize: BS, dataBlocks: 1, salt };
  const r = await checkTree(sb, async () => data, async (at, len) => file.subarray(at, at + len));
  assert.deepEqual(Buffer.from(r.storedRoot), root);
  data[5] ^= 1;
  const bad = await checkTree(sb, async () => data, async (at, len) => file.subarray(at, at + len));
  assert.notDeepEqual(Buffer.from(bad.storedRoot), root);
});
