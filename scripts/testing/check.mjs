// The CI check over the records reporter.mjs writes. Under CI every test must run, so a skipped test or suite and a
// todo are failures; at any time a suite with no tests and a test file that registers no tests are failures (a test
// body that checks nothing already fails by itself, see assertion-count.mjs).

/**
 * @param {Array<{file: string, line?: number, name: string, kind: string, passed: boolean, skip: string | boolean,
 *   todo: string | boolean, subtests: number, error?: string}>} records
 * @param {{ ci: boolean, root?: string }} opts
 * @returns {string[]} one line per problem, naming the test
 */
export function ciProblems(records, { ci, root = process.cwd() }) {
  const problems = [];
  const where = (r) => `${relative(r.file, root)}${r.line ? `:${r.line}` : ''}`;
  const reason = (v) => (typeof v === 'string' && v ? ` (${v})` : '');
  if (!records.length) problems.push('no test reported a result');
  for (const r of records) {
    if (r.kind === 'file' && r.passed) problems.push(`${where(r)}: the file registered no tests`);
    else if (r.skip !== false && ci) problems.push(`${where(r)}: ${r.kind} skipped in CI: ${r.name}${reason(r.skip)}`);
    else if (r.todo !== false && ci) problems.push(`${where(r)}: ${r.kind} marked todo in CI: ${r.name}${reason(r.todo)}`);
    else if (r.kind === 'suite' && r.skip === false && r.todo === false && r.subtests === 0) {
      problems.push(`${where(r)}: suite ran no tests: ${r.name}`);
    }
  }
  return problems;
}

/** The failed tests (not todo), for the closing summary. */
export function failures(records, { root = process.cwd() } = {}) {
  return records
    .filter((r) => !r.passed && r.todo === false && r.kind !== 'suite')
    .map((r) => `${relative(r.file, root)}${r.line ? `:${r.line}` : ''}: ${r.name}${r.error ? `: ${r.error}` : ''}`);
}

function relative(file, root) {
  return file.startsWith(`${root}/`) ? file.slice(root.length + 1) : file;
}
