// Counts, per running test, the assertions it makes and the subtests it starts, so that a test which checks
// nothing fails instead of passing. Test code reaches the counting asserts through the import redirection in
// count-hooks.mjs (its `node:assert` imports resolve to counted-assert*.mjs); count-register.mjs turns it all on.
import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import { inspect } from 'node:util';

/** @typedef {{ asserts: number, subtests: number }} TestState */
/** @type {AsyncLocalStorage<TestState>} */
const current = new AsyncLocalStorage();

export const NOTHING_CHECKED = 'ran no assertions and started no subtests: a test must check something (or skip with a reason)';

/** Wraps an assert module (the function and its methods) so that every call counts for the running test. */
export function countedAssert(target) {
  const note = () => {
    const s = current.getStore();
    if (s) s.asserts++;
  };
  const wrapped = function assert(...args) {
    note();
    return callOk(target, wrapped, args);
  };
  for (const key of Object.keys(target)) {
    const value = target[key];
    if (key === 'ok') {
      wrapped.ok = function ok(...args) {
        note();
        return callOk(target, wrapped.ok, args);
      };
    } else if (typeof value === 'function' && /^[a-z]/.test(key) && key !== 'strict') {
      wrapped[key] = function (...args) {
        note();
        return value.apply(target, args);
      };
      Object.defineProperty(wrapped[key], 'name', { value: key });
    } else {
      wrapped[key] = value;
    }
  }
  return wrapped;
}

// assert(x)/assert.ok(x) without a message quote the caller's source line; behind a wrapper that line would be
// the wrapper's own, so the message names the value instead and the stack starts at the real caller.
function callOk(target, self, args) {
  try {
    return target.ok(...args);
  } catch (err) {
    if (err?.code === 'ERR_ASSERTION' && err.generatedMessage) {
      err.message = args.length ? `The expression evaluated to a falsy value: ${inspect(args[0])}` : 'No value argument passed to `assert.ok()`';
      Error.captureStackTrace(err, self);
    }
    throw err;
  }
}

/**
 * Makes every test body count. node:test runs a test's body through the Test's AsyncResource.runInAsyncScope
 * (the public async_hooks API), so wrapping that method reaches every test however it was declared (test, it,
 * t.test) without standing between the test file and test(), which would move the location node reports.
 * Suites and hooks run through the same method with other classes and are left alone.
 */
export function countTestBodies() {
  /** @type {WeakMap<object, TestState>} */
  const states = new WeakMap();
  const original = AsyncResource.prototype.runInAsyncScope;
  AsyncResource.prototype.runInAsyncScope = function (fn, thisArg, ...args) {
    if (this.constructor?.name !== 'Test' || fn !== this.fn || thisArg?.constructor?.name !== 'TestContext') {
      return original.call(this, fn, thisArg, ...args);
    }
    const test = this;
    /** @type {TestState} */
    const state = { asserts: 0, subtests: 0 };
    states.set(test, state);
    const parent = states.get(test.parent);
    if (parent) parent.subtests++;
    const check = () => {
      if (!state.asserts && !state.subtests && !test.skipped && !test.isTodo) throw new Error(NOTHING_CHECKED);
    };
    const callback = fn.length === args.length && typeof args.at(-1) === 'function' ? args.pop() : undefined;
    if (callback) {
      // Error-first callback style: check when the test says it is done.
      args.push((err, ...rest) => {
        if (!err) {
          try {
            check();
          } catch (e) {
            err = e;
          }
        }
        return callback(err, ...rest);
      });
    }
    // The store is set inside the scope: the Test resource carries the context it was created in.
    const counted = function (...a) {
      return current.run(state, () => fn.apply(this, a));
    };
    const r = original.call(this, counted, thisArg, ...args);
    if (callback) return r;
    if (r && typeof r.then === 'function') return r.then((v) => (check(), v));
    check();
    return r;
  };
}
