// The published package holds what runs and nothing else: the compiled library and CLI, the bin script, the native
// addon's sources (built at install), the script that makes the rootfs `src/try/` boots, and the README; no tests,
// fixtures, fuzz harness, benchmarks or other scripts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO, runCommand } from './support/env.js';

test('npm pack lists only what runs', async () => {
  assert.ok(existsSync(path.join(REPO, 'dist/src/index.js')), 'compile first (npm test does)');
  // --ignore-scripts: prepack would remove dist/ under the other tests' feet.
  const r = await runCommand('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO });
  assert.equal(r.code, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0].files.map((f) => f.path).sort();
  const roots = ['dist/src/', 'bin/', 'src/native/'];
  const loose = ['package.json', 'README.md', 'scripts/portabled-rootfs.sh', 'scripts/cached-tree.sh', 'binding.gyp'];
  for (const f of files) {
    assert.ok(loose.includes(f) || roots.some((r) => f.startsWith(r)), `${f} is in the package`);
    assert.doesNotMatch(f, /\.test\.|(^|\/)test\/|fixture|fuzz|testdata|test-data|\/build\//i, `${f} is test or build-time output`);
    if (f.startsWith('dist/src/')) {
      // Every compiled file comes from a library source that is still there (not a stale output or a test).
      const source = f.replace(/^dist\//, '').replace(/(\.d)?\.js$/, '.ts').replace(/\.d\.ts$/, '.ts');
      if (existsSync(path.join(REPO, source))) assert.doesNotMatch(source, /\.test\.ts$/);
    }
  }
  for (const needed of ['bin/mkportable.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/bin.js', 'dist/src/squashfs/worker.js',
    'dist/src/native/fs.js', 'binding.gyp', 'src/native/native.h', 'src/native/addon.c', 'src/native/xz.c', 'src/native/fs.c',
    'src/native/index.cjs', 'scripts/portabled-rootfs.sh', 'scripts/cached-tree.sh', 'README.md']) {
    assert.ok(files.includes(needed), `${needed} is missing from the package`);
  }
});
