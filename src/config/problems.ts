/**
 * Config checks run to the end and report every problem of a file at once: one error for one problem (its own
 * code and message), one CONFIG_INVALID error listing them all, on one line, for several.
 */
import { MkportableError } from '../errors.js';

export interface Problems {
  /** Run one check and return its result; a MkportableError it throws is recorded (the result is then undefined), anything else propagates. */
  check<T>(f: () => T): T | undefined;
  add(e: MkportableError): void;
  /** Throw what was recorded, if anything. */
  done(): void;
}

export function collectProblems(where: string): Problems {
  const found: MkportableError[] = [];
  const strip = (m: string) => (m.startsWith(`${where}: `) ? m.slice(where.length + 2) : m);
  return {
    check(f) {
      try {
        return f();
      } catch (e) {
        if (!(e instanceof MkportableError)) throw e;
        found.push(e);
        return undefined;
      }
    },
    add: (e) => void found.push(e),
    done() {
      if (found.length === 0) return;
      if (found.length === 1) throw found[0];
      const each = found.map((e) => strip(e.message));
      throw new MkportableError('CONFIG_INVALID', `${where}: ${found.length} problems: ${each.join('; ')}`, where, each);
    },
  };
}
