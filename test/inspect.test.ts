// mkportable inspect: one fixture per rule, built by the project's own writer from small trees (and by mksquashfs,
// which must get the same verdicts), then the verdicts checked against real systemd-portabled.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { hasCommand, needs, runCli, runCommand, tempDir } from './support/env.js';
import { portabledPrerequisites, startPortabledContainer, type PortabledContainer } from './support/portabled.js';
import { packDirectory } from '../src/pack.js';
import type { InspectReport } from '../src/inspect/index.js';

interface Fixture {
  name: string;
  /** Changes the extracted demo tree. */
  change?: (root: string) => void;
  /** Image file name (default demo_1.0.raw). */
  file?: string;
  blockSize?: string;
  rules: string[];
  /** What real portabled does: attach refused, attached and started, or attached but the start fails. */
  reality: 'refused' | 'runs' | 'start-fails';
  /** Files to create on the portabled host (the container) for this attach only. */
  onHost?: Record<string, string>;
  /** Units whose attached copy must match (a RegExp on its text), or must not be attached at all (null). */
  attached?: Record<string, RegExp | null>;
}

const unit = (root: string, name: string, text: string) => writeFileSync(path.join(root, 'etc/systemd/system', name), text);
const osRelease = (root: string, text: string) => {
  rmSync(path.join(root, 'etc/os-release'));
  writeFileSync(path.join(root, 'etc/os-release'), text);
};

const LINK_TARGET = '/opt/demo/demo-link.service';
const linkedUnitText = (from: string) => `[Unit]\nDescription=demo-link from ${from}\n\n[Service]\nExecStart=/bin/sh -c 'sleep 1000'\n`;
/** etc/systemd/system/demo-link.service -> /opt/demo/demo-link.service, a real unit inside the image. */
function linkedUnit(root: string): void {
  mkdirSync(path.join(root, path.dirname(LINK_TARGET)), { recursive: true });
  writeFileSync(path.join(root, LINK_TARGET), linkedUnitText('the image'));
  symlinkSync(LINK_TARGET, path.join(root, 'etc/systemd/system/demo-link.service'));
}

const FIXTURES: Fixture[] = [
  { name: 'good', rules: [], reality: 'runs' },
  { name: 'suffix', file: 'demo_1.0.img', rules: ['image-name-suffix'], reality: 'refused' },
  { name: 'prefix-chars', file: 'de+mo_1.0.raw', rules: ['image-name-prefix', 'no-matching-units', 'prefix-not-in-portable-prefixes', 'unit-ignored-prefix'], reality: 'refused' },
  { name: 'no-os-release', change: (r) => rmSync(path.join(r, 'etc/os-release')), rules: ['os-release-missing'], reality: 'refused' },
  { name: 'no-id', change: (r) => osRelease(r, 'PORTABLE_PREFIXES=demo\nIMAGE_ID=demo\n'), rules: ['os-release-no-id'], reality: 'refused' },
  { name: 'malformed-os-release', change: (r) => osRelease(r, 'ID=debian\nthis is not a key\nPORTABLE_PREFIXES=demo\n'), rules: ['os-release-malformed'], reality: 'runs' },
  { name: 'no-match', file: 'other_1.0.raw', rules: ['no-matching-units', 'prefix-not-in-portable-prefixes', 'unit-ignored-prefix'], reality: 'refused' },
  { name: 'not-in-portable-prefixes', change: (r) => osRelease(r, 'ID=debian\nPORTABLE_PREFIXES=something-else\n'), rules: ['prefix-not-in-portable-prefixes'], reality: 'refused' },
  { name: 'ignored-type', change: (r) => unit(r, 'demo.mount', '[Mount]\nWhat=tmpfs\nWhere=/mnt\n'), rules: ['unit-ignored-type'], reality: 'runs' },
  { name: 'ignored-prefix', change: (r) => unit(r, 'other.service', '[Service]\nExecStart=/bin/sh -c true\n'), rules: ['unit-ignored-prefix'], reality: 'runs' },
  { name: 'empty-unit', change: (r) => unit(r, 'demo-empty.service', ''), rules: ['unit-empty'], reality: 'runs' },
  // An absolute unit symlink whose target the image holds. portabled opens it on its own root (the host), so the
  // image's target is never read: where the host has no such file the unit is not attached, and where it has one,
  // the host's file is what gets attached.
  {
    name: 'absolute-symlink-unit',
    change: linkedUnit,
    rules: ['unit-absolute-symlink'],
    reality: 'runs',
    attached: { 'demo.service': /Demo portable service/, 'demo-link.service': null },
  },
  {
    name: 'absolute-symlink-unit-host-target',
    change: linkedUnit,
    rules: ['unit-absolute-symlink'],
    reality: 'runs',
    onHost: { [LINK_TARGET]: linkedUnitText('the host') },
    attached: { 'demo-link.service': /^Description=demo-link from the host$/m },
  },
  {
    name: 'mount-points',
    change: (r) => {
      rmSync(path.join(r, 'etc/machine-id'));
      rmSync(path.join(r, 'var/tmp'), { recursive: true });
    },
    rules: ['mount-point-missing'],
    reality: 'start-fails',
  },
  { name: 'exec-missing', change: (r) => unit(r, 'demo.service', '[Service]\nExecStart=/usr/bin/no-such-daemon\n'), rules: ['exec-missing'], reality: 'start-fails' },
  {
    name: 'exec-not-executable',
    change: (r) => {
      chmodSync(path.join(r, 'usr/bin/date'), 0o644);
      unit(r, 'demo.service', '[Service]\nExecStart=/usr/bin/date\n');
    },
    rules: ['exec-not-executable'],
    reality: 'start-fails',
  },
  {
    // %p is the unit's prefix, "demo": systemd runs /usr/bin/demo, which inspect cannot know.
    name: 'exec-specifier',
    change: (r) => {
      symlinkSync('date', path.join(r, 'usr/bin/demo'));
      const file = path.join(r, 'etc/systemd/system/demo.service');
      writeFileSync(file, readFileSync(file, 'utf8').replace('[Service]\n', '[Service]\nExecStartPre=/usr/bin/%p\n'));
    },
    rules: ['exec-specifier'],
    reality: 'runs',
  },
  { name: 'library-missing', change: (r) => rmSync(path.join(r, 'usr/lib/x86_64-linux-gnu/libc.so.6')), rules: ['library-missing'], reality: 'start-fails' },
  // libc names the interpreter as a DT_NEEDED library too.
  { name: 'interpreter-missing', change: (r) => rmSync(path.join(r, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2')), rules: ['elf-interpreter-missing', 'library-missing'], reality: 'start-fails' },
  {
    name: 'script-interpreter-missing',
    change: (r) => {
      writeFileSync(path.join(r, 'usr/bin/demo-run'), '#!/usr/bin/python3\nprint(1)\n');
      chmodSync(path.join(r, 'usr/bin/demo-run'), 0o755);
      unit(r, 'demo.service', '[Service]\nExecStart=/usr/bin/demo-run\n');
    },
    rules: ['script-interpreter-missing'],
    reality: 'start-fails',
  },
  {
    name: 'elf-invalid',
    change: (r) => {
      const dash = path.join(r, 'usr/bin/dash');
      rmSync(dash);
      writeFileSync(dash, Buffer.concat([Buffer.from('\x7fELF', 'latin1'), Buffer.alloc(60, 0xff)]), { mode: 0o755 });
    },
    rules: ['elf-invalid'],
    reality: 'start-fails',
  },
  { name: 'small-blocks', blockSize: '4K', rules: ['block-size-small'], reality: 'runs' },
  // glibc's loader ignores a cache it cannot read and searches its system directories, where the demo's libraries are.
  { name: 'ld-cache-invalid', change: (r) => writeFileSync(path.join(r, 'etc/ld.so.cache'), 'not a cache\n'), rules: ['ld-cache-invalid'], reality: 'runs' },
  {
    // ld.so.conf names the new folder, but the loader only reads the cache, which still names the old place.
    name: 'ld-so-conf-without-cache',
    change: (r) => {
      mkdirSync(path.join(r, 'opt/libs'), { recursive: true });
      copyFileSync(path.join(r, 'usr/lib/x86_64-linux-gnu/libc.so.6'), path.join(r, 'opt/libs/libc.so.6'));
      rmSync(path.join(r, 'usr/lib/x86_64-linux-gnu/libc.so.6'));
      writeFileSync(path.join(r, 'etc/ld.so.conf'), '/opt/libs\n');
    },
    rules: ['library-missing'],
    reality: 'start-fails',
  },
];

const ready = hasCommand('mksquashfs') && hasCommand('unsquashfs');

async function inspect(image: string): Promise<{ code: number; report: InspectReport }> {
  const r = await runCli(['inspect', image, '--json']);
  assert.ok(r.code === 0 || r.code === 1, `inspect exit ${r.code}: ${r.stderr}`);
  return { code: r.code, report: JSON.parse(r.stdout) as InspectReport };
}

describe('mkportable inspect', () => {
  const work = tempDir();
  const images = new Map<string, { native: string; peer: string }>();

  before(async () => {
    if (!ready) return;
    const built = await runCli(['build', 'examples/demo', '--out', work, '--json']);
    assert.equal(built.code, 0, built.stderr);
    const base = path.join(work, 'base');
    const ex = await runCommand('unsquashfs', ['-q', '-d', base, path.join(work, 'demo_1.0.raw')]);
    assert.equal(ex.code, 0, ex.stderr);
    for (const f of FIXTURES) {
      const root = path.join(work, `tree-${f.name}`);
      await fs.cp(base, root, { recursive: true, verbatimSymlinks: true });
      f.change?.(root);
      // A version per fixture: every attach in the container then uses a fresh image path.
      const file = f.file ?? `demo_1.0-${f.name}.raw`;
      for (const backend of ['native', 'mksquashfs'] as const) {
        const dir = path.join(work, backend, f.name);
        mkdirSync(dir, { recursive: true });
        await packDirectory(root, path.join(dir, file), { backend, allRoot: true, blockSize: f.blockSize ?? '128K', compression: 'gzip' });
      }
      images.set(f.name, { native: path.join(work, 'native', f.name, file), peer: path.join(work, 'mksquashfs', f.name, file) });
    }
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const f of FIXTURES) {
    test(`fixture '${f.name}' is judged ${f.rules.length ? f.rules.join(', ') : 'clean'}, by our image and mksquashfs's alike`, async (t) => {
      if (!needs(t, ready, 'squashfs-tools not installed')) return;
      const { native, peer } = images.get(f.name)!;
      const ours = await inspect(native);
      const rules = [...new Set(ours.report.problems.map((p) => p.rule))].sort();
      assert.deepEqual(rules, [...f.rules].sort(), JSON.stringify(ours.report.problems, null, 1));
      const errors = ours.report.problems.some((p) => p.severity === 'error');
      assert.equal(ours.code, errors ? 1 : 0);
      const theirs = await inspect(peer);
      assert.deepEqual(theirs.report.problems, ours.report.problems);
      assert.deepEqual(theirs.report.units, ours.report.units);
    });
  }

  test('directories are inspected too, and an unreadable image exits 2', async () => {
    const dirReport = await runCli(['inspect', 'examples/demo', '--json']);
    assert.equal(dirReport.code, 1);
    const junk = path.join(work, 'junk_1.raw');
    writeFileSync(junk, Buffer.alloc(8192, 7));
    const r = await runCli(['inspect', junk]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /junk_1\.raw/);
    assert.equal((await runCli(['inspect'])).code, 2);
  });

  test('mkportable build refuses an image that inspect finds errors in, unless --no-check', async (t) => {
    const dir = tempDir(t);
    writeFileSync(path.join(dir, 'demo.service'), '[Service]\nExecStart=/bin/sh -c true\n');
    // An os-release override that drops ID= makes portabled refuse the image.
    const args = ['build', '--pname', 'demo', '--version', '1', '--unit', path.join(dir, 'demo.service'), '--out', path.join(dir, 'out'), '--os-release', 'ID='];
    const refused = await runCli(args);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /os-release-no-id/);
    await assert.rejects(fs.stat(path.join(dir, 'out', 'demo_1.raw')));
    const forced = await runCli([...args, '--no-check']);
    assert.equal(forced.code, 0, forced.stderr);
  });

  const pre = portabledPrerequisites();
  test('verdicts agree with real systemd-portabled: refused, runs, fails at start, which units are attached', { timeout: 10 * 60_000 }, async (t) => {
    if (!needs(t, pre.ok && ready, `prerequisites missing: ${pre.ok ? 'squashfs-tools' : pre.reason}`)) return;
    let c: PortabledContainer | undefined;
    try {
      c = await startPortabledContainer();
      let attachedChecks = 0;
      for (const f of FIXTURES) {
        const { native } = images.get(f.name)!;
        for (const [file, text] of Object.entries(f.onHost ?? {})) {
          await c.exec(['mkdir', '-p', path.dirname(file)]);
          await c.exec(['sh', '-c', 'cat > "$1"', 'sh', file], { input: text });
        }
        const file = path.basename(native);
        await c.copyIn(native, `/var/lib/portables/${file}`);
        const inContainer = `/var/lib/portables/${file}`;
        const attach = await c.exec(['portablectl', 'attach', '--now', '--runtime', inContainer], { allowFail: true, timeoutMs: 30_000 });
        const out = `${f.name}: ${attach.stdout}${attach.stderr}`;
        if (f.reality === 'refused') {
          assert.notEqual(attach.code, 0, `portabled attached a fixture inspect says it refuses: ${out}`);
        } else {
          assert.equal(attach.code, 0, `portabled refused a fixture inspect accepts: ${out}`);
          // Restart=always makes a failing service flap: a failure shows as a non-success Result.
          let state = '';
          let failed = false;
          for (let i = 0; i < 50; i++) {
            state = (await c.exec(['systemctl', 'show', '-P', 'ActiveState', 'demo.service'], { allowFail: true })).stdout.trim();
            const result = (await c.exec(['systemctl', 'show', '-P', 'Result', 'demo.service'], { allowFail: true })).stdout.trim();
            failed ||= state === 'failed' || result !== 'success';
            if (f.reality === 'runs' && state === 'active' && i >= 5) break;
            if (f.reality === 'start-fails' && failed) break;
            await new Promise((r) => setTimeout(r, 200));
          }
          const journal = async () => (await c.exec(['journalctl', '-u', 'demo.service', '--no-pager', '-n', '15'], { allowFail: true })).stdout;
          if (f.reality === 'runs') assert.ok(state === 'active' && !failed, `${f.name}: demo.service should run\n${await journal()}`);
          else assert.ok(failed, `${f.name}: demo.service should fail at start\n${await journal()}`);
          for (const [name, want] of Object.entries(f.attached ?? {})) {
            const copy = await c.exec(['cat', `/run/systemd/system.attached/${name}`], { allowFail: true });
            const load = (await c.exec(['systemctl', 'show', '-P', 'LoadState', name], { allowFail: true })).stdout.trim();
            if (want === null) {
              assert.notEqual(copy.code, 0, `${f.name}: portabled attached ${name}:\n${copy.stdout}`);
              assert.equal(load, 'not-found', `${f.name}: ${name} is known to systemd`);
              assert.doesNotMatch(attach.stdout + attach.stderr, new RegExp(name.replace('.', '\\.')), `${f.name}: attach names ${name}`);
            } else {
              assert.equal(copy.code, 0, `${f.name}: ${name} was not attached: ${copy.stderr}\n${out}`);
              assert.match(copy.stdout, want, `${f.name}: attached ${name}`);
              assert.equal(load, 'loaded', `${f.name}: ${name}`);
            }
            attachedChecks++;
          }
          const detach = await c.exec(['portablectl', 'detach', '--now', '--runtime', inContainer], { allowFail: true });
          assert.equal(detach.code, 0, `${f.name}: detach: ${detach.stderr}`);
          await c.exec(['systemctl', 'reset-failed'], { allowFail: true });
        }
        await c.exec(['rm', '-f', `/var/lib/portables/${file}`, ...Object.keys(f.onHost ?? {})]);
      }
      assert.equal(attachedChecks, FIXTURES.reduce((n, f) => n + Object.keys(f.attached ?? {}).length, 0), 'every attached-unit check ran');
    } finally {
      await c?.stop();
    }
  });
});
