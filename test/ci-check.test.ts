// The check that keeps CI honest (scripts/run-tests.mjs with scripts/testing/): run on scratch suites under
// test/fixtures/ci-check/, it must fail each hole by name and pass a sound suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { inCI } from '../scripts/testing/ci.mjs';
import { REPO, runCommand } from './support/env.js';

const fixtures = path.join(REPO, 'test/fixtures/ci-check');

/** Runs the project's test command on one scratch file, as a fresh run (not as a child of this test run). */
function runCheck(file: string, ci: boolean) {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_TEST_CONTEXT; // set by node for test processes; a nested run would otherwise report to us
  delete env.CI;
  if (ci) env.CI = 'true';
  return runCommand(process.execPath, ['scripts/run-tests.mjs', '--no-build', path.join(fixtures, file)], { env });
}

test('in CI, the check fails the run and names each hole: skipped describe, todo, empty describe, empty body, runtime skip, empty loop', async () => {
  const r = await runCheck('holes.ts', true);
  assert.notEqual(r.code, 0, `the run passed:\n${r.stdout}${r.stderr}`);
  const expected = [
    /holes\.ts:6: suite skipped in CI: a skipped describe \(tool not installed\)/,
    /holes\.ts:10: test marked todo in CI: a todo that fails \(not written yet\)/,
    /holes\.ts:14: suite ran no tests: an empty describe/,
    /holes\.ts:16: an empty test body: ran no assertions and started no subtests/,
    /holes\.ts:18: test skipped in CI: a test that skips itself at run time \(prerequisite missing\)/,
    /holes\.ts:22: a loop over nothing: ran no assertions and started no subtests/,
  ];
  for (const re of expected) assert.match(r.stderr, re);
  // node's own report still ends the output, so CI logs keep the runner's closing lines.
  assert.match(r.stdout, /^# todo 1$/m);
});

test('outside CI, skips and todos pass but checking nothing still fails', async () => {
  const r = await runCheck('holes.ts', false);
  assert.notEqual(r.code, 0);
  assert.doesNotMatch(r.stderr, /skipped in CI|todo in CI/);
  assert.match(r.stderr, /suite ran no tests: an empty describe/);
  assert.match(r.stderr, /an empty test body: ran no assertions/);
  assert.match(r.stderr, /a loop over nothing: ran no assertions/);
});

test('in CI, a sound suite (suite, subtest, async assertion) passes the check', async () => {
  const r = await runCheck('sound.ts', true);
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^# pass 4$/m);
  assert.equal(r.stderr, '');
});

test('one definition of CI: set and not 0/false/no/off', () => {
  for (const v of ['true', '1', 'yes', 'TRUE', 'on', 'github'])
    assert.equal(inCI({ CI: v }), true, `CI=${v}`);
  for (const v of [undefined, '', ' ', '0', 'false', 'False', 'no', 'off'])
    assert.equal(inCI({ CI: v }), false, `CI=${v}`);
});

test('.ci/run sets CI=true itself before anything else runs', () => {
  const lines = readFileSync(path.join(REPO, '.ci/run'), 'utf8').split('\n');
  const first = lines.findIndex((l) => l.trim() && !l.startsWith('#'));
  assert.equal(lines[first], 'export CI=true');
});

test('a failing assert(value) names the value, not the counting wrapper', () => {
  assert.throws(() => assert(0), (err: Error) => /The expression evaluated to a falsy value/.test(err.message) && !/\.mjs/.test(err.message));
});
