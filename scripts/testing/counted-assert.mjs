// node:assert and node:assert/strict as test files see them under scripts/run-tests.mjs (every call counts).
import legacy from 'node:assert';
import { countedAssert } from './assertion-count.mjs';

export const strict = countedAssert(legacy.strict);
strict.strict = strict;
export const assert = countedAssert(legacy);
assert.strict = strict;
