import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress, progressMode, type ProgressStream } from './progress.js';

/** A terminal that records what is drawn on it (cli-progress draws through cursor escapes). */
function fakeTerminal(isTTY = true): ProgressStream & { text: string } {
  return {
    isTTY,
    columns: 120,
    text: '',
    write(s: string) {
      this.text += s;
      return true;
    },
  };
}

const step = (bytes: number, files: number, stored: number) => ({ bytes, files, stored, totalBytes: 10 << 20, totalFiles: 40 });

test('progress modes: a bar on a terminal, nothing elsewhere or with --json, the flag wins', () => {
  assert.equal(progressMode(undefined, false, fakeTerminal(true)), 'bar');
  assert.equal(progressMode(undefined, false, fakeTerminal(false)), 'none');
  assert.equal(progressMode(undefined, true, fakeTerminal(true)), 'none');
  assert.equal(progressMode('plain', false, fakeTerminal(false)), 'plain');
  assert.equal(progressMode('none', false, fakeTerminal(true)), 'none');
  assert.throws(() => progressMode('fancy', false, fakeTerminal(true)), /expected bar, plain or none/);
});

test('the bar shows bytes and files done of the total, rate, ratio and ETA; step lines stay', async () => {
  const term = fakeTerminal();
  const ui = createProgress('bar', term);
  ui.step('resolving the closure');
  ui.write(step(0, 0, 0));
  await new Promise((r) => setTimeout(r, 150));
  ui.write(step(5 << 20, 20, 1 << 20));
  await new Promise((r) => setTimeout(r, 150));
  ui.write(step(10 << 20, 40, 2 << 20));
  ui.done();
  ui.step('checking the image');
  const plain = term.text.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/g, '');
  assert.match(plain, /^mkportable: resolving the closure…\n/);
  assert.match(plain, /\] 50% \| 5\.0\/10\.0 MiB \| 20\/40 files \| [\d.]+ MiB\/s \| ratio 20% \| ETA/);
  assert.match(plain, /\] 100% \| 10\.0\/10\.0 MiB \| 40\/40 files/);
  assert.match(plain, /mkportable: checking the image…\n$/, 'the next step gets a line of its own');
  assert.match(term.text, /\x1b\[\?25l/, 'the cursor is hidden while the bar is drawn');
  assert.match(term.text, /\x1b\[\?25h/, '... and shown again');
});

test('plain: step lines and one line for the data; none: nothing at all', () => {
  const term = fakeTerminal(false);
  const ui = createProgress('plain', term);
  ui.step('writing out.raw');
  ui.write(step(1 << 20, 2, 1 << 19));
  ui.write(step(10 << 20, 40, 4 << 20));
  ui.write(step(10 << 20, 40, 4 << 20));
  ui.done();
  const lines = term.text.trim().split('\n');
  assert.equal(lines.length, 2, term.text);
  assert.equal(lines[0], 'mkportable: writing out.raw…');
  assert.match(lines[1], /^mkportable: data: 10\.0 MiB in 40 files → 4\.0 MiB \(ratio 0\.400\) in [\d.]+ s/);
  const quiet = fakeTerminal(true);
  const none = createProgress('none', quiet);
  none.step('x');
  none.write(step(1, 1, 1));
  none.done();
  assert.equal(quiet.text, '');
});
