/**
 * What `mkportable pack` shows: under a real terminal (a pty from util-linux `script`), the live bar; through a
 * pipe, nothing but the result; --progress=plain, the step lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { hasCommand, needs, runCli, runCommand, tempDir, REPO } from './support/env.js';

function folder(t: { after(fn: () => void): void }): string {
  const dir = tempDir(t);
  mkdirSync(path.join(dir, 'd'));
  for (let i = 0; i < 300; i++) writeFileSync(path.join(dir, 'd', `f${i}`), `file ${i} `.repeat(200 + i * 10));
  return dir;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

test('on a terminal, pack draws a live progress bar (bytes, files, rate, ratio, ETA)', async (t) => {
  if (!needs(t, hasCommand('script'), 'util-linux script (a pty) not installed')) return;
  const dir = folder(t);
  const img = path.join(dir, 'out.raw');
  const cmd = [process.execPath, path.join(REPO, 'bin/mkportable.js'), 'pack', path.join(dir, 'd'), img, '--squash-compression', 'xz', '--squash-block-size', '4K', '--no-cache']
    .map(shellQuote).join(' ');
  const r = await runCommand('script', ['-qec', cmd, '/dev/null']);
  assert.equal(r.code, 0, r.stdout);
  const shown = r.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]|\r/g, '\n');
  assert.match(shown, /mkportable: packing .*out\.raw…/);
  assert.match(shown, /\[[█░]+\] 100% \| [\d.]+\/[\d.]+ MiB \| 300\/300 files \| [\d.]+ MiB\/s \| ratio \d+% \| ETA/);
  assert.ok(existsSync(img));
});

test('through a pipe, or with --progress=none, pack prints nothing; --progress=plain prints step lines', async (t) => {
  const dir = folder(t);
  const quiet = await runCli(['pack', path.join(dir, 'd'), path.join(dir, 'a.raw'), '--no-cache']);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stdout + quiet.stderr, '');
  const none = await runCli(['pack', path.join(dir, 'd'), path.join(dir, 'b.raw'), '--no-cache', '--progress=none']);
  assert.equal(none.stdout + none.stderr, '');
  const plain = await runCli(['pack', path.join(dir, 'd'), path.join(dir, 'c.raw'), '--no-cache', '--progress', 'plain']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(plain.stdout, '');
  const lines = plain.stderr.trim().split('\n');
  assert.match(lines[0], /^mkportable: packing .*c\.raw…$/);
  assert.match(lines[1], /^mkportable: data: [\d.]+ MiB in 300 files → [\d.]+ MiB \(ratio 0\.\d+\) in [\d.]+ s/);
  assert.equal(lines.length, 2);
  const bad = await runCli(['pack', path.join(dir, 'd'), path.join(dir, 'e.raw'), '--progress=loud']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--progress: expected bar, plain or none, got 'loud'/);
});

test('on a terminal, build --json prints the result and nothing else; build shows its steps and the bar', async (t) => {
  if (!needs(t, hasCommand('script'), 'util-linux script (a pty) not installed')) return;
  const dir = tempDir(t);
  const cli = path.join(REPO, 'bin/mkportable.js');
  const build = (out: string, extra: string[]) => runCommand('script', ['-qec',
    [process.execPath, cli, 'build', path.join(REPO, 'examples/demo'), '--out', path.join(dir, out), '--no-cache', ...extra].map(shellQuote).join(' '), '/dev/null']);
  const json = await build('json', ['--json']);
  assert.equal(json.code, 0, json.stdout);
  // The pty merges stdout and stderr: everything shown must be the one JSON document.
  const result = JSON.parse(json.stdout.replace(/\r/g, ''));
  assert.ok(existsSync(result.image));
  assert.doesNotMatch(json.stdout, /\x1b\[|mkportable: /);
  const shown = await build('bar', []);
  assert.equal(shown.code, 0, shown.stdout);
  const text = shown.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]|\r/g, '\n');
  assert.match(text, /mkportable: resolving the closure/);
  assert.match(text, /\[[█░]+\] 100% \|/);
});
