import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SETTINGS } from '../config/settings.js';
import { commandHelp } from './args.js';
import { COMMANDS, mainHelp } from './main.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const build = COMMANDS.find((c) => c.name === 'build')!;

/** The README's option table: option, flag cell, default cell, per row, in order. */
function readmeOptionTable(): { key: string; flags: string[]; default: string }[] {
  // The table right after the '| option | flag | default | meaning |' header, up to its first non-table line.
  const lines = README.split('\n');
  const header = lines.findIndex((l) => /^\| option \| flag \| default \|/.test(l));
  assert.ok(header > 0, 'README has no option table');
  const end = lines.findIndex((l, i) => i > header && !l.startsWith('|'));
  const rows = lines.slice(header + 2, end);
  return rows.map((l) => {
    const cells = l.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    return { key: cells[0].replace(/`/g, ''), flags: cells[1].match(/--[a-z-]+/g) ?? [], default: cells[2].replace(/`/g, '') };
  });
}

test('the README option table and the settings table hold the same options, flags and defaults, in order', () => {
  const table = readmeOptionTable();
  assert.deepEqual(table.map((r) => r.key), SETTINGS.map((s) => s.key));
  for (const [i, s] of SETTINGS.entries()) {
    assert.deepEqual(table[i].flags, [`--${s.flag}`, ...(s.aliases ?? []).map((a) => `--${a}`)], `flags of ${s.key}`);
    assert.equal(table[i].default, s.default, `default of ${s.key}`);
  }
});

test('build --help lists every setting with its flag, aliases and default', () => {
  const help = commandHelp(build);
  for (const s of SETTINGS) {
    const line = help.split('\n').find((l) => l.startsWith(`  --${s.flag}`));
    assert.ok(line, `build --help lacks --${s.flag}`);
    for (const a of s.aliases ?? []) assert.ok(line.includes(`--${a}`), `--${s.flag} line lacks --${a}`);
    if (s.kind !== 'boolean' && !['none', '[]', '{}'].includes(s.default)) {
      assert.ok(line.includes(s.default.startsWith('required') ? `(${s.default})` : `(default: ${s.default})`), `--${s.flag}: ${line}`);
    }
  }
});

test('build --help names the native writer, not mksquashfs on PATH, as the default of --squashfs-tools', () => {
  const line = commandHelp(build).split('\n').find((l) => l.startsWith('  --squashfs-tools'))!;
  assert.match(line, /\(default: the native writer\)/);
  assert.doesNotMatch(commandHelp(build), /mksquashfs on PATH/);
});

test('every command has its own help, and mkportable --help lists each of them', () => {
  const main = mainHelp();
  for (const c of COMMANDS) {
    const help = commandHelp(c);
    assert.match(help, new RegExp(`^Usage: mkportable ${c.name}\\b`));
    assert.match(help, /^  -h, --help +this help$/m);
    assert.match(main, new RegExp(`^  ${c.name}\\b.* ${c.summary.replace(/[()[\]<>.*+?]/g, '\\$&')}$`, 'm'));
  }
});

/** The column at which each table row's description starts. */
function descriptionColumns(text: string): number[] {
  return text.split('\n').filter((l) => /^  \S/.test(l)).map((l) => /^  \S+(?: \S+)*? {2,}/.exec(l)?.[0].length ?? -1);
}

test('mkportable --help columns line up', () => {
  const cols = descriptionColumns(mainHelp());
  assert.ok(cols.length >= 8, String(cols));
  assert.equal(new Set(cols).size, 1, `descriptions start at columns ${cols}`);
});

test('command help columns line up (long flags wrap below, at the same column)', () => {
  for (const c of COMMANDS) {
    const lines = commandHelp(c).split('\n');
    const start = lines.indexOf('Options:') + 1;
    const table = lines.slice(start, lines.indexOf('', start));
    const cols = new Set<number>();
    for (const l of table) {
      const m = /^(  \S.*?  +)\S/.exec(l) ?? /^( {4,})\S/.exec(l);
      if (m) cols.add(m[1].length);
    }
    assert.equal(cols.size, 1, `${c.name}: ${[...cols]}\n${table.join('\n')}`);
  }
});
