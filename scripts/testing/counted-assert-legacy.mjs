import { assert, strict } from './counted-assert.mjs';

export default assert;
export const {
  fail, AssertionError, ok, equal, notEqual, deepEqual, notDeepEqual, deepStrictEqual, notDeepStrictEqual, strictEqual,
  notStrictEqual, throws, rejects, doesNotThrow, doesNotReject, ifError, match, doesNotMatch, CallTracker,
} = assert;
export { strict };
