/**
 * os-release(5): the image's /usr/lib/os-release, which portabled requires and which scripts `.` from a shell.
 * We write only a form that a POSIX shell and systemd's own parser (parse_env_file) read identically, and read
 * tolerantly with systemd's rules, reporting anything a shell would read differently.
 */
import { MkportableError } from '../errors.js';

/** os-release(5) keys: upper case, digits and underscores, starting with a letter. */
const RENDER_KEY = /^[A-Z][A-Z0-9_]*$/;
/** Values made only of these need no quotes in a shell; everything else is double-quoted. */
const BARE_VALUE = /^[A-Za-z0-9._+:/@%-]+$/;
/** Any shell variable name is accepted when reading; systemd accepts the same. */
const PARSE_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A value quoted for a one-line message, with control characters written as escapes. */
function quoted(s: string): string {
  return `'${s.replace(/[\x00-\x1f\x7f]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`))}'`;
}

/**
 * Quote one value. The empty string renders as `""`: same meaning as a bare `KEY=` for shells and systemd, but
 * visibly deliberate, and it keeps the rule simple ("bare only when non-empty and all safe characters").
 */
export function quoteOsReleaseValue(value: string): string {
  if (BARE_VALUE.test(value)) return value;
  return `"${value.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

export function renderOsRelease(fields: [string, string][] | Record<string, string>): string {
  const entries = Array.isArray(fields) ? fields : Object.entries(fields);
  const seen = new Set<string>();
  let out = '';
  for (const [key, value] of entries) {
    if (!RENDER_KEY.test(key)) {
      throw new MkportableError('CONFIG_INVALID', `os-release key ${quoted(key)} is invalid: keys must match [A-Z][A-Z0-9_]*`, key);
    }
    if (seen.has(key)) throw new MkportableError('CONFIG_INVALID', `os-release key ${quoted(key)} is given twice`, key);
    seen.add(key);
    // A newline would need a multi-line quoted value, which os-release readers other than shells mishandle;
    // other control characters are "non-printable characters [that] should not be used" (os-release(5)).
    const control = /[\x00-\x1f\x7f]/.exec(value);
    if (control) {
      const what = control[0] === '\n' ? 'a newline' : `control character U+${control[0].charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`;
      throw new MkportableError('CONFIG_INVALID', `os-release value of ${key} contains ${what}`, key);
    }
    if (LONE_SURROGATE.test(value)) {
      throw new MkportableError('CONFIG_INVALID', `os-release value of ${key} is not valid Unicode (lone surrogate)`, key);
    }
    out += `${key}=${quoteOsReleaseValue(value)}\n`;
  }
  return out;
}

export interface OsReleaseProblem {
  /** 1-based line where the offending assignment starts. */
  line: number;
  message: string;
}

export interface ParsedOsRelease {
  fields: Map<string, string>;
  problems: OsReleaseProblem[];
}

/** Characters a shell treats specially when they appear unquoted in an assignment value. */
const SHELL_SPECIAL = `"'$\`;&|<>()`;

interface ValueScan {
  value: string;
  end: number;
  newlines: number;
  issues: Set<string>;
}

/**
 * Read one value starting just after `=`, with the states of systemd's parse_env_file: quotes are recognised at the
 * start of the value and right after another quoted part, quoted parts are concatenated, unquoted text runs to the
 * end of the line with trailing whitespace dropped, and backslash-newline continues the line.
 */
function scanValue(s: string, i: number): ValueScan {
  const issues = new Set<string>();
  let value = '';
  let newlines = 0;
  let unquoted = false; // systemd's VALUE state: inside unquoted text, where quotes are literal
  let parts = 0; // quoted parts read so far
  let wsPending = false; // unquoted whitespace seen after some value text
  let trailingWsAt = -1; // where the trailing unquoted whitespace starts in `value`
  let leadingWs = false; // whitespace between '=' and the first value character

  const text = (): void => {
    if (leadingWs) issues.add("whitespace after '=' (a shell would assign an empty value and run the rest as a command)");
    leadingWs = false;
    if (wsPending) issues.add('unquoted whitespace inside the value (a shell would run the rest as a command)');
    wsPending = false;
    trailingWsAt = -1;
  };

  while (i < s.length) {
    const c = s[i];
    if (c === '\n') break;
    if (c === '\\') {
      const next = s[i + 1];
      i += 2;
      if (next === undefined) break;
      if (next === '\n') {
        newlines++;
        continue;
      }
      text();
      if (parts > 0 && !unquoted) issues.add('quoted strings are concatenated, which os-release(5) does not allow');
      unquoted = true;
      value += next;
      continue;
    }
    if (c === ' ' || c === '\t') {
      if (!unquoted && parts === 0) leadingWs = true;
      if (unquoted) {
        if (trailingWsAt < 0) trailingWsAt = value.length;
        value += c;
      }
      if (unquoted || parts > 0) wsPending = true;
      i++;
      continue;
    }
    if (!unquoted && (c === '"' || c === "'")) {
      text();
      if (parts > 0) issues.add('quoted strings are concatenated, which os-release(5) does not allow');
      const q = c === '"' ? scanDouble(s, i + 1) : scanSingle(s, i + 1);
      value += q.value;
      newlines += q.newlines;
      q.issues.forEach((m) => issues.add(m));
      i = q.end;
      parts++;
      continue;
    }
    text();
    if (!unquoted && parts > 0) issues.add('quoted strings are concatenated, which os-release(5) does not allow');
    if (SHELL_SPECIAL.includes(c)) issues.add(`unquoted '${c}' (a shell would read it as syntax)`);
    unquoted = true;
    value += c;
    i++;
  }
  if (trailingWsAt >= 0) value = value.slice(0, trailingWsAt);
  return { value, end: i, newlines, issues };
}

function scanSingle(s: string, i: number): ValueScan {
  const close = s.indexOf("'", i);
  const end = close < 0 ? s.length : close;
  const value = s.slice(i, end);
  const issues = new Set<string>(close < 0 ? ['unterminated single quote'] : []);
  return { value, end: close < 0 ? end : end + 1, newlines: value.split('\n').length - 1, issues };
}

function scanDouble(s: string, i: number): ValueScan {
  const issues = new Set<string>();
  let value = '';
  let newlines = 0;
  for (;;) {
    const c = s[i];
    if (c === undefined) {
      issues.add('unterminated double quote');
      return { value, end: i, newlines, issues };
    }
    if (c === '"') return { value, end: i + 1, newlines, issues };
    if (c === '\\') {
      const next = s[i + 1];
      if (next === undefined) {
        i++;
        continue;
      }
      if ('"\\`$'.includes(next)) value += next;
      else if (next === '\n') newlines++; // escaped newline: line continuation, removed
      else value += `\\${next}`; // like a shell, other backslashes stay
      i += 2;
      continue;
    }
    if (c === '$' || c === '`') issues.add(`unescaped '${c}' inside double quotes (a shell would expand it)`);
    if (c === '\n') newlines++;
    value += c;
    i++;
  }
}

/**
 * Parse os-release text. Never throws: lines without `=`, invalid keys, unterminated quotes and values a shell would
 * read differently from systemd are listed in `problems` (the value systemd would see is still kept, except for
 * lines without a valid key). A later assignment of the same key wins, as in a shell.
 */
export function parseOsRelease(text: string): ParsedOsRelease {
  const s = text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  const fields = new Map<string, string>();
  const problems: OsReleaseProblem[] = [];
  let i = 0;
  let line = 1;
  while (i < s.length) {
    const c = s[i];
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (c === '#' || c === ';') {
      if (c === ';') problems.push({ line, message: "';' comment: only '#' starts a comment in a shell" });
      while (i < s.length && s[i] !== '\n') i++;
      continue;
    }
    const start = line;
    let eq = i;
    while (eq < s.length && s[eq] !== '=' && s[eq] !== '\n') eq++;
    if (s[eq] !== '=') {
      problems.push({ line: start, message: `missing '=' in ${quoted(s.slice(i, eq).trim())}` });
      i = eq;
      continue;
    }
    const rawKey = s.slice(i, eq);
    const key = rawKey.replace(/[ \t]+$/, '');
    const scan = scanValue(s, eq + 1);
    line += scan.newlines;
    i = scan.end;
    if (!PARSE_KEY.test(key)) {
      problems.push({ line: start, message: key === '' ? "missing key name before '='" : `invalid key ${quoted(key)}` });
      continue;
    }
    if (key !== rawKey) {
      problems.push({ line: start, message: `${key}: whitespace before '=' (a shell would run '${key}' as a command)` });
    }
    for (const m of scan.issues) problems.push({ line: start, message: `${key}: ${m}` });
    fields.set(key, scan.value);
  }
  return { fields, problems };
}
