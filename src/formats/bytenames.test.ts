import { test } from 'node:test';
import assert from 'node:assert/strict';
import { byteLength, compareNames, escapeBytes, escapeName, escapingReplacer, fromBytes, parseEscapes, toBytes } from './bytenames.js';

const b = (...xs: number[]) => Buffer.from(xs);

/** Deterministic pseudo-random bytes, biased towards the bytes UTF-8 decoding cares about. */
function randomBytes(seed: number, n: number): Buffer {
  let x = seed >>> 0 || 1;
  const next = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), x >>> 0);
  const interesting = [0x00, 0x2f, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x90, 0x8f];
  return Buffer.from(Array.from({ length: n }, () => (next() % 3 === 0 ? next() & 0xff : interesting[next() % interesting.length])));
}

test('every byte string survives fromBytes then toBytes unchanged', () => {
  for (let seed = 1; seed <= 3000; seed++) {
    const bytes = randomBytes(seed, seed % 40);
    const s = fromBytes(bytes);
    assert.ok(toBytes(s).equals(bytes), `seed ${seed}: ${bytes.toString('hex')}`);
    assert.equal(byteLength(s), bytes.length);
  }
  // Every single byte and every two-byte string.
  for (let i = 0; i < 256; i++) for (let j = 0; j < 256; j += 7) assert.ok(toBytes(fromBytes(b(i, j))).equals(b(i, j)));
});

test('valid UTF-8 decodes as usual; only the other bytes become U+DC80..U+DCFF', () => {
  assert.equal(fromBytes(Buffer.from('héllo 🦀')), 'héllo 🦀');
  assert.equal(fromBytes(b(0x72, 0x61, 0x77, 0x2d, 0xff, 0xfe)), 'raw-\udcff\udcfe');
  // Overlong forms, encoded surrogates and code points past U+10FFFF are not UTF-8: byte by byte.
  assert.equal(fromBytes(b(0xc0, 0xaf)), '\udcc0\udcaf');
  assert.equal(fromBytes(b(0xed, 0xa0, 0x80)), '\udced\udca0\udc80');
  assert.equal(fromBytes(b(0xf4, 0x90, 0x80, 0x80)), '\udcf4\udc90\udc80\udc80');
  // A truncated sequence keeps the bytes that follow it.
  assert.equal(fromBytes(b(0xe2, 0x82, 0x41)), '\udce2\udc82A');
  assert.ok(toBytes('héllo 🦀').equals(Buffer.from('héllo 🦀')));
});

test('names compare in unsigned byte order, the order squashfs sorts them in', () => {
  const names = [b(0x61), b(0x7f), b(0x80), b(0xc3, 0xa9), b(0xef, 0xbf, 0xbd), b(0xf0, 0x9f, 0xa6, 0x80), b(0xff)].map(fromBytes);
  const shuffled = [...names].reverse();
  assert.deepEqual(shuffled.sort(compareNames), names);
  // U+FFFD (EF BF BD) sorts before U+1F980 (F0 …) as bytes, though not as UTF-16 code units.
  assert.ok(compareNames('\ufffd', '🦀') < 0);
});

test('people see \\xHH for bytes that are not UTF-8 and for control characters; parseEscapes reads it back', () => {
  const raw = fromBytes(b(0x72, 0x61, 0x77, 0x2d, 0xff, 0xfe));
  assert.equal(escapeName(raw), 'raw-\\xff\\xfe');
  assert.equal(escapeName('a\nb\tc\x7f'), 'a\\x0ab\\x09c\\x7f');
  assert.equal(escapeName('plain é 🦀 back\\slash'), 'plain é 🦀 back\\slash');
  assert.equal(escapeName(escapeName(raw)), escapeName(raw), 'escaping twice changes nothing');
  assert.equal(escapeBytes(`${raw}\n`), 'raw-\\xff\\xfe\n', 'escapeBytes keeps line breaks');
  assert.equal(escapeName('\ud800x'), '\\ud800x', 'a lone surrogate that is no byte');
  assert.equal(parseEscapes('raw-\\xff\\xfe'), raw);
  assert.equal(parseEscapes('/x/\\xc3\\xa9'), '/x/é', 'escaped UTF-8 is UTF-8');
  assert.equal(parseEscapes('no escapes'), 'no escapes');
  assert.ok(toBytes(parseEscapes(escapeName(fromBytes(b(0x01, 0x80, 0x41))))).equals(b(0x01, 0x80, 0x41)));
});

test('JSON output shows the escaped form in values and keys', () => {
  const raw = fromBytes(b(0x66, 0xff));
  const json = JSON.stringify({ path: raw, list: [raw], xattrs: { [`user.${raw}`]: 1 }, n: 1 }, escapingReplacer);
  assert.equal(json, '{"path":"f\\\\xff","list":["f\\\\xff"],"xattrs":{"user.f\\\\xff":1},"n":1}');
  assert.deepEqual(JSON.parse(json).path, 'f\\xff');
});
