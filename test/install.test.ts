// Installed like any npm CLI: `npm pack` gives a tarball holding only what runs; installed globally into an empty
// prefix (its xz binding compiled by node-gyp during the install), `mkportable build` works from any folder, and a
// config that imports 'mkportable' (the README's example) loads in a folder with no node_modules.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { hasCommand, IN_CI, REPO, runCommand, tempDir } from './support/env.js';

const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
// Install scripts compile three native addons (ours, lz4, zstd-napi): they need a compiler and liblzma's headers.
const missing = ['make', 'g++', 'python3'].filter((c) => !hasCommand(c));
if (!existsSync('/usr/include/lzma.h')) missing.push('liblzma-dev');
if (!hasCommand('memcached')) missing.push('memcached (the README example packs it)');

/** The README's example config: the first ```ts block of "Using it". */
function readmeConfig(): string {
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const m = /```ts\n(\/\/ portable\.config\.ts\n[\s\S]*?)```/.exec(readme);
  assert.ok(m, 'README has a portable.config.ts example');
  assert.match(m[1], /import \{ defineConfig \} from 'mkportable';/);
  return m[1];
}

// zstd-napi first tries to download a prebuilt binary; building from source keeps the install off the network.
const npmEnv = { ...process.env, npm_config_build_from_source: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

if (missing.length && !IN_CI) {
  test('npm pack and a global install', { skip: `prerequisites missing: ${missing.join('; ')}` }, () => {});
} else {
  describe('npm pack and a global install', { timeout: 20 * 60_000 }, () => {
    let work: string;
    let tarball: string;
    let prefix: string;
    before(async () => {
      if (missing.length) throw new Error(`prerequisite missing in CI: ${missing.join('; ')}`);
      work = tempDir('mkp-install-');
      // dist/ is fresh: the test runner compiles before running tests. --ignore-scripts keeps prepare from
      // rewriting dist/ under the feet of other test files running now.
      const p = await runCommand('npm', ['pack', '--ignore-scripts', '--pack-destination', work, '--json'], { env: npmEnv });
      assert.equal(p.code, 0, p.stderr);
      tarball = path.join(work, (JSON.parse(p.stdout) as { filename: string }[])[0].filename);
      prefix = path.join(work, 'prefix');
    });
    after(() => {
      if (work) rmSync(work, { recursive: true, force: true });
    });

    test('the tarball holds only what runs, and no file: dependency', () => {
      assert.equal(path.basename(tarball), `mkportable-${pkg.version}.tgz`);
      for (const [name, spec] of Object.entries(pkg.dependencies)) assert.doesNotMatch(spec, /^(file|link):/, name);
      const list = spawnSync('tar', ['tzf', tarball], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      assert.ok(list.includes('package/dist/src/index.js'));
      assert.ok(list.includes('package/bin/mkportable.js'));
      assert.ok(list.includes('package/binding.gyp'));
      assert.ok(list.includes('package/src/native/xz.c'));
      assert.ok(list.includes('package/scripts/portabled-rootfs.sh'), 'mkportable try builds its rootfs with it');
      const extra = list.filter((f) => /\.test\.|^package\/test\/|^package\/src\/.*\.ts$|\.node$|^package\/build\/|node_modules/.test(f));
      assert.deepEqual(extra, [], 'no tests, sources or prebuilt objects');
    });

    test('npm install -g into an empty prefix builds the addon; mkportable build works from any folder', async () => {
      const i = await runCommand('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', tarball], { env: npmEnv, cwd: work });
      assert.equal(i.code, 0, `${i.stdout}\n${i.stderr}`);
      const installed = path.join(prefix, 'lib/node_modules/mkportable');
      assert.ok(existsSync(path.join(installed, 'build/Release/mkportable_native.node')), 'native addon compiled at install');
      const bin = path.join(prefix, 'bin/mkportable');
      const v = await runCommand(bin, ['--version'], { cwd: '/' });
      assert.equal(v.stdout.trim(), pkg.version);

      const demo = path.join(work, 'demo');
      mkdirSync(demo);
      for (const f of readdirSync(path.join(REPO, 'examples/demo'))) copyFileSync(path.join(REPO, 'examples/demo', f), path.join(demo, f));
      const b = await runCommand(bin, ['build', '--squash-compression', 'xz', '--json'], { cwd: demo });
      assert.equal(b.code, 0, b.stderr);
      const result = JSON.parse(b.stdout) as { image: string; sha256: string };
      assert.equal(result.image, path.join(demo, 'result/demo_1.0.raw'));
      const ins = await runCommand(bin, ['inspect', result.image], { cwd: '/' });
      assert.equal(ins.code, 0, ins.stdout + ins.stderr);
      // The same bytes as the checkout's own build.
      const local = await runCommand(process.execPath, [path.join(REPO, 'bin/mkportable.js'), 'build', demo, '--squash-compression', 'xz', '--out', path.join(work, 'local'), '--json']);
      assert.equal((JSON.parse(local.stdout) as { sha256: string }).sha256, result.sha256);
    });

    test("the README's example config loads in a folder with no node_modules: global install and a checkout", async () => {
      const dir = path.join(work, 'readme');
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'portable.config.ts'), readmeConfig());
      copyFileSync(path.join(REPO, 'examples/memcached/memcached.service'), path.join(dir, 'memcached.service'));
      assert.ok(!existsSync(path.join(dir, 'node_modules')));
      const g = await runCommand(path.join(prefix, 'bin/mkportable'), ['build', '--out', 'global', '--json'], { cwd: dir });
      assert.equal(g.code, 0, g.stderr);
      assert.ok(existsSync(path.join(dir, 'global/memcached_1.6.raw')));
      // What npx runs is the same: a bin whose package sits in a node_modules far from the config. So is a checkout.
      const x = await runCommand(process.execPath, [path.join(REPO, 'bin/mkportable.js'), 'build', '--out', 'checkout', '--json'], { cwd: dir });
      assert.equal(x.code, 0, x.stderr);
      assert.equal((JSON.parse(x.stdout) as { sha256: string }).sha256, (JSON.parse(g.stdout) as { sha256: string }).sha256);
      // A .mjs config does the same import without tsx.
      const m = path.join(work, 'mjs');
      mkdirSync(m);
      writeFileSync(path.join(m, 'portable.config.mjs'), readmeConfig().replace('// portable.config.ts\n', ''));
      copyFileSync(path.join(REPO, 'examples/memcached/memcached.service'), path.join(m, 'memcached.service'));
      const mj = await runCommand(path.join(prefix, 'bin/mkportable'), ['build', '--out', 'out'], { cwd: m });
      assert.equal(mj.code, 0, mj.stderr);
    });
  });
}
