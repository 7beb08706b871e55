// A whole file as one .xz stream, a piece at a time (publish --compress xz): the stream decodes to the input, and
// output is written while input is still being read, in pieces of at most 1 MiB, so a release of any size never
// sits in memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { xzBinding, xzStreamFile } from './xz.js';

test('xzStreamFile writes one .xz stream as it reads, in bounded pieces, that decodes to the input', async () => {
  // Incompressible stretches around a long run of zeros, in uneven chunks.
  const input = Buffer.concat([randomBytes(2 << 20), Buffer.alloc(48 << 20), randomBytes(1 << 20)]);
  const step = 700_001;
  let pulled = 0;
  async function* chunks() {
    for (let at = 0; at < input.length; at += step) {
      pulled++;
      yield input.subarray(at, at + step);
    }
  }
  const pieces: Buffer[] = [];
  let pulledAtFirstWrite = -1;
  await xzStreamFile(chunks(), async (bytes) => {
    if (pulledAtFirstWrite < 0) pulledAtFirstWrite = pulled;
    assert.ok(bytes.length > 0 && bytes.length <= 1 << 20, `a piece of ${bytes.length} bytes`);
    pieces.push(Buffer.from(bytes)); // copied: the encoder reuses its buffer once write resolves
  });
  const total = Math.ceil(input.length / step);
  assert.ok(pulledAtFirstWrite > 0 && pulledAtFirstWrite < total / 2, `first output after ${pulledAtFirstWrite} of ${total} chunks`);
  const xz = Buffer.concat(pieces);
  assert.deepEqual([...xz.subarray(0, 6)], [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'an .xz stream header');
  assert.ok(xz.length < input.length / 10, `${xz.length} bytes`);
  const back = new Uint8Array(input.length + 1);
  const n = xzBinding().decode(xz, back);
  assert.equal(n, input.length);
  assert.ok(Buffer.from(back.buffer, 0, n).equals(input), 'decodes to the input');
});

test('xzStreamFile: an empty input is an empty .xz stream', async () => {
  const pieces: Buffer[] = [];
  await xzStreamFile((async function* () {})(), async (b) => void pieces.push(Buffer.from(b)));
  const xz = Buffer.concat(pieces);
  assert.equal(xzBinding().decode(xz, new Uint8Array(16)), 0);
});
