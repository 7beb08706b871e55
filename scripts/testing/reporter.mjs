// A node:test reporter (--test-reporter=./scripts/testing/reporter.mjs) that writes one JSON line per finished test
// or suite: where it is, its full name, whether it passed, was skipped or todo, and how many subtests it had.
// scripts/run-tests.mjs reads these lines to apply the CI check (check.mjs); the human-readable output comes from
// node's own spec/tap reporter running alongside.

export default async function* testRecords(source) {
  /** Per file: names of the tests being reported, by nesting, and how many children each has finished. */
  const files = new Map();
  for await (const event of source) {
    const d = event.data;
    if (!d || (event.type !== 'test:start' && event.type !== 'test:pass' && event.type !== 'test:fail')) continue;
    const file = d.file ?? '';
    let f = files.get(file);
    if (!f) files.set(file, (f = { names: [], children: [] }));
    if (event.type === 'test:start') {
      f.names[d.nesting] = d.name;
      f.names.length = d.nesting + 1;
      continue;
    }
    const subtests = f.children[d.nesting + 1] ?? 0;
    f.children[d.nesting + 1] = 0;
    f.children[d.nesting] = (f.children[d.nesting] ?? 0) + 1;
    const path = [...f.names.slice(0, d.nesting), d.name];
    const error = d.details?.error;
    yield `${JSON.stringify({
      file,
      line: d.line,
      column: d.column,
      name: path.join(' > '),
      nesting: d.nesting,
      kind: d.details?.type === 'suite' ? 'suite' : d.name === file && d.nesting === 0 ? 'file' : 'test',
      passed: event.type === 'test:pass',
      skip: d.skip ?? false,
      todo: d.todo ?? false,
      subtests,
      error: error ? String(error.cause?.message ?? error.message ?? error).split('\n')[0] : undefined,
    })}\n`;
  }
}
