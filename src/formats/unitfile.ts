/**
 * Reading systemd unit files the way systemd does (systemd.syntax(7), systemd.service(5) "Command lines"), so
 * the image gets exactly the executables systemd will run. Where systemd only warns and skips a bad line we
 * refuse: a build should not ship a unit that does something other than what its author wrote.
 */
import { MkportableError } from '../errors.js';

export interface UnitEntry {
  key: string;
  value: string;
  /** 1-based line of the entry's first physical line (where the key is, also for continued lines). */
  line: number;
}

export interface UnitSection {
  name: string;
  entries: UnitEntry[];
}

/** Sections in order of first appearance; a repeated header (systemd merges them) appends to the same section. */
export interface UnitFile {
  sections: UnitSection[];
}

/** The [Service] settings holding command lines, in systemd.service(5) order. */
export const EXEC_KEYS = [
  'ExecStart',
  'ExecStartPre',
  'ExecStartPost',
  'ExecReload',
  'ExecStop',
  'ExecStopPost',
  'ExecCondition',
] as const;

/** The [Socket] settings holding command lines (systemd.socket(5)); same syntax as EXEC_KEYS. */
export const SOCKET_EXEC_KEYS = ['ExecStartPre', 'ExecStartPost', 'ExecStopPre', 'ExecStopPost'] as const;

/** systemd's WHITESPACE: what strstrip() trims and what separates words. Not JS's wider \s. */
const WS = ' \t\n\r';
const isWs = (c: string | undefined): boolean => c !== undefined && c !== '' && WS.includes(c);

function strip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isWs(s[a])) a++;
  while (b > a && isWs(s[b - 1])) b--;
  return s.slice(a, b);
}

/** A value quoted for a one-line message, with control characters written as escapes. */
function quoted(s: string): string {
  return `'${s.replace(/[\x00-\x1f\x7f]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`))}'`;
}

/** True when the line ends in a backslash that is not itself escaped (`\\` at the end is a literal backslash). */
function endsWithContinuation(line: string): boolean {
  let escaped = false;
  for (const c of line) escaped = escaped ? false : c === '\\';
  return escaped;
}

// ---------------------------------------------------------------------------------------------------------------
// File structure

export function parseUnitFile(text: string, name: string): UnitFile {
  const sections: UnitSection[] = [];
  const byName = new Map<string, UnitSection>();
  let current: UnitSection | undefined;
  const fail = (line: number, reason: string): never => {
    throw new MkportableError('UNIT_INVALID', `${name}:${line}: ${reason}`, name);
  };

  const handle = (logical: string, line: number): void => {
    const l = strip(logical);
    if (l === '') return;
    if (l.startsWith('.include ')) fail(line, "'.include' is not supported by systemd; use a drop-in instead");
    if (l.startsWith('[')) {
      if (!l.endsWith(']') || l.length < 3) fail(line, `invalid section header ${quoted(l)}`);
      const sectionName = l.slice(1, -1);
      current = byName.get(sectionName);
      if (!current) {
        current = { name: sectionName, entries: [] };
        byName.set(sectionName, current);
        sections.push(current);
      }
      return;
    }
    if (!current) return fail(line, `assignment outside of a section: ${quoted(l)}`);
    const eq = l.indexOf('=');
    if (eq < 0) fail(line, `missing '=' in ${quoted(l)}`);
    const key = strip(l.slice(0, eq));
    if (key === '') fail(line, `missing key name before '=' in ${quoted(l)}`);
    current.entries.push({ key, value: strip(l.slice(eq + 1)), line });
  };

  // systemd splits at \n, \r\n and lone \r, and ignores a UTF-8 byte order mark.
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  let pending: { text: string; line: number } | undefined;
  lines.forEach((raw, i) => {
    // Comment lines are dropped before continuation handling, so they may sit inside a continued line.
    const first = raw[raw.search(/[^ \t\n\r]|$/)];
    if (first === '#' || first === ';') return;
    const joined = pending ? pending.text + raw : raw;
    const start = pending ? pending.line : i + 1;
    if (endsWithContinuation(raw)) {
      // The backslash becomes a space; the next line is appended as is (its indentation is kept).
      pending = { text: joined.slice(0, -1) + ' ', line: start };
      return;
    }
    pending = undefined;
    handle(joined, start);
  });
  if (pending) handle(pending.text, pending.line);
  return { sections };
}

/**
 * The entries of `key` in `section` that are in effect: an empty assignment resets the list, as systemd does for
 * list settings (ExecStartPre=, Environment=, ...). Use this rather than unitValues when you need line numbers.
 */
export function unitEntries(unit: UnitFile, section: string, key: string): UnitEntry[] {
  let out: UnitEntry[] = [];
  for (const s of unit.sections) {
    if (s.name !== section) continue;
    for (const e of s.entries) {
      if (e.key !== key) continue;
      if (e.value === '') out = [];
      else out.push(e);
    }
  }
  return out;
}

export function unitValues(unit: UnitFile, section: string, key: string): string[] {
  return unitEntries(unit, section, key).map((e) => e.value);
}

// ---------------------------------------------------------------------------------------------------------------
// Words: systemd's extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE) in the lenient form used for command
// lines (extract_first_word_and_warn): unknown escapes are kept verbatim, only unbalanced quotes are errors.

class WordError extends Error {}

/** Collects a word from literal characters and from escapes, some of which (\x, octal) produce raw bytes. */
class WordBuilder {
  private parts: string[] = [];
  private bytes: number[] = [];

  char(c: string): void {
    this.flush();
    this.parts.push(c);
  }

  byte(b: number): void {
    this.bytes.push(b);
  }

  done(): string {
    this.flush();
    return this.parts.join('');
  }

  private flush(): void {
    if (this.bytes.length === 0) return;
    try {
      this.parts.push(new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(this.bytes)));
    } catch {
      throw new WordError('escape sequences produce invalid UTF-8');
    }
    this.bytes = [];
  }
}

const SIMPLE_ESCAPES: Record<string, string> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
  '"': '"',
  "'": "'",
  s: ' ', // systemd extension, from XDG desktop files
};

/**
 * Decode one C escape (systemd's cunescape_one) starting after the backslash. Returns the number of characters
 * consumed, or 0 when it is not a valid escape. NUL is never accepted.
 */
function unescapeOne(s: string, i: number, out: WordBuilder): number {
  const c = s[i];
  if (Object.hasOwn(SIMPLE_ESCAPES, c)) {
    out.char(SIMPLE_ESCAPES[c]);
    return 1;
  }
  const hex = (n: number): number | undefined => {
    const digits = s.slice(i + 1, i + 1 + n);
    return digits.length === n && /^[0-9a-fA-F]+$/.test(digits) ? parseInt(digits, 16) : undefined;
  };
  if (c === 'x') {
    const v = hex(2);
    if (v === undefined || v === 0) return 0;
    out.byte(v);
    return 3;
  }
  if (c === 'u' || c === 'U') {
    const n = c === 'u' ? 4 : 8;
    const v = hex(n);
    if (v === undefined || v === 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    out.char(String.fromCodePoint(v));
    return n + 1;
  }
  if (c >= '0' && c <= '7') {
    const digits = s.slice(i, i + 3);
    if (!/^[0-7]{3}$/.test(digits)) return 0;
    const v = parseInt(digits, 8);
    if (v === 0 || v > 255) return 0;
    out.byte(v);
    return 3;
  }
  return 0;
}

function skipWs(s: string, pos: number): number {
  while (pos < s.length && isWs(s[pos])) pos++;
  return pos;
}

/** The next word at or after `pos`, and the position just after it; null when only whitespace is left. */
function nextWord(s: string, pos: number): { word: string; end: number } | null {
  pos = skipWs(s, pos);
  if (pos >= s.length) return null;
  const out = new WordBuilder();
  let quote: string | undefined;
  for (;;) {
    const c = s[pos];
    if (c === undefined) {
      if (quote) throw new WordError('unbalanced quoting');
      break;
    }
    if (c === '\\') {
      if (pos + 1 >= s.length) {
        if (quote) throw new WordError('unbalanced quoting');
        out.char('\\'); // a trailing unquoted backslash is kept verbatim
        pos++;
        break;
      }
      const used = unescapeOne(s, pos + 1, out);
      if (used > 0) {
        pos += 1 + used;
      } else {
        out.char('\\'); // unknown escape: systemd warns and keeps it verbatim
        out.char(s[pos + 1]);
        pos += 2;
      }
      continue;
    }
    if (quote) {
      if (c === quote) quote = undefined;
      else out.char(c);
      pos++;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c; // quotes may start anywhere in a word: a"b c" is one word "ab c"
      pos++;
      continue;
    }
    if (isWs(c)) break;
    out.char(c);
    pos++;
  }
  return { word: out.done(), end: pos };
}

/** Split a whole value into words with systemd's quoting rules (Environment=, arguments, ...). */
export function splitWords(value: string): string[] {
  const words: string[] = [];
  let pos = 0;
  for (let w = nextWord(value, pos); w; w = nextWord(value, pos)) {
    words.push(w.word);
    pos = w.end;
  }
  return words;
}

// ---------------------------------------------------------------------------------------------------------------
// Specifiers

/** True when `s` holds a `%x` specifier; `%%` is a literal percent and a final lone `%` stays literal. */
export function hasSpecifiers(s: string): boolean {
  for (let i = 0; i < s.length - 1; i++) {
    if (s[i] !== '%') continue;
    if (s[i + 1] !== '%') return true;
    i++;
  }
  return false;
}

/** Words without specifiers are made literal (`%%` -> `%`); words with specifiers stay as written. */
function resolvePercent(s: string): string {
  return hasSpecifiers(s) ? s : s.replace(/%%/g, '%');
}

// ---------------------------------------------------------------------------------------------------------------
// Command lines

export interface ExecCommand {
  /** The special prefixes as written, e.g. "-", "@", "+", "!!", "-@:" (any of @ - : + ! !! |). */
  prefixes: string;
  /**
   * What systemd executes: an absolute path (with `//` and `/./` collapsed, as systemd's path_simplify does) or a
   * bare file name that systemd looks up in its fixed search path (/usr/local/bin, /usr/bin, ...). Empty only for a
   * standalone `|` (systemd 258+: run the user's login shell).
   */
  executable: string;
  /** What the process receives as argv; with `@` the second word is argv[0]. */
  argv: string[];
  /** The executable contains `%` specifiers (other than `%%`) that only systemd can expand, e.g. `%h/bin/x`. */
  hasSpecifier: boolean;
}

const BYTES = new TextEncoder();
const byteLength = (s: string): number => BYTES.encode(s).length;

/** systemd's filename_is_valid(): one path component. */
function isValidFilename(s: string): boolean {
  return s !== '' && s !== '.' && s !== '..' && !s.includes('/') && byteLength(s) <= 255;
}

/** systemd's path_is_valid(): every component at most NAME_MAX bytes, the whole below PATH_MAX. */
function isValidPath(s: string): boolean {
  return s !== '' && byteLength(s) < 4096 && s.split('/').every((c) => byteLength(c) <= 255);
}

function simplifyPath(p: string): string {
  const parts = p.split('/').filter((c) => c !== '' && c !== '.');
  return (p.startsWith('/') ? '/' : '') + parts.join('/');
}

/** Strip the special prefixes with systemd's rules: each at most once, `+` and `!`/`!!` exclusive. */
function splitPrefixes(word: string): { prefixes: string; rest: string; separateArgv0: boolean; viaShell: boolean } {
  const seen = new Set<string>();
  let bangs = 0;
  let i = 0;
  for (; i < word.length; i++) {
    const c = word[i];
    if ((c === '-' || c === '@' || c === ':' || c === '|') && !seen.has(c)) seen.add(c);
    else if (c === '+' && !seen.has('+') && bangs === 0) seen.add('+');
    else if (c === '!' && !seen.has('+') && bangs < 2) bangs++;
    else break;
  }
  return {
    prefixes: word.slice(0, i),
    rest: word.slice(i),
    // With `|`, `@` means "login shell" instead of "argv[0] is the next word" (systemd.service(5), v258).
    separateArgv0: seen.has('@') && !seen.has('|'),
    viaShell: seen.has('|'),
  };
}

/**
 * All commands of one Exec*= value. systemd before 258 accepted several commands separated by a lone `;` word;
 * later versions dropped that syntax, but listing every command keeps the image complete for either. A literal `;`
 * argument is written `\;`. Returns [] for an empty value (which resets the list). Throws UNIT_INVALID where systemd
 * would refuse the line; `where` ("demo.service:7") prefixes the message and becomes the error's subject.
 */
export function parseExecCommands(value: string, where?: string): ExecCommand[] {
  const fail = (reason: string): never => {
    throw new MkportableError('UNIT_INVALID', `${where ? `${where}: ` : ''}invalid command line ${quoted(value)}: ${reason}`, where);
  };
  try {
    const commands: ExecCommand[] = [];
    let pos = 0;
    for (;;) {
      const first = nextWord(value, pos);
      if (!first) return commands;
      pos = first.end;
      if (first.word === ';') continue;

      const { prefixes, rest: path, separateArgv0, viaShell } = splitPrefixes(first.word);
      if (path === '' && !viaShell) fail('empty executable after the prefixes');
      if (path !== '') {
        if (/[\x00-\x1f\x7f"'\\]/.test(path)) fail(`executable ${quoted(path)} contains quotes, backslashes or control characters`);
        if (path.endsWith('/')) fail(`executable ${quoted(path)} names a directory`);
        // systemd checks the path after expanding specifiers, which only it can do ("%h/bin/x" is absolute then).
        if (!hasSpecifiers(path) && !(path.startsWith('/') ? isValidPath(path) : isValidFilename(path))) {
          fail(`executable ${quoted(path)} is neither an absolute path nor a bare file name`);
        }
      }

      const args: string[] = [];
      let more = false;
      for (;;) {
        const p = skipWs(value, pos);
        if (p >= value.length) {
          pos = p;
          break;
        }
        const endsWord = (k: number): boolean => k >= value.length || isWs(value[k]);
        if (value[p] === ';' && endsWord(p + 1)) {
          pos = p + 1;
          more = true;
          break;
        }
        if (value[p] === '\\' && value[p + 1] === ';' && endsWord(p + 2)) {
          args.push(';');
          pos = p + 2;
          continue;
        }
        const w = nextWord(value, p)!;
        args.push(w.word);
        pos = w.end;
      }

      const argv = separateArgv0 || path === '' ? args : [path, ...args];
      if (separateArgv0 && argv.length === 0) fail("'@' needs a second word to pass as argv[0]");
      commands.push({
        prefixes,
        executable: resolvePercent(simplifyPath(path)),
        argv: argv.map(resolvePercent),
        hasSpecifier: hasSpecifiers(path),
      });
      if (!more) return commands;
    }
  } catch (e) {
    if (e instanceof WordError) return fail(e.message);
    throw e;
  }
}

/** The first command of an Exec*= value, or null for an empty value. See parseExecCommands. */
export function parseExecLine(value: string, where?: string): ExecCommand | null {
  return parseExecCommands(value, where)[0] ?? null;
}

// ---------------------------------------------------------------------------------------------------------------
// Environment

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The variables set by the Environment= lines of `section` ([Service] by default; a socket unit's are in
 * [Socket]), later ones overriding earlier ones and an empty Environment= clearing them. Like systemd, an
 * assignment with unbalanced quotes is ignored as a whole, and words that are not NAME=VALUE with a shell-style
 * name are ignored. EnvironmentFile= is not read here.
 */
export function serviceEnvironment(unit: UnitFile, section = 'Service'): Map<string, string> {
  const env = new Map<string, string>();
  for (const value of unitValues(unit, section, 'Environment')) {
    let words: string[];
    try {
      words = splitWords(value);
    } catch (e) {
      if (e instanceof WordError) continue;
      throw e;
    }
    for (const w of words) {
      const eq = w.indexOf('=');
      if (eq <= 0) continue;
      const name = w.slice(0, eq);
      const v = w.slice(eq + 1);
      // systemd's env_value_is_valid(): no control characters besides tab and newline.
      if (!ENV_NAME.test(name) || /[\x00-\x08\x0b-\x1f\x7f]/.test(v)) continue;
      env.set(name, v);
    }
  }
  return env;
}
