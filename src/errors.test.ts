import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { asMkportableError, fileError, MkportableError, systemReason } from './errors.js';

test('systemReason: libuv\'s text and the errno name, without the syscall and path Node appends', async () => {
  const e = await fs.open('/nonexistent/x', 'r').catch((err: unknown) => err);
  assert.equal(systemReason(e), 'no such file or directory (ENOENT)');
  assert.equal(systemReason(new Error('first\nsecond')), 'first');
  assert.equal(fileError('SOURCE_READ', '/a', 'read', e).message, '/a: cannot read: no such file or directory (ENOENT)');
});

test('asMkportableError: a system error gets its path, a verb and a code; others pass through', async () => {
  const e = await fs.mkdir('/nonexistent/x/y').catch((err: unknown) => err);
  const m = asMkportableError(e, (file) => (file?.startsWith('/nonexistent') ? 'OUTPUT_FAILED' : 'SOURCE_READ'));
  assert.ok(m instanceof MkportableError);
  assert.equal(m.code, 'OUTPUT_FAILED');
  assert.equal(m.subject, '/nonexistent/x/y');
  assert.equal(m.message, '/nonexistent/x/y: cannot create the folder: no such file or directory (ENOENT)');
  const known = new MkportableError('CONFIG_INVALID', 'x');
  assert.equal(asMkportableError(known), known);
  const bug = new TypeError('undefined is not a function');
  assert.equal(asMkportableError(bug), bug);
});

test('a very long path is cut in the middle of the message, and kept whole as the subject', () => {
  const long = `/${'a'.repeat(4000)}`;
  const e = fileError('SOURCE_READ', long, 'look up', Object.assign(new Error('ENAMETOOLONG: name too long, lstat'), { code: 'ENAMETOOLONG' }));
  assert.match(e.message, /^\/a{63}…a{32} \(4001 bytes\): cannot look up: name too long \(ENAMETOOLONG\)$/);
  assert.equal(e.subject, long);
});
