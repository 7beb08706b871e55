import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, decodeGuid, encodeGpt, encodeGuid, GPT_FLAG_READ_ONLY, guidFromBytes, looksLikeGpt, parseGpt, type GptDisk } from './gpt.js';

test('crc32 is the IEEE/zlib CRC-32', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array()), 0);
  assert.equal(crc32(Buffer.from('The quick brown fox jumps over the lazy dog')), 0x414fa339);
  // Incremental use gives the same as one call.
  assert.equal(crc32(Buffer.from('6789'), crc32(Buffer.from('12345'))), 0xcbf43926);
});

test('GUIDs: the first three fields little-endian on disk, the rest as written', () => {
  const g = '4f68bce3-e8cd-4db1-96e7-fbcaf984b709';
  const b = encodeGuid(g);
  assert.equal(Buffer.from(b).toString('hex'), 'e3bc684fcde8b14d96e7fbcaf984b709');
  assert.equal(decodeGuid(b), g);
  assert.equal(guidFromBytes(Buffer.from('00112233445566778899aabbccddeeff', 'hex')), '00112233-4455-6677-8899-aabbccddeeff');
  assert.throws(() => encodeGuid('not-a-guid'), /not a GUID/);
});

const disk: GptDisk = {
  diskGuid: '0d8b2bb9-8a6b-4bf6-8a43-0a4df6d54a12',
  sectors: 8192n,
  partitions: [
    { type: '4f68bce3-e8cd-4db1-96e7-fbcaf984b709', uuid: '11111111-2222-3333-4444-555555555555', firstLba: 2048n, lastLba: 4095n, attributes: GPT_FLAG_READ_ONLY, name: 'root-x86-64' },
    { type: '2c7357ed-ebd2-46d9-aec1-23d437ec2bf5', uuid: '66666666-7777-8888-9999-aaaaaaaaaaaa', firstLba: 4096n, lastLba: 4127n, attributes: GPT_FLAG_READ_ONLY, name: 'root-x86-64-verity' },
  ],
};

function image(d: GptDisk): Uint8Array {
  const { head, tail } = encodeGpt(d);
  const img = new Uint8Array(Number(d.sectors) * 512);
  img.set(head, 0);
  img.set(tail, img.length - tail.length);
  return img;
}
const reader = (img: Uint8Array) => async (o: number, n: number) => img.subarray(o, o + n);

test('encodeGpt then parseGpt: the same disk, no problems; protective MBR and both headers', async () => {
  const img = image(disk);
  assert.ok(looksLikeGpt(img.subarray(0, 1024)));
  assert.equal(img[446 + 4], 0xee);
  assert.equal(new DataView(img.buffer).getUint32(446 + 8, true), 1);
  assert.equal(new DataView(img.buffer).getUint32(446 + 12, true), 8191);
  const parsed = await parseGpt(reader(img), img.length);
  assert.deepEqual(parsed.problems, []);
  assert.equal(parsed.diskGuid, disk.diskGuid);
  assert.deepEqual(parsed.partitions.map(({ index, ...p }) => p), disk.partitions);
  assert.deepEqual(parsed.partitions.map((p) => p.index), [1, 2]);
  // Backup header at the last LBA, its entries 32 sectors before it.
  const backup = img.subarray(img.length - 512);
  assert.equal(Buffer.from(backup.subarray(0, 8)).toString('latin1'), 'EFI PART');
  assert.equal(new DataView(backup.buffer, backup.byteOffset).getBigUint64(72, true), 8191n - 32n);
});

test('parseGpt names damaged headers, entries and a missing backup', async () => {
  const hdr = image(disk);
  hdr[512 + 60] ^= 1;
  assert.ok((await parseGpt(reader(hdr), hdr.length)).problems.some((p) => /primary GPT header: header CRC32/.test(p)));
  const entries = image(disk);
  entries[1024 + 40] ^= 1;
  const pe = (await parseGpt(reader(entries), entries.length)).problems;
  assert.ok(pe.some((p) => /entries: CRC32/.test(p)), pe.join('; '));
  const noBackup = image(disk);
  noBackup.fill(0, noBackup.length - 512);
  assert.ok((await parseGpt(reader(noBackup), noBackup.length)).problems.some((p) => /backup GPT header: no "EFI PART"/.test(p)));
  const truncated = image(disk).subarray(0, 4096 * 512);
  assert.ok((await parseGpt(reader(truncated), truncated.length)).problems.some((p) => /backup GPT header should be at the last LBA/.test(p)));
});

test('encodeGpt refuses overlapping partitions and ones outside the usable sectors', () => {
  const overlap = { ...disk, partitions: [disk.partitions[0], { ...disk.partitions[1], firstLba: 4000n }] };
  assert.throws(() => encodeGpt(overlap), /overlap/);
  const outside = { ...disk, partitions: [{ ...disk.partitions[0], lastLba: 8190n }] };
  assert.throws(() => encodeGpt(outside), /outside the usable sectors/);
});
