// Preloaded (--import) into every test process by scripts/run-tests.mjs: a test body that makes no assertion and
// starts no subtest fails (see assertion-count.mjs).
import { register } from 'node:module';
import { countTestBodies } from './assertion-count.mjs';

register('./count-hooks.mjs', import.meta.url);
countTestBodies();
