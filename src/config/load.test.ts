import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { findConfig, loadConfigFile } from './load.js';
import { normalizeOptions } from './settings.js';
import { resolveOptions } from './resolve.js';
import { parseBlockSize, compressionWords } from './size.js';
import { MkportableError } from '../errors.js';
import { tempDir } from '../../test/support/env.js';

const tmp = (t: TestContext) => tempDir('mkportable-config-', t);

test('each config file kind loads, and relative units are taken from its folder', async (t) => {
  const bodies: Record<string, string> = {
    'portable.config.json': JSON.stringify({ pname: 'demo', version: '1', units: ['demo.service'] }),
    'portable.config.ts': "const v: string = '1';\nexport default { pname: 'demo', version: v, units: ['demo.service'] } as const;\n",
    'portable.config.mts': "export default async () => ({ pname: 'demo', version: '1' as string, units: ['demo.service'] });\n",
    'portable.config.mjs': "export default { pname: 'demo', version: '1', units: ['demo.service'] };\n",
    'portable.config.js': "export default { pname: 'demo', version: '1', units: ['demo.service'] };\n",
  };
  for (const [name, body] of Object.entries(bodies)) {
    const dir = tmp(t);
    writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    writeFileSync(path.join(dir, name), body);
    const file = await findConfig(dir);
    assert.equal(path.basename(file), name);
    const o = await loadConfigFile(file);
    assert.equal(o.pname, 'demo', name);
    assert.equal(o.baseDir, dir);
  }
});

test('the seed\'s hyphenated option names are accepted', () => {
  const o = normalizeOptions('x', { pname: 'a', 'squash-compression': 'gzip', 'squash-block-size': '128K' });
  assert.equal(o.squashCompression, 'gzip');
  assert.equal(o.squashBlockSize, '128K');
});

test('unknown keys, wrong types and a key given twice are refused with the file named', () => {
  const err = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof MkportableError && e.code === 'CONFIG_INVALID' && re.test(e.message));
  err(() => normalizeOptions('cfg.json', { pnam: 'x' }), /^cfg\.json: unknown option 'pnam'/);
  err(() => normalizeOptions('cfg.json', { units: 'a.service' }), /'units' must be a list of unit files/);
  // No units: only a base naming the extensions it serves; kinds and a base only where they fit.
  err(() => resolveOptions({ pname: 'demo', version: '1', units: [] }, 'cfg.json'), /^cfg\.json: 'units' is empty: a base image without units needs osRelease\.PORTABLE_PREFIXES/);
  assert.equal(resolveOptions({ pname: 'rt', version: '1', units: [], osRelease: { PORTABLE_PREFIXES: 'app' } }).units.length, 0);
  err(() => resolveOptions({ pname: 'demo', version: '1', units: ['d.service'], kind: 'layer' as never }), /'kind' must be one of portable, extension, sysext, confext/);
  err(() => resolveOptions({ pname: 'demo', version: '1', units: ['d.service'], base: 'b.raw' }), /'base' is for kind extension, sysext or confext/);
  assert.equal(resolveOptions({ pname: 'tools', version: '1', kind: 'sysext' }).kind, 'sysext');
  err(() => normalizeOptions('cfg.json', { symlinks: [{ object: '/a' }] }), /symlinks/);
  err(() => normalizeOptions('cfg.json', { contents: '/usr' }), /'contents' must be a list of strings/);
  err(() => normalizeOptions('cfg.json', { squashCompression: 'xz', 'squash-compression': 'gzip' }), /given twice/);
  err(() => normalizeOptions('cfg.json', [1]), /must be an object/);
});

test('invalid JSON and a missing config name the file', async (t) => {
  const dir = tmp(t);
  writeFileSync(path.join(dir, 'portable.config.json'), '{ pname: ');
  await assert.rejects(loadConfigFile(path.join(dir, 'portable.config.json')), /portable\.config\.json: invalid JSON/);
  await assert.rejects(findConfig(path.join(dir, 'nope')), /nope: no such file/);
  const empty = tmp(t);
  await assert.rejects(findConfig(empty), (e: unknown) => e instanceof MkportableError && e.code === 'CONFIG_NOT_FOUND');
});

test('defaults: xz with a 100% dictionary, 1M blocks, ./result', () => {
  const r = resolveOptions({ pname: 'demo', version: '1', units: ['demo.service'] });
  assert.deepEqual(r.compression, ['xz', '-Xdict-size', '100%']);
  assert.equal(r.blockSize, 1 << 20);
  assert.equal(r.outDir, path.resolve('result'));
});

test('block sizes and compression strings', () => {
  assert.equal(parseBlockSize('1M'), 1048576);
  assert.equal(parseBlockSize('128K'), 131072);
  assert.equal(parseBlockSize(131072), 131072);
  assert.equal(parseBlockSize('4096'), 4096);
  for (const bad of ['2M', '1K', '100K', 'big', 3000]) assert.throws(() => parseBlockSize(bad), /block size|not a size/);
  assert.deepEqual(compressionWords(' zstd  -Xcompression-level 19 '), ['zstd', '-Xcompression-level', '19']);
  assert.throws(() => compressionWords('brotli'), /unknown compressor 'brotli'/);
});

test('contents and symlinks must be absolute paths', () => {
  assert.throws(() => resolveOptions({ pname: 'demo', version: '1', units: ['d.service'], contents: ['usr/bin'] }), /must be an absolute path/);
});

test('every problem of a config comes in one error, listed on one line', () => {
  assert.throws(() => normalizeOptions('cfg.json', { pnam: 'x', version: 1, units: 'a.service', 'squash-compresion': 'gzip' }), (e: unknown) => {
    assert.ok(e instanceof MkportableError);
    assert.equal(e.code, 'CONFIG_INVALID');
    assert.equal(e.message, "cfg.json: 4 problems: unknown option 'pnam' (did you mean 'pname'?); 'version' must be a string, got 1; "
      + "'units' must be a list of unit files, got \"a.service\"; unknown option 'squash-compresion' (did you mean 'squash-compression'?)");
    assert.equal(e.problems?.length, 4);
    return true;
  });
  // The checks after the types run to the end too: names, paths, closure, compression.
  assert.throws(() => resolveOptions({ pname: 'my_app', version: '1', units: ['u.service'], contents: ['usr'], closure: 'half' as 'full', squashCompression: 'brotli' }),
    (e: unknown) => e instanceof MkportableError && e.problems?.length === 4 && /^options: 4 problems: .*'closure' must be.*pname 'my_app' contains '_'.*'usr' must be an absolute path.*brotli/.test(e.message));
  assert.throws(() => resolveOptions({ units: ['u.service'] } as never), { message: "options: 'pname' and 'version' are required" });
});
