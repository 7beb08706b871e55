// What is inside: the BuildResult names each file's Debian package (checked against dpkg itself), and --sbom
// writes an SPDX 2.3 JSON document whose file hashes match the image's files as unsquashfs extracts them, the
// same bytes on every build, read and validated by a real SBOM consumer: spdx/tools-golang from Debian 13.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { BuildResult } from '../src/index.js';
import { portabledPrerequisites, startPortabledContainer } from './support/portabled.js';
import { hasCommand, IN_CI, needs, REPO, runCli, tempDir } from './support/env.js';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { SPDX_2_3_SCHEMA } from './support/spdx-2.3-schema.js';

interface Spdx {
  spdxVersion: string;
  dataLicense: string;
  SPDXID: string;
  name: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  packages: { SPDXID: string; name: string; versionInfo?: string; downloadLocation: string; filesAnalyzed?: boolean; externalRefs?: { referenceType: string; referenceLocator: string }[] }[];
  files: { SPDXID: string; fileName: string; checksums: { algorithm: string; checksumValue: string }[] }[];
  relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
}

const dpkg = (args: string[]) => spawnSync('dpkg-query', args, { encoding: 'utf8' });
const ready = hasCommand('memcached') && hasCommand('dpkg-query') && hasCommand('unsquashfs');

describe('what is inside an image', () => {
  const cleanup: string[] = [];
  after(() => cleanup.forEach((d) => rmSync(d, { recursive: true, force: true })));
  let built: { result: BuildResult; sbom: string; dir: string } | undefined;
  const build = async () => {
    if (built) return built;
    const dir = tempDir('mkp-sbom-');
    cleanup.push(dir);
    const sbom = path.join(dir, 'memcached.spdx.json');
    const r = await runCli(['build', path.join(REPO, 'examples/memcached'), '--out', dir, '--sbom', sbom, '--json']);
    assert.equal(r.code, 0, r.stderr);
    built = { result: JSON.parse(r.stdout) as BuildResult, sbom, dir };
    return built;
  };

  test("each host file names the Debian package dpkg says installed it; the image carries no package database", async (t) => {
    if (!needs(t, ready, 'memcached, dpkg-query and unsquashfs (squashfs-tools)')) return;
    const { result } = await build();
    const owned = result.files.filter((f) => f.package);
    const byPath = new Map(result.files.map((f) => [f.path, f]));
    assert.equal(byPath.get('/usr/bin/memcached')?.package, 'memcached');
    assert.equal(byPath.get('/usr/lib/x86_64-linux-gnu/libevent-2.1.so.7.0.1')?.package, 'libevent-2.1-7:amd64');
    assert.equal(byPath.get('/usr/lib/x86_64-linux-gnu/libc.so.6')?.package, 'libc6:amd64');
    assert.equal(byPath.get('/etc/os-release')?.package, undefined, 'generated files belong to no package');
    for (const f of owned) {
      // dpkg's own list for that package holds this file, under the path it was installed by (maybe /lib/… for /usr/lib/…).
      const list = dpkg(['-L', f.package!]).stdout.split('\n').filter(Boolean);
      const real = (p: string) => { try { return realpathSync(path.dirname(p)) + '/' + path.basename(p); } catch { return p; } };
      assert.ok(list.some((l) => real(l) === real(f.path)), `${f.path}: dpkg -L ${f.package} does not list it`);
    }
    // (A symlink to a folder, like merged /usr's /lib, is a folder to dpkg: every package with files there "has" it.)
    for (const f of result.files.filter((x) => !x.package && x.origin === `host:${x.path}` && x.type !== 'dir' && !statSync(x.path).isDirectory())) {
      assert.notEqual(dpkg(['-S', f.path]).status, 0, `${f.path}: dpkg -S finds a package, the build named none`);
    }
    for (const p of result.packages) {
      assert.equal(`${p.version} ${p.architecture}`, dpkg(['-W', '-f=${Version} ${Architecture}', p.id]).stdout, p.id);
      assert.equal(p.files, owned.filter((f) => f.package === p.id).length);
    }
    assert.ok(!result.files.some((f) => f.path.startsWith('/var/lib/dpkg') || f.path.startsWith('/lib/apk')));
  });

  test('--sbom: SPDX 2.3 JSON, hashes of the files unsquashfs extracts, packages with version and arch, same bytes every build', async (t) => {
    if (!needs(t, ready, 'memcached, dpkg-query and unsquashfs (squashfs-tools)')) return;
    const { result, sbom, dir } = await build();
    const doc = JSON.parse(readFileSync(sbom, 'utf8')) as Spdx;
    assert.equal(doc.spdxVersion, 'SPDX-2.3');
    assert.equal(doc.dataLicense, 'CC0-1.0');
    assert.equal(doc.SPDXID, 'SPDXRef-DOCUMENT');
    assert.equal(doc.name, 'memcached_1.6.raw');
    assert.match(doc.documentNamespace, /^https:\/\/\S+$/);
    assert.ok(!doc.documentNamespace.includes('#'));
    assert.match(doc.creationInfo.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.match(doc.creationInfo.creators[0], /^Tool: mkportable-\d/);
    const ids = new Set([doc.SPDXID, ...doc.packages.map((p) => p.SPDXID), ...doc.files.map((f) => f.SPDXID)]);
    assert.equal(ids.size, 1 + doc.packages.length + doc.files.length, 'ids are unique');
    for (const id of ids) assert.match(id, /^SPDXRef-[A-Za-z0-9.-]+$/);
    for (const r of doc.relationships) assert.ok(ids.has(r.spdxElementId) && ids.has(r.relatedSpdxElement), JSON.stringify(r));
    assert.ok(doc.relationships.some((r) => r.spdxElementId === 'SPDXRef-DOCUMENT' && r.relationshipType === 'DESCRIBES'));
    for (const p of doc.packages) assert.ok(p.name && p.downloadLocation, p.SPDXID);

    // Every regular file of the image, with the hashes of its bytes as squashfs-tools extracts them.
    const x = path.join(dir, 'x');
    const un = spawnSync('unsquashfs', ['-no-xattrs', '-d', x, result.image], { encoding: 'utf8' });
    assert.equal(un.status, 0, un.stderr);
    const files = spawnSync('find', [x, '-type', 'f'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map((f) => f.slice(x.length)).sort();
    assert.deepEqual(doc.files.map((f) => f.fileName.slice(1)).sort(), files);
    for (const f of doc.files) {
      const bytes = readFileSync(path.join(x, f.fileName));
      assert.equal(f.checksums.find((c) => c.algorithm === 'SHA256')?.checksumValue, createHash('sha256').update(bytes).digest('hex'), f.fileName);
      assert.equal(f.checksums.find((c) => c.algorithm === 'SHA1')?.checksumValue, createHash('sha1').update(bytes).digest('hex'), f.fileName);
    }
    const libc = doc.packages.find((p) => p.name === 'libc6')!;
    const version = dpkg(['-W', '-f=${Version}', 'libc6']).stdout;
    assert.equal(libc.versionInfo, version);
    assert.equal(libc.externalRefs?.[0].referenceLocator, `pkg:deb/debian/libc6@${encodeURIComponent(version)}?arch=amd64&upstream=glibc`);
    const libcFile = doc.files.find((f) => f.fileName === './usr/lib/x86_64-linux-gnu/libc.so.6')!;
    assert.ok(doc.relationships.some((r) => r.spdxElementId === libc.SPDXID && r.relationshipType === 'CONTAINS' && r.relatedSpdxElement === libcFile.SPDXID));

    const again = path.join(dir, 'again.spdx.json');
    const r2 = await runCli(['build', path.join(REPO, 'examples/memcached'), '--out', path.join(dir, 'again'), '--sbom', again]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok(readFileSync(again).equals(readFileSync(sbom)), 'the same image gives the same SBOM');
    // A build that fails writes neither image nor SBOM.
    const bad = path.join(dir, 'bad.spdx.json');
    const r3 = await runCli(['build', '--pname', 'nope', '--version', '1', '--unit', '/nonexistent.service', '--out', path.join(dir, 'bad'), '--sbom', bad]);
    assert.notEqual(r3.code, 0);
    assert.ok(!existsSync(bad));
  });

  test('--sbom: the document is valid against the SPDX 2.3 JSON schema, which rejects broken ones', async (t) => {
    if (!needs(t, ready, 'memcached, dpkg-query and unsquashfs (squashfs-tools)')) return;
    const { sbom } = await build();
    const validate = new Ajv2019({ allErrors: true, strict: false }).compile(SPDX_2_3_SCHEMA);
    const doc = JSON.parse(readFileSync(sbom, 'utf8')) as Record<string, unknown> & Spdx;
    assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 5)));
    assert.ok(doc.packages.length > 1 && doc.files.length > 10 && doc.relationships.length > doc.files.length);
    // The same validator turns down what the schema forbids: each mutation is one error of its kind.
    const broken: [string, (d: any) => void, string][] = [
      ['no documentNamespace', (d) => delete d.documentNamespace, 'required'],
      ['a file id with "_"', (d) => (d.files[0].SPDXID = 'SPDXRef-File_1'), 'pattern'],
      ['a file without checksums', (d) => (d.files[1].checksums = []), 'minItems'],
      ['an unknown checksum algorithm', (d) => (d.files[2].checksums[0].algorithm = 'CRC32'), 'enum'],
      ['an unknown relationship', (d) => (d.relationships[0].relationshipType = 'HAS'), 'enum'],
      ['a package property the schema lacks', (d) => (d.packages[0].arch = 'amd64'), 'additionalProperties'],
      ['a created time with milliseconds', (d) => (d.creationInfo.created = '2024-01-01T00:00:00.000Z'), 'pattern'],
      ['a package without downloadLocation', (d) => delete d.packages[1].downloadLocation, 'required'],
    ];
    for (const [what, mutate, keyword] of broken) {
      const copy = structuredClone(doc);
      mutate(copy);
      assert.equal(validate(copy), false, what);
      assert.deepEqual(validate.errors?.map((e) => e.keyword), [keyword], what);
    }
  });

  const pre = portabledPrerequisites({ systemd: 257 });
  test('a real SBOM consumer reads and validates it: spdx/tools-golang from Debian 13', { timeout: 10 * 60_000, skip: (!pre.ok || !ready) && !IN_CI ? `prerequisites missing: ${pre.reason ?? 'memcached, dpkg-query, unsquashfs'}` : false }, async () => {
    if (!pre.ok || !ready) throw new Error(`prerequisite missing in CI: ${pre.reason ?? 'memcached, dpkg-query, unsquashfs'}`);
    const { result, sbom } = await build();
    const c = await startPortabledContainer({ systemd: 257 });
    try {
      // Debian's packages, over the network the container shares with the host.
      const install = await c.exec(['sh', '-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go golang-github-spdx-tools-golang-dev >/dev/null'], { timeoutMs: 8 * 60_000, allowFail: true });
      assert.equal(install.code, 0, install.stdout + install.stderr);
      await c.copyIn(path.join(REPO, 'test/fixtures/spdx-summary.go'), '/root/spdx-summary/main.go');
      await c.copyIn(sbom, '/root/image.spdx.json');
      const run = await c.exec(['sh', '-c', 'cd /root/spdx-summary && go run main.go /root/image.spdx.json'], {
        env: { GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOCACHE: '/root/.cache/go-build', GOFLAGS: '-mod=mod' }, timeoutMs: 5 * 60_000, allowFail: true,
      });
      assert.equal(run.code, 0, run.stdout + run.stderr);
      const s = JSON.parse(run.stdout) as { Version: string; Name: string; Described: string[]; Packages: { ID: string; Name: string; Version: string; Purl: string }[]; Files: { Name: string; SHA256: string }[]; Contains: Record<string, string[]> };
      const doc = JSON.parse(readFileSync(sbom, 'utf8')) as Spdx;
      assert.equal(s.Version, 'SPDX-2.3');
      assert.equal(s.Name, 'memcached_1.6.raw');
      assert.deepEqual(s.Described, ['Image']);
      assert.deepEqual(s.Packages.slice(1).map((p) => `${p.Name} ${p.Version}`), result.packages.map((p) => `${p.name} ${p.version}`));
      assert.deepEqual(s.Files.map((f) => [f.Name, f.SHA256]), doc.files.map((f) => [f.fileName, f.checksums[1].checksumValue]));
      assert.equal(s.Contains.Image.length, doc.files.length + result.packages.length);
    } finally {
      await c.stop();
    }
  });
});
