import { test } from 'node:test';
import assert from 'node:assert/strict';
import { architectureOfElf, dpsArchitecture, dpsLabel, dpsPartitionType, encodeSignaturePartition, parseSignaturePartition } from './dps.js';

test('ELF machines map to the DPS architecture names systemd uses', () => {
  assert.equal(architectureOfElf(62, 64, 'little'), 'x86-64');
  assert.equal(architectureOfElf(3, 32, 'little'), 'x86');
  assert.equal(architectureOfElf(183, 64, 'little'), 'arm64');
  assert.equal(architectureOfElf(40, 32, 'little'), 'arm');
  assert.equal(architectureOfElf(243, 64, 'little'), 'riscv64');
  assert.equal(architectureOfElf(21, 64, 'little'), 'ppc64-le');
  assert.equal(architectureOfElf(21, 64, 'big'), 'ppc64');
  assert.equal(architectureOfElf(22, 64, 'big'), 's390x');
  assert.equal(architectureOfElf(8, 64, 'little'), 'mips64-le');
  assert.equal(architectureOfElf(258, 64, 'little'), 'loongarch64');
  assert.equal(architectureOfElf(183, 64, 'big'), undefined, 'big-endian arm64 has no DPS type');
  assert.equal(architectureOfElf(2, 32, 'big'), undefined, 'sparc has none either');
});

test('partition types and labels per architecture, both ways', () => {
  const x = dpsArchitecture('x86-64')!;
  assert.equal(x.root, '4f68bce3-e8cd-4db1-96e7-fbcaf984b709');
  assert.equal(x.verity, '2c7357ed-ebd2-46d9-aec1-23d437ec2bf5');
  assert.equal(x.veritySig, '41092b05-9fc8-4523-994f-2def0408b176');
  assert.deepEqual([dpsLabel(x, 'root'), dpsLabel(x, 'verity'), dpsLabel(x, 'verity-sig')], ['root-x86-64', 'root-x86-64-verity', 'root-x86-64-verity-sig']);
  assert.deepEqual(dpsPartitionType('df3300ce-d69f-4c92-978c-9bfb0f38d820'), { arch: dpsArchitecture('arm64'), role: 'verity' });
  assert.equal(dpsPartitionType('0fc63daf-8483-4772-8e79-3d69d8477de4'), undefined, 'generic Linux data is not a DPS root');
});

test('the signature partition: compact JSON in repart\'s key order, NUL-padded; read back as systemd does', () => {
  const sig = { rootHash: 'ab'.repeat(32), certificateFingerprint: 'cd'.repeat(32), signature: Buffer.from('sig').toString('base64') };
  const p = encodeSignaturePartition(sig, 16384);
  assert.equal(p.length, 16384);
  const text = Buffer.from(p.subarray(0, p.indexOf(0))).toString();
  assert.equal(text, `{"rootHash":"${sig.rootHash}","certificateFingerprint":"${sig.certificateFingerprint}","signature":"c2ln"}`);
  assert.ok(p.subarray(text.length).every((b) => b === 0));
  assert.deepEqual(parseSignaturePartition(p), sig);
  // Bigger than the minimum: whole 4 KiB blocks.
  assert.equal(encodeSignaturePartition({ ...sig, signature: 'A'.repeat(20000) }, 16384).length, 20480);
});

test('signature partitions systemd refuses are named', () => {
  const good = encodeSignaturePartition({ rootHash: 'ab'.repeat(32), signature: 'c2ln' }, 4096);
  const trailing = good.slice();
  trailing[4000] = 0x41;
  assert.match(String(parseSignaturePartition(trailing)), /non-NUL bytes follow/);
  assert.match(String(parseSignaturePartition(Buffer.from('{"signature":"c2ln"}'))), /rootHash/);
  assert.match(String(parseSignaturePartition(Buffer.from('{"rootHash":"zz","signature":"c2ln"}'))), /rootHash/);
  assert.match(String(parseSignaturePartition(Buffer.from('[1]'))), /not a JSON object/);
  assert.match(String(parseSignaturePartition(Buffer.from('{'))), /not JSON/);
  assert.match(String(parseSignaturePartition(new Uint8Array(5 << 20))), /at most 4 MiB/);
});
