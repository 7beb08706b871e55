/**
 * What the CLI prints: results on stdout (a reader that goes away, as `| head` does, ends the command quietly,
 * as it ends cat), and every failure as one line on stderr, never a stack trace.
 */
import { asMkportableError, isSystemError, MkportableError } from '../errors.js';
import { UsageError } from './args.js';

/** stdout was closed by its reader (EPIPE): stop, print nothing, exit as cat does when SIGPIPE ends it. */
export class StdoutClosed extends Error {}

/** 128 + SIGPIPE: the status a shell reports for `cat` cut short by `| head`. */
export const EXIT_STDOUT_CLOSED = 141;

let closed = false;

/**
 * Without a listener, an EPIPE on stdout or stderr is an uncaught 'error' event (a stack trace); the writes
 * themselves report it to their callbacks.
 */
export function guardStdio(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') closed = true;
  });
  process.stderr.on('error', () => {});
}

/** Write to stdout, resolving once the data is handed to the OS; rejects with StdoutClosed after EPIPE. */
export function writeStdout(data: string | Uint8Array): Promise<void> {
  if (closed) return Promise.reject(new StdoutClosed());
  return new Promise((resolve, reject) => {
    process.stdout.write(data, (err) => {
      if (!err) resolve();
      else if ((err as NodeJS.ErrnoException).code === 'EPIPE') {
        closed = true;
        reject(new StdoutClosed());
      } else reject(err);
    });
  });
}

export interface ErrorReport {
  code: string;
  message: string;
  path: string | null;
  problems?: readonly string[];
}

/** Any thrown value as the error object `--json` prints and the line stderr shows. */
export function describeError(e: unknown): ErrorReport & { usage: boolean; bug: boolean } {
  if (e instanceof UsageError) return { code: 'USAGE', message: e.message, path: null, usage: true, bug: false };
  const known = asMkportableError(e);
  if (known instanceof MkportableError) {
    return {
      code: known.code, message: known.message, path: known.subject ?? null, usage: false, bug: false,
      ...(known.problems ? { problems: known.problems } : {}),
    };
  }
  const text = e instanceof Error ? e.message : String(e);
  return { code: isSystemError(e) ? e.code : 'INTERNAL', message: text.split('\n')[0], path: null, usage: false, bug: true };
}

/** Print a failure: one line on stderr, and with `json` the error object on stdout. Returns the exit status. */
export function reportError(e: unknown, o: { json?: boolean; prefix?: string } = {}): number {
  if (e instanceof StdoutClosed) return EXIT_STDOUT_CLOSED;
  const d = describeError(e);
  const prefix = o.prefix ?? 'mkportable';
  let line: string;
  if (d.usage) line = `${prefix}: ${d.message}`;
  else if (d.bug) {
    line = `${prefix}: internal error: ${d.message} (a bug in mkportable; MKPORTABLE_DEBUG=1 shows where)`;
    if (process.env.MKPORTABLE_DEBUG && e instanceof Error && e.stack) line += `\n${e.stack}`;
  } else line = `${prefix}: error: ${d.message}`;
  // A message may quote a value holding a newline; the error stays one line.
  process.stderr.write(`${d.bug && process.env.MKPORTABLE_DEBUG ? line : line.replace(/\n/g, '\\n')}\n`);
  if (o.json && !closed) {
    const report: ErrorReport = { code: d.code, message: d.message, path: d.path, ...(d.problems ? { problems: d.problems } : {}) };
    process.stdout.write(`${JSON.stringify({ error: report })}\n`);
  }
  return d.usage ? 2 : 1;
}
