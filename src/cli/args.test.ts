import { test } from 'node:test';
import assert from 'node:assert/strict';
import { columns, parseCommandLine, UsageError, type CommandSpec } from './args.js';

const spec: CommandSpec = {
  name: 'demo',
  args: 'A [B]',
  summary: 'a demo command',
  flags: [
    { name: 'version', aliases: ['image-version'], type: 'string', help: 'v' },
    { name: 'unit', type: 'string', multiple: true, help: 'u' },
    { name: 'json', type: 'boolean', help: 'j' },
    { name: 'contents', type: 'string', multiple: true, help: 'c' },
  ],
  positionals: { min: 1, max: 2, message: 'demo takes A and an optional B' },
};

const usage = (args: string[], re: RegExp) =>
  assert.throws(() => parseCommandLine(spec, args), (e: unknown) => e instanceof UsageError && re.test(e.message) && !e.message.includes('\n'));

test('flags, aliases, repeats, --x=y and -- parse to canonical names', () => {
  const r = parseCommandLine(spec, ['a', '--image-version', '1', '--unit', 'x', '--unit=y', '--json', '--', '--not-a-flag']);
  assert.deepEqual(r.values, { version: '1', unit: ['x', 'y'], json: true });
  assert.deepEqual(r.positionals, ['a', '--not-a-flag']);
  assert.equal(r.help, false);
});

test('--help and -h win over a wrong positional count', () => {
  assert.equal(parseCommandLine(spec, ['--help']).help, true);
  assert.equal(parseCommandLine(spec, ['-h', 'a', 'b', 'c']).help, true);
});

test('an unknown flag is a usage error with the nearest flag', () => {
  usage(['a', '--contnets', 'x'], /^demo: unknown option --contnets \(did you mean --contents\?\); see mkportable demo --help$/);
  usage(['a', '--jsn'], /did you mean --json\?/);
  usage(['a', '--image-versoin', '1'], /did you mean --image-version\?/);
  usage(['a', '--frobnicate'], /^demo: unknown option --frobnicate; see/);
  usage(['a', '-x'], /unknown option -x/);
});

test('a missing value, a value for a switch and a wrong positional count are usage errors', () => {
  usage(['a', '--version'], /--version needs a value/);
  usage(['a', '--version', '--json'], /--version needs a value, got the option --json \(write --version=--json/);
  usage(['a', '--json=yes'], /--json takes no value/);
  usage([], /demo takes A and an optional B/);
  usage(['a', 'b', 'c'], /demo takes A and an optional B/);
  // A value that merely starts with '-' and is no flag is a value.
  assert.deepEqual(parseCommandLine(spec, ['a', '--version', '-1']).values, { version: '-1' });
});

test('columns: descriptions start in one column; a first column past the limit wraps below', () => {
  const text = columns([['a', 'one'], ['bbbb', 'two'], ['c'.repeat(40), 'three']], { max: 10 });
  assert.deepEqual(text.split('\n'), ['  a     one', '  bbbb  two', `  ${'c'.repeat(40)}`, '        three']);
});
