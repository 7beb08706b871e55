// dm-verity sidecars, signatures and DDIs against the reference tools: veritysetup (cryptsetup-bin), sgdisk
// (gdisk), openssl and systemd-dissect. The kernel side is in verity-vm.test.ts.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeContainer } from '../src/writers/container.js';
import { deriveVerityIdentity, formatUuid } from '../src/formats/verity.js';
import { encodeGpt, parseGpt, SECTOR } from '../src/formats/gpt.js';
import { dpsPartitionType, encodeSignaturePartition, parseSignaturePartition } from '../src/formats/dps.js';
import { hasCommand, isRoot, needs, runCli, tempDir } from './support/env.js';
import { flipByte, makeSigningPair, type SigningPair } from './support/verity.js';
import type { BuildResult } from '../src/index.js';

const tools = ['veritysetup', 'sgdisk', 'openssl'].filter((t) => !hasCommand(t));
const haveTools = tools.length === 0;
const toolReason = `missing: ${tools.join(', ')} (apt-get install cryptsetup-bin gdisk openssl)`;

function sh(cmd: string, args: string[], input?: string): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

async function rawImage(dir: string, name: string, bytes: number): Promise<{ tmp: string; data: Buffer }> {
  const data = randomBytes(bytes);
  const tmp = path.join(dir, `.${name}.input.tmp`);
  await fs.writeFile(tmp, data);
  return { tmp, data };
}

interface Partitions {
  root: { offset: number; size: number; uuid: string; name: string; attributes: bigint };
  verity?: { offset: number; size: number; uuid: string; name: string; attributes: bigint };
  sig?: { offset: number; size: number; uuid: string; name: string; attributes: bigint };
}

async function partitions(file: string): Promise<Partitions & { diskGuid: string; problems: string[] }> {
  const fh = await fs.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const gpt = await parseGpt(async (o, n) => {
      const b = Buffer.alloc(n);
      await fh.read(b, 0, n, o);
      return b;
    }, size);
    const out: Partial<Partitions> = {};
    for (const p of gpt.partitions) {
      const t = dpsPartitionType(p.type)!;
      const entry = { offset: Number(p.firstLba) * SECTOR, size: Number(p.lastLba - p.firstLba + 1n) * SECTOR, uuid: p.uuid, name: p.name, attributes: p.attributes };
      out[t.role === 'root' ? 'root' : t.role === 'verity' ? 'verity' : 'sig'] = entry;
    }
    return { ...(out as Partitions), diskGuid: gpt.diskGuid, problems: gpt.problems };
  } finally {
    await fh.close();
  }
}

async function extract(file: string, range: { offset: number; size: number }, to: string): Promise<string> {
  const fh = await fs.open(file, 'r');
  try {
    const b = Buffer.alloc(range.size);
    await fh.read(b, 0, range.size, range.offset);
    await fs.writeFile(to, b);
  } finally {
    await fh.close();
  }
  return to;
}

function dumpField(dump: string, field: string): string {
  return new RegExp(`^${field}:\\s+(\\S+)`, 'm').exec(dump)?.[1] ?? '';
}

/** Build examples/demo with `args` into `out`, a fresh folder removed when `t` ends unless given. */
async function buildCli(t: Cleanup, args: string[], out = tempDir(t)): Promise<BuildResult> {
  const r = await runCli(['build', 'examples/demo', '--out', out, '--json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as BuildResult;
}

type Cleanup = Pick<TestContext, 'after'>;

const sha256File = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

describe('dm-verity trees against veritysetup', { timeout: 10 * 60_000 }, () => {
  for (const blocks of [1, 128, 129, 16385, 51200]) {
    const label = blocks === 51200 ? '200 MiB' : `${blocks} block${blocks > 1 ? 's' : ''}`;
    test(`${label}: veritysetup verifies the sidecar tree and the DDI's verity partition; dump shows our salt and UUID`, async (t) => {
      if (!needs(t, haveTools, toolReason)) return;
      const dir = tempDir();
      try {
        const { tmp, data } = await rawImage(dir, 'side', blocks * 4096);
        const side = await writeContainer(tmp, { outDir: dir, name: 'side_1', format: 'squashfs', verity: true });
        const hashFile = path.join(dir, 'side_1.verity');
        const root = readFileSync(path.join(dir, 'side_1.roothash'), 'utf8');
        assert.equal(root, `${side.rootHash}\n`);
        assert.deepEqual(side.outputs, ['side_1.verity', 'side_1.roothash', 'side_1.raw'].map((f) => path.join(dir, f)));
        const v = sh('veritysetup', ['verify', path.join(dir, 'side_1.raw'), hashFile, side.rootHash!]);
        assert.equal(v.code, 0, v.out);

        const { salt, uuid } = deriveVerityIdentity(createHash('sha256').update(data).digest());
        const dump = sh('veritysetup', ['dump', hashFile]);
        assert.equal(dump.code, 0, dump.out);
        assert.equal(dumpField(dump.out, 'Salt'), Buffer.from(salt).toString('hex'));
        assert.equal(dumpField(dump.out, 'UUID'), formatUuid(uuid));
        assert.equal(dumpField(dump.out, 'Data blocks'), String(blocks));
        assert.equal(dumpField(dump.out, 'Hash algorithm'), 'sha256');
        assert.equal(dumpField(dump.out, 'Data block size'), '4096');

        // Byte for byte what veritysetup format writes with the same salt and UUID.
        const ref = path.join(dir, 'ref.verity');
        const f = sh('veritysetup', ['format', '--salt', Buffer.from(salt).toString('hex'), '--uuid', formatUuid(uuid), path.join(dir, 'side_1.raw'), ref]);
        assert.equal(f.code, 0, f.out);
        assert.match(f.out, new RegExp(`Root hash:\\s+${side.rootHash}`));
        assert.ok(readFileSync(ref).equals(readFileSync(hashFile)), 'the tree differs from veritysetup format\'s');

        const { tmp: tmp2 } = await rawImage(dir, 'ddi', 0);
        await fs.writeFile(tmp2, data);
        const ddi = await writeContainer(tmp2, { outDir: dir, name: 'disk_1', format: 'ddi', verity: true, architecture: 'x86-64' });
        assert.equal(ddi.rootHash, side.rootHash, 'same data, same seed: same tree');
        const g = sh('sgdisk', ['-v', ddi.image]);
        assert.match(g.out, /No problems found/, g.out);
        const parts = await partitions(ddi.image);
        assert.deepEqual(parts.problems, []);
        assert.equal(parts.root.offset, 1 << 20, 'the first partition starts at 1 MiB');
        assert.equal(parts.root.size, blocks * 4096);
        assert.equal(parts.verity!.offset % 4096, 0);
        const rootPart = await extract(ddi.image, parts.root, path.join(dir, 'root.part'));
        const verityPart = await extract(ddi.image, parts.verity!, path.join(dir, 'verity.part'));
        assert.ok(readFileSync(verityPart).equals(readFileSync(hashFile)), 'the verity partition holds the same tree');
        const vd = sh('veritysetup', ['verify', rootPart, verityPart, ddi.rootHash!]);
        assert.equal(vd.code, 0, vd.out);
        assert.equal(readFileSync(path.join(dir, 'disk_1.roothash'), 'utf8'), `${ddi.rootHash}\n`, 'an unsigned DDI gets its root hash beside it');
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
  }

  test('a flipped byte, in the data or in the tree: veritysetup verify and mkportable inspect both fail', async (t) => {
    if (!needs(t, haveTools, toolReason)) return;
    const r = await buildCli(t, ['--verity']);
    const dir = path.dirname(r.image);
    const hashFile = path.join(dir, 'demo_1.0.verity');
    const clean = await runCli(['inspect', r.image]);
    assert.equal(clean.code, 0, clean.stdout);
    assert.match(clean.stdout, /Verity: sidecar/);
    assert.match(clean.stdout, /Hash tree: matches the data/);

    const size = (await fs.stat(r.image)).size;
    for (const at of [0, 4096 * 7 + 11, Math.floor(size / 2), size - 1]) {
      await flipByte(r.image, at);
      assert.notEqual(sh('veritysetup', ['verify', r.image, hashFile, r.rootHash!]).code, 0, `veritysetup accepted a flip at ${at}`);
      const i = await runCli(['inspect', r.image]);
      assert.notEqual(i.code, 0, `inspect accepted a flip at ${at}`);
      // A flip at 0 also breaks the squashfs superblock: inspect then stops with the reader's error.
      if (at !== 0) assert.match(i.stdout, new RegExp(`verity-data-corrupt .*data block\\(s\\).*: ${Math.floor(at / 4096)} \\(bytes`), i.stdout);
      await flipByte(r.image, at);
    }
    assert.equal(sh('veritysetup', ['verify', r.image, hashFile, r.rootHash!]).code, 0);

    await flipByte(hashFile, 4096 + 5);
    assert.notEqual(sh('veritysetup', ['verify', r.image, hashFile, r.rootHash!]).code, 0);
    const i = await runCli(['inspect', r.image]);
    assert.equal(i.code, 1);
    assert.match(i.stdout, /verity-root-hash-mismatch|verity-tree-corrupt/);
  });
});

describe('root hash signatures and DDIs', { timeout: 10 * 60_000 }, () => {
  let keys: { a: SigningPair; b: SigningPair };
  let keyDir: string;
  before(() => {
    if (!haveTools) return;
    keyDir = tempDir();
    keys = { a: makeSigningPair(keyDir, 'mkportable-a'), b: makeSigningPair(keyDir, 'mkportable-b', 3072) };
  });
  after(async () => {
    if (keyDir) await fs.rm(keyDir, { recursive: true, force: true });
  });

  test('the .roothash.p7s is byte for byte openssl smime -sign -binary -noattr -outform der, and openssl verifies it', async (t) => {
    if (!needs(t, haveTools, toolReason)) return;
    for (const k of [keys.a, keys.b]) {
      const r = await buildCli(t, ['--verity', '--signing-key', k.key, '--signing-certificate', k.certificate]);
      const dir = path.dirname(r.image);
      const content = path.join(dir, 'content');
      await fs.writeFile(content, r.rootHash!);
      const ref = path.join(dir, 'ref.p7s');
      const s = sh('openssl', ['smime', '-sign', '-binary', '-noattr', '-outform', 'der', '-md', 'sha256', '-in', content, '-signer', k.certificate, '-inkey', k.key, '-out', ref]);
      assert.equal(s.code, 0, s.out);
      assert.ok(readFileSync(ref).equals(readFileSync(path.join(dir, 'demo_1.0.roothash.p7s'))), 'signature bytes differ from openssl\'s');
      // systemd's check: the signer from the given certificates only (NOINTERN), no chain (NOVERIFY).
      const v = sh('openssl', ['smime', '-verify', '-binary', '-inform', 'der', '-in', path.join(dir, 'demo_1.0.roothash.p7s'), '-content', content,
        '-certfile', k.certificate, '-nointern', '-noverify', '-out', '/dev/null']);
      assert.equal(v.code, 0, v.out);
      assert.match(v.out, /Verification successful/);
    }
  });

  test('a signed DDI: sgdisk finds no problem; partitions, UUIDs, labels and flags as systemd-repart makes them; its JSON verifies', async (t) => {
    if (!needs(t, haveTools, toolReason)) return;
    const r = await buildCli(t, ['--verity', '--format', 'ddi', '--signing-key', keys.a.key, '--signing-certificate', keys.a.certificate]);
    assert.equal(r.format, 'ddi');
    assert.equal(r.architecture, 'x86-64');
    assert.equal(r.signed, true);
    assert.deepEqual(r.outputs, [r.image], 'a signed DDI is one file');
    assert.match(sh('sgdisk', ['-v', r.image]).out, /No problems found/);
    const p = await partitions(r.image);
    const rh = Buffer.from(r.rootHash!, 'hex').toString('hex');
    const asUuid = (h: string) => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
    assert.equal(p.root.uuid, asUuid(rh.slice(0, 32)));
    assert.equal(p.verity!.uuid, asUuid(rh.slice(32)));
    assert.deepEqual([p.root.name, p.verity!.name, p.sig!.name], ['root-x86-64', 'root-x86-64-verity', 'root-x86-64-verity-sig']);
    for (const part of [p.root, p.verity!]) {
      assert.equal(part.attributes & (1n << 60n), 1n << 60n, `${part.name} is read-only`);
      assert.equal(part.attributes & (1n << 59n), 0n, `${part.name} has no grow-fs`);
    }
    assert.equal(p.sig!.size, 16384);
    const sgdisk = sh('sgdisk', ['-i', '1', r.image]).out;
    assert.match(sgdisk, /Partition GUID code: 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709/);
    assert.match(sgdisk, new RegExp(`Partition unique GUID: ${p.root.uuid.toUpperCase()}`));

    const sig = parseSignaturePartition(readFileSync(r.image).subarray(p.sig!.offset, p.sig!.offset + p.sig!.size));
    assert.ok(typeof sig !== 'string', String(sig));
    assert.equal(sig.rootHash, r.rootHash);
    const der = sh('openssl', ['x509', '-in', keys.a.certificate, '-outform', 'der']);
    const fp = createHash('sha256').update(spawnSync('openssl', ['x509', '-in', keys.a.certificate, '-outform', 'der']).stdout).digest('hex');
    assert.equal(der.code, 0);
    assert.equal(sig.certificateFingerprint, fp);
    const dir = path.dirname(r.image);
    await fs.writeFile(path.join(dir, 'sig.der'), Buffer.from(sig.signature, 'base64'));
    await fs.writeFile(path.join(dir, 'content'), r.rootHash!);
    const v = sh('openssl', ['smime', '-verify', '-binary', '-inform', 'der', '-in', path.join(dir, 'sig.der'), '-content', path.join(dir, 'content'),
      '-certfile', keys.a.certificate, '-nointern', '-noverify', '-out', '/dev/null']);
    assert.equal(v.code, 0, v.out);

    const ok = await runCli(['inspect', r.image, '--certificate', keys.a.certificate]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(ok.stdout, /Verity: embedded \(root-verity partition\), signed \(signature valid\)/);
    const other = await runCli(['inspect', r.image, '--certificate', keys.b.certificate]);
    assert.equal(other.code, 1);
    assert.match(other.stdout, /signature-invalid .*signed by another key/);
  });

  test('systemd-dissect: the signed DDI is a portable service with signed verity; the sidecar image has external verity', async (t) => {
    if (!needs(t, haveTools && hasCommand('systemd-dissect') && isRoot(), 'systemd-dissect (systemd-container) and root (loop devices)')) return;
    const ddi = await buildCli(t, ['--verity', '--format', 'ddi', '--signing-key', keys.a.key, '--signing-certificate', keys.a.certificate]);
    const d = sh('systemd-dissect', [ddi.image]);
    assert.equal(d.code, 0, d.out);
    assert.match(d.out, /✓ portable service/);
    assert.match(d.out, /^ro\s+root\s+\S+\s+root-x86-64\s+squashfs\s+x86-64\s+signed\b/m, d.out);
    assert.match(d.out, /^ro\s+root-verity\s+\S+\s+root-x86-64-verity\s+DM_verity_hash/m);
    assert.match(d.out, /^ro\s+root-verity-sig\s+\S+\s+root-x86-64-verity-sig\s+verity_hash_signature/m);

    const side = await buildCli(t, ['--verity']);
    const s = sh('systemd-dissect', [side.image]);
    assert.equal(s.code, 0, s.out);
    assert.match(s.out, /✓ portable service/);
    assert.match(s.out, /^ro\s+root\s+-\s+-\s+squashfs\s+-\s+external\b/m, s.out);

    // An unsigned DDI with its .roothash: systemd-dissect uses it to find the partitions.
    const plain = await buildCli(t, ['--verity', '--format', 'ddi']);
    const u = sh('systemd-dissect', ['--root-hash', plain.rootHash!, plain.image]);
    assert.equal(u.code, 0, u.out);
    assert.match(u.out, /^ro\s+root\s+\S+\s+root-x86-64\s+squashfs\s+x86-64\s+yes\b/m, u.out);
  });

  test('builds are byte-reproducible: image, sidecars, DDI and signatures', async (t) => {
    if (!needs(t, haveTools, toolReason)) return;
    for (const args of [['--verity'], ['--verity', '--signing-key', keys.a.key, '--signing-certificate', keys.a.certificate], ['--verity', '--format', 'ddi'],
      ['--verity', '--format', 'ddi', '--signing-key', keys.a.key, '--signing-certificate', keys.a.certificate]]) {
      const one = await buildCli(t, args);
      const two = await buildCli(t, args);
      assert.equal(one.sha256, two.sha256, args.join(' '));
      assert.equal(one.rootHash, two.rootHash);
      assert.deepEqual(one.outputs.map(sha256File), two.outputs.map(sha256File), args.join(' '));
      assert.deepEqual(one.outputs.map((f) => path.basename(f)), two.outputs.map((f) => path.basename(f)));
    }
  });

  test('signing problems are one line, exit 1, before any work: nothing is written', async (t) => {
    if (!needs(t, haveTools, toolReason)) return;
    const ec = path.join(keyDir, 'ec.key');
    assert.equal(sh('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', ec]).code, 0);
    const enc = path.join(keyDir, 'enc.key');
    assert.equal(sh('openssl', ['genpkey', '-algorithm', 'RSA', '-aes-256-cbc', '-pass', 'pass:secret', '-out', enc]).code, 0);
    const cases: [string[], RegExp][] = [
      [['--verity', '--signing-key', keys.b.key, '--signing-certificate', keys.a.certificate], /signingKey '.*mkportable-b.key' does not belong to signingCertificate '.*mkportable-a.crt' \(CN=mkportable-a\)/],
      [['--verity', '--signing-key', keys.a.key], /'signingKey' needs 'signingCertificate'/],
      [['--signing-key', keys.a.key, '--signing-certificate', keys.a.certificate], /signing needs 'verity: true'/],
      [['--verity', '--signing-key', ec, '--signing-certificate', keys.a.certificate], /ec keys are not supported, use an RSA key/],
      [['--verity', '--signing-key', enc, '--signing-certificate', keys.a.certificate], /the key is encrypted/],
      [['--verity', '--signing-key', keys.a.certificate, '--signing-certificate', keys.a.certificate], /not a PEM private key/],
      [['--verity', '--signing-key', keys.a.key, '--signing-certificate', keys.a.key], /not a PEM certificate/],
      [['--verity', '--signing-key', '/nonexistent.key', '--signing-certificate', keys.a.certificate], /signingKey '\/nonexistent.key': cannot read \(ENOENT\)/],
      [['--verity', '--format', 'tar'], /'format' must be "squashfs" or "ddi"/],
      [['--architecture', 'arm64'], /'architecture' only applies to format "ddi"/],
      [['--format', 'ddi', '--architecture', 'sparc'], /'architecture' "sparc" is not one of/],
    ];
    for (const [args, want] of cases) {
      const out = path.join(tempDir(t), 'out');
      const r = await runCli(['build', 'examples/demo', '--out', out, ...args]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, want, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.ok(!existsSync(out), `${args.join(' ')}: nothing may be written, found ${existsSync(out) ? readdirSync(out) : ''}`);
    }
  });

  test('the key can come from $MKPORTABLE_SIGNING_KEY, as PEM text or as a path', async (t) => {
    if (!needs(t, haveTools, toolReason)) return;
    const ref = await buildCli(t, ['--verity', '--signing-key', keys.a.key, '--signing-certificate', keys.a.certificate]);
    for (const value of [readFileSync(keys.a.key, 'utf8'), keys.a.key]) {
      const out = tempDir(t);
      const r = await runCli(['build', 'examples/demo', '--out', out, '--json', '--verity', '--signing-certificate', keys.a.certificate], {
        env: { ...process.env, MKPORTABLE_SIGNING_KEY: value },
      });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(readFileSync(path.join(out, 'demo_1.0.roothash.p7s')).equals(readFileSync(path.join(path.dirname(ref.image), 'demo_1.0.roothash.p7s'))));
    }
    const none = await runCli(['build', 'examples/demo', '--out', tempDir(t), '--verity', '--signing-certificate', keys.a.certificate], {
      env: { ...process.env, MKPORTABLE_SIGNING_KEY: '' },
    });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /needs a key: set signingKey or \$MKPORTABLE_SIGNING_KEY/);
  });
});

describe('outputs: all or nothing, and no stale sidecars', () => {
  test('a failure while renaming the outputs into place leaves none of them', async (t) => {
    const dir = tempDir(t);
    const { tmp } = await rawImage(dir, 'x', 64 * 4096);
    await fs.mkdir(path.join(dir, 'x_1.roothash')); // renaming the root hash onto a folder fails, after the .verity
    await assert.rejects(writeContainer(tmp, { outDir: dir, name: 'x_1', format: 'squashfs', verity: true }), /x_1.raw/);
    assert.deepEqual(readdirSync(dir).sort(), ['x_1.roothash'], 'only the obstacle remains');
    assert.deepEqual(readdirSync(path.join(dir, 'x_1.roothash')), []);
  });

  test('a build without verity removes the sidecars of an earlier verity build; an unsigned one removes the old signature', async (t) => {
    if (!needs(t, haveTools, toolReason)) return;
    const k = makeSigningPair(tempDir(t), 'stale');
    const out = tempDir(t);
    await buildCli(t, ['--verity', '--signing-key', k.key, '--signing-certificate', k.certificate], out);
    assert.deepEqual(readdirSync(out).sort(), ['demo_1.0.raw', 'demo_1.0.roothash', 'demo_1.0.roothash.p7s', 'demo_1.0.verity']);
    await buildCli(t, ['--verity'], out);
    assert.deepEqual(readdirSync(out).sort(), ['demo_1.0.raw', 'demo_1.0.roothash', 'demo_1.0.verity']);
    const plain = await buildCli(t, [], out);
    assert.deepEqual(readdirSync(out), ['demo_1.0.raw']);
    assert.deepEqual(plain.outputs, [plain.image]);
    assert.equal(plain.rootHash, undefined);
    assert.equal(plain.format, 'squashfs');
  });
});

describe('inspect names what is wrong with a DDI', () => {
  let keyDir: string;
  let k: SigningPair;
  before(() => {
    if (!haveTools) return;
    keyDir = tempDir();
    k = makeSigningPair(keyDir, 'inspect');
  });
  after(async () => {
    if (keyDir) await fs.rm(keyDir, { recursive: true, force: true });
  });

  /** Rewrite the GPT of `file` with `edit` applied to its partitions (CRCs recomputed). */
  async function editGpt(file: string, edit: (parts: Awaited<ReturnType<typeof parseGpt>>['partitions']) => typeof parts) {
    const img = readFileSync(file);
    const gpt = await parseGpt(async (o, n) => img.subarray(o, o + n), img.length);
    const parts = edit(gpt.partitions);
    const { head, tail } = encodeGpt({ diskGuid: gpt.diskGuid, sectors: BigInt(img.length / 512), partitions: parts.map(({ index, ...p }) => p) });
    img.set(head, 0);
    img.set(tail, img.length - tail.length);
    await fs.writeFile(file, img);
    return { img, parts };
  }

  test('wrong partition UUIDs, a missing verity partition, a JSON root hash that disagrees, a sidecar .verity', async (t) => {
    if (!needs(t, haveTools, toolReason)) return;
    const signedArgs = ['--verity', '--format', 'ddi', '--signing-key', k.key, '--signing-certificate', k.certificate];
    const rules = async (file: string, extra: string[] = []) => {
      const r = await runCli(['inspect', file, '--json', ...extra]);
      return { code: r.code, rules: (JSON.parse(r.stdout).problems as { rule: string; message: string }[]) };
    };

    const uuid = await buildCli(t, signedArgs);
    await editGpt(uuid.image, (ps) => ps.map((p) => (p.index === 1 ? { ...p, uuid: '01234567-89ab-4def-8123-456789abcdef' } : p)));
    const u = await rules(uuid.image);
    assert.equal(u.code, 1);
    assert.ok(u.rules.some((p) => p.rule === 'ddi-partition-uuid' && /root partition UUID 01234567/.test(p.message)), JSON.stringify(u.rules));

    const noVerity = await buildCli(t, signedArgs);
    await editGpt(noVerity.image, (ps) => ps.filter((p) => p.index !== 2));
    const nv = await rules(noVerity.image);
    assert.equal(nv.code, 1);
    assert.ok(nv.rules.some((p) => p.rule === 'ddi-verity-missing'), JSON.stringify(nv.rules));

    const json = await buildCli(t, signedArgs);
    const p = await partitions(json.image);
    const img = readFileSync(json.image);
    const old = parseSignaturePartition(img.subarray(p.sig!.offset, p.sig!.offset + p.sig!.size));
    assert.ok(typeof old !== 'string');
    img.set(encodeSignaturePartition({ ...old, rootHash: 'ee'.repeat(32) }, p.sig!.size), p.sig!.offset);
    await fs.writeFile(json.image, img);
    const j = await rules(json.image);
    assert.equal(j.code, 1);
    assert.ok(j.rules.some((x) => x.rule === 'ddi-signature-root-hash'), JSON.stringify(j.rules));
    assert.ok(j.rules.some((x) => x.rule === 'verity-root-hash-mismatch'), JSON.stringify(j.rules));

    const side = await buildCli(t, signedArgs);
    await fs.writeFile(side.image.replace(/\.raw$/, '.verity'), 'x');
    const s = await rules(side.image);
    assert.ok(s.rules.some((x) => x.rule === 'ddi-sidecar-verity'), JSON.stringify(s.rules));
  });

  test('a flipped byte in the root partition or the verity partition of a DDI; an unsigned DDI without its .roothash', async (t) => {
    if (!needs(t, haveTools, toolReason)) return;
    const r = await buildCli(t, ['--verity', '--format', 'ddi']);
    const p = await partitions(r.image);
    const ok = await runCli(['inspect', r.image]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(ok.stdout, /Root hash: [0-9a-f]{64} \(from \.roothash\)/);
    await flipByte(r.image, p.root.offset + 5 * 4096 + 3);
    const d = await runCli(['inspect', r.image]);
    assert.equal(d.code, 1);
    assert.match(d.stdout, /verity-data-corrupt .*: 5 \(bytes 20480–24575\)/);
    await flipByte(r.image, p.root.offset + 5 * 4096 + 3);
    await flipByte(r.image, p.verity!.offset + 4096 + 100);
    const h = await runCli(['inspect', r.image, '--json']);
    assert.equal(h.code, 1);
    assert.ok((JSON.parse(h.stdout).problems as { rule: string }[]).some((x) => x.rule === 'verity-root-hash-mismatch' || x.rule === 'verity-tree-corrupt'));
    await flipByte(r.image, p.verity!.offset + 4096 + 100);

    await fs.rm(r.image.replace(/\.raw$/, '.roothash'));
    const bare = await runCli(['inspect', r.image, '--json']);
    const report = JSON.parse(bare.stdout);
    assert.equal(report.image.rootHashSource, 'partition-uuids');
    assert.ok(report.problems.some((x: { rule: string }) => x.rule === 'ddi-root-hash-missing'));
    assert.equal(bare.code, 0, 'a warning: the image still runs, unverified');
  });

  test('--architecture picks the root partition; a DDI for another architecture is read when it is the only one', async (t) => {
    if (!needs(t, haveTools, toolReason)) return;
    const r = await buildCli(t, ['--verity', '--format', 'ddi', '--architecture', 'arm64']);
    assert.equal(r.architecture, 'arm64');
    const p = await partitions(r.image);
    assert.deepEqual([p.root.name, p.verity!.name], ['root-arm64', 'root-arm64-verity']);
    const i = await runCli(['inspect', r.image]);
    assert.equal(i.code, 0, i.stdout);
    assert.match(i.stdout, /Format: ddi \(root partition for arm64\)/);
    const wrong = await runCli(['inspect', r.image, '--architecture', 'x86-64']);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /no root partition for x86-64: it has root partitions for arm64/);
  });
});


test('ls and cat read the root partition of a DDI', async (t) => {
  const r = await buildCli(t, ['--verity', '--format', 'ddi']);
  const ls = await runCli(['ls', r.image, '/etc/systemd/system']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /\/etc\/systemd\/system\/demo\.service\n/);
  const cat = await runCli(['cat', r.image, '/etc/os-release']);
  assert.equal(cat.code, 0, cat.stderr);
  assert.match(cat.stdout, /^PORTABLE_PREFIXES=demo$/m);
});

test('--sbom with a DDI: the SBOM names the DDI\'s sha256, hashes the files of its root, and is one of the outputs', async (t) => {
  const out = tempDir(t);
  const sbom = path.join(out, 'demo.spdx.json');
  const r = await buildCli(t, ['--verity', '--format', 'ddi', '--sbom', sbom], out);
  assert.deepEqual(r.outputs, [path.join(out, 'demo_1.0.roothash'), sbom, r.image]);
  const doc = JSON.parse(readFileSync(sbom, 'utf8')) as { packages: { checksums?: { algorithm: string; checksumValue: string }[] }[]; files: { fileName: string }[] };
  assert.equal(sha256File(r.image), r.sha256);
  assert.ok(doc.packages.some((p) => p.checksums?.some((c) => c.algorithm === 'SHA256' && c.checksumValue === r.sha256)), 'the image package carries the DDI\'s sha256');
  assert.ok(doc.files.some((f) => f.fileName === './etc/systemd/system/demo.service'));
  assert.deepEqual(readdirSync(out).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
});
