// Layered images without a container: the extension holds only what the base lacks, a mismatch with the base stops
// the build before any work, inspect judges the stack by 252's and 257's naming rules, and the overlay Source
// shows layers the way the overlay mount does.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { portableService, directorySource, hostSource, MkportableError } from '../src/index.js';
import { overlaySource } from '../src/sources/overlay.js';
import { openLayers, inspectStack } from '../src/inspect/stack.js';
import { acceptedReleaseNames, checkExtensionRelease } from '../src/systemd/portabled.js';
import { REPO, tempDir } from './support/env.js';

const out = tempDir('mkportable-layers-', { after });
const appRoot = path.join(REPO, 'examples/app/root');
const appUnit = path.join(REPO, 'examples/app/app.service');

let built: Promise<{ base: string; ext: string; provided: string[]; extSize: number; standaloneSize: number }> | undefined;
function buildStack() {
  built ??= (async () => {
    const runtime = await import(path.join(REPO, 'examples/runtime/portable.config.ts'));
    const base = await portableService({ ...runtime.default, outDir: out, baseDir: path.join(REPO, 'examples/runtime') });
    const ext = await portableService({
      pname: 'app', version: '1', kind: 'extension', units: [appUnit], from: `dir:${appRoot}`, closure: 'minimal',
      contents: ['/usr/lib/app/app.sh'], base: base.image, outDir: out,
    });
    // The same app as one standalone image: the script from its folder, bash and the rest from the build host.
    const standalone = await portableService(
      { pname: 'app', version: '1', units: [appUnit], contents: ['/usr/lib/app/app.sh', '/usr/bin/cat', '/usr/bin/date', '/usr/bin/sleep'], outDir: path.join(out, 'standalone') },
      { source: overlaySource([directorySource(appRoot, 'app'), hostSource()]) },
    );
    return { base: base.image, ext: ext.image, provided: ext.base!.provided, extSize: ext.size, standaloneSize: standalone.size };
  })();
  return built;
}

test('the extension repeats no file of the base, and is a fraction of a standalone image', async () => {
  const { base, ext, provided, extSize, standaloneSize } = await buildStack();
  const { layers, close } = await openLayers([base, ext]);
  try {
    const [b, e] = layers;
    const files: string[] = [];
    const walk = async (dir: string) => {
      for (const n of await e.source.readdir(dir)) {
        const p = dir === '/' ? `/${n}` : `${dir}/${n}`;
        const st = await e.source.lstat(p);
        if (st?.type === 'dir') await walk(p);
        else files.push(p);
      }
    };
    await walk('/');
    assert.ok(files.includes('/usr/lib/app/app.sh') && files.includes('/usr/lib/systemd/system/app.service'), files.join(' '));
    for (const f of files) {
      const there = await b.source.lstat(f);
      if (!there) continue;
      const same = there.type === 'file' && Buffer.from(await b.source.readFile(f)).equals(Buffer.from(await e.source.readFile(f)));
      assert.ok(!same, `${f} is in both the base and the extension`);
    }
    assert.ok(provided.includes('/usr/bin/bash'), `the base provides bash: ${provided.join(' ')}`);
    assert.ok(extSize * 20 < standaloneSize, `extension ${extSize} bytes vs standalone ${standaloneSize}`);
    console.log(`# extension app_1.raw ${extSize} bytes, standalone app_1.raw ${standaloneSize} bytes`);
  } finally {
    await close();
  }
});

test('an extension whose ID or VERSION_ID differs from the base is refused before any work', async () => {
  const { base } = await buildStack();
  for (const osRelease of [{ ID: 'fedora' }, { VERSION_ID: '11' }]) {
    const dir = path.join(out, `bad-${Object.keys(osRelease)[0]}`);
    await assert.rejects(
      portableService({ pname: 'app', version: '1', kind: 'extension', units: [appUnit], from: `dir:${appRoot}`, closure: 'minimal', contents: ['/usr/lib/app/app.sh'], base, osRelease, outDir: dir }),
      (e: unknown) => e instanceof MkportableError && /does not match the base's/.test(e.message) && e.message.includes(base),
    );
    assert.equal(await fs.stat(dir).then(() => true, () => false), false, 'no output folder may be made');
  }
});

test('inspect judges the stack: names by 252 and 257 rules, prefixes, units across layers', async (t) => {
  const { base, ext } = await buildStack();
  const dir = tempDir('mkportable-layers-names-', t);
  // Renamed: only the strict=0 xattr lets 252 take extension-release.app_1 for app_7.raw.
  const renamed = path.join(dir, 'app_7.raw');
  await fs.copyFile(ext, renamed);
  const { layers, close } = await openLayers([base, ext, renamed]);
  try {
    const ok = await inspectStack(layers[0], [layers[2]], { prefixes: ['app'] });
    assert.equal(ok.ok, true, JSON.stringify(ok.problems));
    assert.deepEqual(ok.units, { app: ['app.service'] });
    assert.equal(ok.extensions[0].release[252], '/usr/lib/extension-release.d/extension-release.app_1');
    // A prefix outside every PORTABLE_PREFIXES, and no unit for it in any layer: attach refuses.
    const wrongPrefix = await inspectStack(layers[0], [layers[1]], { prefixes: ['other'] });
    assert.ok(wrongPrefix.problems.some((p) => p.rule === 'prefix-not-in-portable-prefixes'));
    assert.ok(wrongPrefix.problems.some((p) => p.rule === 'no-matching-units'));
    // The same file without the xattr: renamed, neither 252 (literal name) nor 257 (app_7 or app) finds it.
    const noStrict = { ...layers[1], xattrs: async () => ({}) };
    const strict = await inspectStack(layers[0], [{ ...noStrict, name: 'app_7.raw' }], { prefixes: ['app'] });
    assert.deepEqual(strict.extensions[0].release, { 252: undefined, 257: undefined });
    assert.ok(strict.problems.some((p) => p.rule === 'extension-release-missing' && /systemd 252/.test(p.message)));
    const literal = await inspectStack(layers[0], [noStrict], { prefixes: ['app'] });
    assert.equal(literal.ok, true, JSON.stringify(literal.problems));
  } finally {
    await close();
  }
});

test('naming and matching rules of 252 and 257', () => {
  assert.deepEqual(acceptedReleaseNames('app_1.0.raw', 252), ['app_1.0']);
  assert.deepEqual(acceptedReleaseNames('/x/app_1.0.raw', 257), ['app_1.0', 'app']);
  assert.deepEqual(acceptedReleaseNames('tools+2.sysext.raw', 257), ['tools+2.sysext', 'tools+2', 'tools']);
  const base = { ID: 'debian', VERSION_ID: '12', ID_LIKE: 'rhel' };
  const m = (ext: Record<string, string>, systemd: 252 | 257 = 252) =>
    checkExtensionRelease(ext, base, 'extension', { scope: 'portable', hostArch: 'x86-64', systemd }).map((x) => x.rule);
  assert.deepEqual(m({ ID: 'debian', VERSION_ID: '12', SYSEXT_SCOPE: 'portable' }), []);
  assert.deepEqual(m({ ID: '_any', SYSEXT_SCOPE: 'portable' }), []);
  assert.deepEqual(m({ ID: 'debian', VERSION_ID: '11' }), ['extension-version-mismatch']);
  assert.deepEqual(m({ ID: 'rhel', VERSION_ID: '12' }), ['extension-id-mismatch']);
  assert.deepEqual(m({ ID: 'rhel', VERSION_ID: '12' }, 257), []);
  assert.deepEqual(m({ ID: 'debian', VERSION_ID: '12', SYSEXT_SCOPE: 'system' }), ['extension-scope']);
  assert.deepEqual(m({ ID: 'debian', VERSION_ID: '12', ARCHITECTURE: 'arm64' }), ['extension-architecture']);
});

test('overlay Source: upper layer wins, folders list every layer', async () => {
  const a = tempDir('mkportable-ov-a-', { after });
  const b = tempDir('mkportable-ov-b-', { after });
  await fs.mkdir(path.join(a, 'usr/bin'), { recursive: true });
  await fs.mkdir(path.join(b, 'usr/bin'), { recursive: true });
  await fs.writeFile(path.join(a, 'usr/bin/x'), 'upper');
  await fs.writeFile(path.join(b, 'usr/bin/x'), 'lower');
  await fs.writeFile(path.join(b, 'usr/bin/y'), 'only lower');
  const ov = overlaySource([directorySource(a, 'a'), directorySource(b, 'b')]);
  assert.deepEqual(await ov.readdir('/usr/bin'), ['x', 'y']);
  assert.equal(Buffer.from(await ov.readFile('/usr/bin/x')).toString(), 'upper');
  assert.equal(Buffer.from(await ov.readFile('/usr/bin/y')).toString(), 'only lower');
  assert.equal(ov.hostPath('/usr/bin/y')?.toString(), path.join(b, 'usr/bin/y'));
  assert.equal(await ov.lstat('/usr/bin/z'), null);
});
