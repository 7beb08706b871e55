// The release folder `mkportable publish` lays out, checked with the tools a publisher and a client use:
// sha256sum -c, xz/gunzip, gpg --verify. (test/publish.test.ts runs systemd-sysupdate against it.)
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { hasCommand, needs, runCli, tempDir } from './support/env.js';
import { stopAgent, throwawayGpg } from './support/gpg.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function fakeImage(dir: string, name: string, bytes = randomBytes(300_000)): string {
  const f = path.join(dir, name);
  // Half random, half zeros: compressible, and different per call.
  writeFileSync(f, Buffer.concat([bytes, Buffer.alloc(300_000)]));
  return f;
}

const sh = (cmd: string, args: string[], cwd: string) => spawnSync(cmd, args, { cwd, encoding: 'utf8' });

describe('mkportable publish: the release folder', () => {
  const cleanup: string[] = [];
  after(() => cleanup.forEach((d) => rmSync(d, { recursive: true, force: true })));

  test('xz: versioned images, sha256sum-format SHA256SUMS, transfer files; adding keeps older versions', async (t) => {
    if (!needs(t, hasCommand('sha256sum') && hasCommand('xz'), 'sha256sum and xz (coreutils, xz-utils)')) return;
    const src = tempDir('mkp-pub-src-');
    const rel = path.join(tempDir('mkp-pub-'), 'release');
    cleanup.push(src, path.dirname(rel));
    const v1 = fakeImage(src, 'web_1.0.raw');
    const r1 = await runCli(['publish', v1, '--to', rel, '--compress', 'xz', '--url', 'https://example.org/web/']);
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(r1.stdout, /^added +web_1\.0\.raw\.xz  sha256 [0-9a-f]{64}$/m);
    assert.deepEqual(readdirSync(rel).sort(), ['SHA256SUMS', 'sysupdate.web.d', 'web_1.0.raw.xz']);
    // The client's view: the hashes check, and the file decompresses to the image.
    const check = sh('sha256sum', ['-c', '--strict', 'SHA256SUMS'], rel);
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const xz = spawnSync('xz', ['-dc', path.join(rel, 'web_1.0.raw.xz')]);
    assert.equal(xz.status, 0);
    assert.ok(xz.stdout.equals(readFileSync(v1)), 'xz -d gives back the image');
    assert.ok(readFileSync(path.join(rel, 'web_1.0.raw.xz')).length < readFileSync(v1).length * 0.7);

    const transfer = readFileSync(path.join(rel, 'sysupdate.web.d/web.transfer'), 'utf8');
    assert.equal(readFileSync(path.join(rel, 'sysupdate.web.d/web.conf'), 'utf8'), transfer, '.conf for systemd < 257, same content');
    assert.match(transfer, /^\[Source\]\nType=url-file\nPath=https:\/\/example\.org\/web\nMatchPattern=web_@v\.raw\.xz$/m);
    assert.match(transfer, /^\[Target\]\nType=regular-file\nPath=\/var\/lib\/portables\nMatchPattern=web_@v\.raw\nCurrentSymlink=web\.raw\nInstancesMax=2$/m);
    assert.match(transfer, /^Verify=no$/m, 'an unsigned folder says so');

    // Same image again: nothing changes. A different build under the same version: refused, folder untouched.
    const sumsBefore = readFileSync(path.join(rel, 'SHA256SUMS'));
    const again = await runCli(['publish', v1, '--to', rel, '--compress', 'xz']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^unchanged web_1\.0\.raw\.xz/m);
    const otherDir = tempDir('mkp-pub-other-');
    cleanup.push(otherDir);
    const other = fakeImage(otherDir, 'web_1.0.raw');
    const clash = await runCli(['publish', other, '--to', rel, '--compress', 'xz']);
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /^mkportable: error: .*web_1\.0\.raw\.xz already holds another build of web 1\.0: clients may have installed it; publish a new version\n$/);
    assert.ok(readFileSync(path.join(rel, 'SHA256SUMS')).equals(sumsBefore));
    assert.deepEqual(readdirSync(rel).filter((n) => n.startsWith('.')), [], 'no temporary files left');

    const v2 = fakeImage(src, 'web_1.1.raw');
    const r2 = await runCli(['publish', v2, '--to', rel, '--compress', 'xz']);
    assert.equal(r2.code, 0, r2.stderr);
    const sums = readFileSync(path.join(rel, 'SHA256SUMS'), 'utf8');
    assert.deepEqual(sums.split('\n').filter(Boolean).map((l) => l.slice(66)), ['web_1.0.raw.xz', 'web_1.1.raw.xz']);
    assert.match(sums, /^[0-9a-f]{64}  web_1\.1\.raw\.xz$/m);
    assert.equal(sh('sha256sum', ['-c', '--strict', 'SHA256SUMS'], rel).status, 0);
  });

  test('gz, sidecars beside an image, and names systemd-sysupdate cannot match', async (t) => {
    if (!needs(t, hasCommand('gunzip'), 'gunzip (gzip)')) return;
    const src = tempDir('mkp-pub-src-');
    const rel = tempDir('mkp-pub-');
    cleanup.push(src, rel);
    const img = fakeImage(src, 'db_2.raw');
    writeFileSync(path.join(src, 'db_2.verity'), randomBytes(4096));
    writeFileSync(path.join(src, 'db_2.roothash'), 'ab'.repeat(32) + '\n');
    writeFileSync(path.join(src, 'db_2.roothash.p7s'), randomBytes(800));
    const r = await runCli(['publish', img, '--to', rel, '--compress', 'gz']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(rel).sort(), ['SHA256SUMS', 'db_2.p7s', 'db_2.raw.gz', 'db_2.roothash', 'db_2.verity.gz', 'sysupdate.db.d']);
    const gz = spawnSync('gunzip', ['-c', path.join(rel, 'db_2.raw.gz')]);
    assert.ok(gz.stdout.equals(readFileSync(img)));
    assert.ok(readFileSync(path.join(rel, 'db_2.roothash')).equals(readFileSync(path.join(src, 'db_2.roothash'))));
    assert.deepEqual(readdirSync(path.join(rel, 'sysupdate.db.d')).sort(), [
      'db-roothash-p7s.conf', 'db-roothash-p7s.transfer', 'db-roothash.conf', 'db-roothash.transfer',
      'db-verity.conf', 'db-verity.transfer', 'db.conf', 'db.transfer',
    ]);
    const verity = readFileSync(path.join(rel, 'sysupdate.db.d/db-verity.transfer'), 'utf8');
    assert.match(verity, /^MatchPattern=db_@v\.verity\.gz$/m);
    assert.match(verity, /^MatchPattern=db_@v\.verity\nCurrentSymlink=db\.verity$/m);
    const p7s = readFileSync(path.join(rel, 'sysupdate.db.d/db-roothash-p7s.transfer'), 'utf8');
    // Published as db_2.p7s (no name in the folder starts like another), installed under systemd's name.
    assert.match(p7s, /^Path=\S+\nMatchPattern=db_@v\.p7s$/m);
    assert.match(p7s, /^MatchPattern=db_@v\.roothash\.p7s\nCurrentSymlink=db\.roothash\.p7s$/m);
    assert.ok(readFileSync(path.join(rel, 'db_2.p7s')).equals(readFileSync(path.join(src, 'db_2.roothash.p7s'))));
    // Gzip output carries no time: publishing the same image into another folder gives the same bytes.
    const rel2 = tempDir('mkp-pub-');
    cleanup.push(rel2);
    assert.equal((await runCli(['publish', img, '--to', rel2, '--compress', 'gz'])).code, 0);
    assert.equal(sha256(readFileSync(path.join(rel2, 'db_2.raw.gz'))), sha256(readFileSync(path.join(rel, 'db_2.raw.gz'))));

    for (const [name, why] of [
      ['db.raw', /name must be <pname>_<version>\.raw/],
      ['db_1~rc1.raw', /version '1~rc1' has a character systemd-sysupdate's @v cannot match/],
    ] as const) {
      const bad = fakeImage(src, name);
      const out = tempDir('mkp-pub-bad-');
      cleanup.push(out);
      const b = await runCli(['publish', bad, '--to', out]);
      assert.equal(b.code, 1, name);
      assert.match(b.stderr, why);
      assert.equal(b.stderr.split('\n').filter(Boolean).length, 1);
      assert.deepEqual(readdirSync(out), [], `nothing written for ${name}`);
    }
    const usage = await runCli(['publish', img]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--to DIR/);
  });

  test('--gpg-key: SHA256SUMS.gpg is a detached signature gpg verifies; an unsigned publish cannot go stale over it', async (t) => {
    if (!needs(t, hasCommand('gpg') && hasCommand('gpgv'), 'gpg and gpgv (apt-get install gpg)')) return;
    const g = throwawayGpg();
    const src = tempDir('mkp-pub-src-');
    const rel = tempDir('mkp-pub-');
    cleanup.push(src, rel);
    try {
      const fpr = g.newKey('mkportable test <release@example.invalid>');
      const img = fakeImage(src, 'api_3.raw');
      const r = await runCli(['publish', img, '--to', rel, '--gpg-key', fpr], { env: g.env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /signed into SHA256SUMS\.gpg/);
      const keyring = path.join(src, 'pubring.gpg');
      g.exportKey(fpr, keyring);
      const ok = spawnSync('gpgv', ['--keyring', keyring, path.join(rel, 'SHA256SUMS.gpg'), path.join(rel, 'SHA256SUMS')], { encoding: 'utf8' });
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(readFileSync(path.join(rel, 'sysupdate.api.d/api.transfer'), 'utf8'), /^Verify=yes$/m);

      const img2 = fakeImage(src, 'api_4.raw');
      const unsigned = await runCli(['publish', img2, '--to', rel], { env: g.env });
      assert.equal(unsigned.code, 1);
      assert.match(unsigned.stderr, /SHA256SUMS\.gpg: this folder is signed; pass --gpg-key/);
      assert.ok(!readdirSync(rel).includes('api_4.raw'));
      const badKey = await runCli(['publish', img2, '--to', rel, '--gpg-key', 'nobody@example.invalid'], { env: g.env });
      assert.equal(badKey.code, 1);
      assert.match(badKey.stderr, /^mkportable: error: signing SHA256SUMS failed: .*\n$/);
      assert.ok(!readdirSync(rel).includes('api_4.raw'), 'a failed signature publishes nothing');
      assert.equal(spawnSync('gpgv', ['--keyring', keyring, path.join(rel, 'SHA256SUMS.gpg'), path.join(rel, 'SHA256SUMS')]).status, 0, 'old signature still matches');
    } finally {
      stopAgent(g);
      rmSync(g.home, { recursive: true, force: true });
    }
  });
});
