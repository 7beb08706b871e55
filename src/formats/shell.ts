/**
 * The programs a POSIX shell script names in command position, read statically (never run): enough for the one-line
 * scripts units pass to `sh -c`. Simple commands are split at `;`, `&`, `&&`, `||`, `|`, newlines, parentheses and
 * braces; command substitutions (`$(…)` and backticks, inside double quotes too) are scripts of their own. In each
 * simple command, leading assignments and redirections are skipped and the first word is the command; after the
 * reserved words that start a command list (`if`, `then`, `do`, `!`, …) the next word is a command again, and the
 * words of `for NAME in …` and `case WORD in PATTERN)` are not. A command word built from expansions (`$cmd`) cannot
 * be known without running the script: it is returned in `unresolved`.
 */

export interface ShellCommands {
  /** Command words in order of appearance, each once: names ("date") or paths ("/usr/bin/grep"). */
  commands: string[];
  /** Command words that depend on expansions, as written. */
  unresolved: string[];
}

/** Words that start a new command after them. */
const LIST_STARTERS = new Set(['if', 'then', 'else', 'elif', 'do', 'while', 'until', '!', '{', 'time']);
/** Words that end a construct; the next word (if any) starts a command. */
const CLOSERS = new Set(['fi', 'done', 'esac', '}']);

/** Shell builtins and special utilities of dash and bash: they run inside the shell, not from a file. */
export const SHELL_BUILTINS = new Set([
  ':', '.', '[', 'alias', 'bg', 'break', 'builtin', 'caller', 'cd', 'command', 'compgen', 'complete', 'continue',
  'declare', 'dirs', 'disown', 'echo', 'enable', 'eval', 'exec', 'exit', 'export', 'false', 'fc', 'fg', 'getopts',
  'hash', 'help', 'history', 'jobs', 'kill', 'let', 'local', 'mapfile', 'popd', 'printf', 'pushd', 'pwd', 'read',
  'readarray', 'readonly', 'return', 'set', 'shift', 'shopt', 'source', 'suspend', 'test', 'times', 'trap', 'true',
  'type', 'typeset', 'ulimit', 'umask', 'unalias', 'unset', 'wait',
]);

/** Builtins whose next word is itself a command. */
const PREFIX_BUILTINS = new Set(['exec', 'command', 'builtin', 'time']);

type Token = { kind: 'word'; text: string; dynamic: boolean } | { kind: 'op'; text: string };

interface Scan {
  tokens: Token[];
  /** Command substitutions met, as scripts. */
  substitutions: string[];
  /** Where scanning stopped (the closing `)` of a substitution, or the end). */
  end: number;
}

const OPERATORS = ['&&', '||', ';;', '|&', ';', '&', '|', '(', ')', '\n'];

/** Index just past the `)` that closes a `$(` opened before `start`, honouring quotes and nesting. */
function skipSubstitution(s: string, start: number): number {
  return scan(s, start, true).end;
}

function scan(s: string, start: number, inSubstitution: boolean): Scan {
  const tokens: Token[] = [];
  const substitutions: string[] = [];
  let i = start;
  let word = '';
  let dynamic = false;
  let inWord = false;
  const flush = () => {
    if (inWord) tokens.push({ kind: 'word', text: word, dynamic });
    word = '';
    dynamic = false;
    inWord = false;
  };
  const dollar = (): void => {
    // At s[i] === '$'.
    const next = s[i + 1];
    if (next === '(' && s[i + 2] === '(') {
      // Arithmetic: no commands inside (nested substitutions in it are rare enough to ignore).
      let depth = 0;
      let j = i + 1;
      for (; j < s.length; j++) {
        if (s[j] === '(') depth++;
        else if (s[j] === ')' && --depth === 0) break;
      }
      word += s.slice(i, j + 1);
      dynamic = true;
      inWord = true;
      i = j + 1;
      return;
    }
    if (next === '(') {
      const end = skipSubstitution(s, i + 2);
      substitutions.push(s.slice(i + 2, end - 1));
      word += s.slice(i, end);
      dynamic = true;
      inWord = true;
      i = end;
      return;
    }
    if (next === '{') {
      const j = s.indexOf('}', i);
      const end = j < 0 ? s.length : j + 1;
      word += s.slice(i, end);
      dynamic = true;
      inWord = true;
      i = end;
      return;
    }
    if (next !== undefined && /[A-Za-z0-9_@*#?$!-]/.test(next)) {
      let j = i + 1;
      if (/[A-Za-z_]/.test(next)) while (j < s.length && /[A-Za-z0-9_]/.test(s[j])) j++;
      else j++;
      word += s.slice(i, j);
      dynamic = true;
      inWord = true;
      i = j;
      return;
    }
    word += '$';
    inWord = true;
    i++;
  };
  const backtick = (): void => {
    let j = i + 1;
    let inner = '';
    for (; j < s.length && s[j] !== '`'; j++) {
      if (s[j] === '\\' && j + 1 < s.length) inner += s[++j];
      else inner += s[j];
    }
    substitutions.push(inner);
    word += s.slice(i, j + 1);
    dynamic = true;
    inWord = true;
    i = j + 1;
  };
  while (i < s.length) {
    const ch = s[i];
    if (inSubstitution && ch === ')' ) {
      flush();
      return { tokens, substitutions, end: i + 1 };
    }
    if (ch === '\\') {
      if (s[i + 1] === '\n') {
        i += 2;
        continue;
      }
      word += s[i + 1] ?? '';
      inWord = true;
      i += 2;
      continue;
    }
    if (ch === "'") {
      const j = s.indexOf("'", i + 1);
      const end = j < 0 ? s.length : j;
      word += s.slice(i + 1, end);
      inWord = true;
      i = end + 1;
      continue;
    }
    if (ch === '"') {
      inWord = true;
      i++;
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) {
          word += s[i + 1];
          i += 2;
        } else if (s[i] === '$') dollar();
        else if (s[i] === '`') backtick();
        else word += s[i++];
      }
      i++;
      continue;
    }
    if (ch === '$') {
      dollar();
      continue;
    }
    if (ch === '`') {
      backtick();
      continue;
    }
    if (ch === '#' && !inWord) {
      while (i < s.length && s[i] !== '\n') i++;
      continue;
    }
    if (ch === ' ' || ch === '\t') {
      flush();
      i++;
      continue;
    }
    // Redirections: the operator and its target word are not part of the command.
    const redir = /^(\d*)(>>|<<-?|<&|>&|<>|>\||<|>)/.exec(s.slice(i));
    if (redir && (!inWord || /^\d+$/.test(word))) {
      if (/^\d+$/.test(word)) {
        word = '';
        inWord = false;
      }
      flush();
      tokens.push({ kind: 'op', text: 'redirect' });
      i += redir[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => s.startsWith(o, i));
    if (op) {
      flush();
      tokens.push({ kind: 'op', text: op });
      i += op.length;
      continue;
    }
    word += ch;
    inWord = true;
    i++;
  }
  flush();
  return { tokens, substitutions, end: s.length };
}

/** The commands of a shell script, best effort; see the module comment. */
export function shellCommands(script: string): ShellCommands {
  const commands: string[] = [];
  const unresolved: string[] = [];
  const seen = new Set<string>();
  const functions = new Set<string>();
  const add = (list: string[], w: string) => {
    const key = `${list === commands ? 'c' : 'u'}\0${w}`;
    if (!seen.has(key)) {
      seen.add(key);
      list.push(w);
    }
  };
  const visit = (src: string, depth: number) => {
    if (depth > 16) return;
    const { tokens, substitutions } = scan(src, 0, false);
    let expectCommand = true;
    // 'for' / 'case' headers: words until 'do' / 'in' are not commands; case patterns run until ')'.
    let skipUntil: string | undefined;
    let inCasePatterns = false;
    for (let k = 0; k < tokens.length; k++) {
      const t = tokens[k];
      if (t.kind === 'op') {
        if (t.text === 'redirect') {
          k++; // its target word
          continue;
        }
        if (inCasePatterns) {
          if (t.text === ')') {
            inCasePatterns = false;
            expectCommand = true;
          }
          continue;
        }
        if (t.text === ';;') inCasePatterns = true;
        expectCommand = true;
        continue;
      }
      if (skipUntil) {
        if (!t.dynamic && t.text === skipUntil) {
          const wasCase = skipUntil === 'in';
          skipUntil = undefined;
          if (wasCase) inCasePatterns = true;
          else expectCommand = true;
        }
        continue;
      }
      if (inCasePatterns) {
        if (!t.dynamic && t.text === 'esac') {
          inCasePatterns = false;
          expectCommand = false;
        }
        continue;
      }
      if (!expectCommand) continue;
      if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(t.text)) continue; // an assignment before the command
      if (t.dynamic) {
        add(unresolved, t.text);
        expectCommand = false;
        continue;
      }
      const w = t.text;
      if (LIST_STARTERS.has(w)) continue;
      if (CLOSERS.has(w)) {
        expectCommand = false;
        continue;
      }
      if (w === 'for' || w === 'select') {
        skipUntil = 'do';
        continue;
      }
      if (w === 'case') {
        skipUntil = 'in';
        continue;
      }
      if (w === 'function') {
        const name = tokens[++k];
        if (name?.kind === 'word') functions.add(name.text);
        continue;
      }
      // `name() {…}` defines a function: the name is no program.
      const next = tokens[k + 1];
      if (next?.kind === 'op' && next.text === '(' && tokens[k + 2]?.kind === 'op' && (tokens[k + 2] as { text: string }).text === ')') {
        functions.add(w);
        k += 2;
        continue;
      }
      if (PREFIX_BUILTINS.has(w)) {
        // `command -v x` asks about x; it runs nothing.
        while (tokens[k + 1]?.kind === 'word' && (tokens[k + 1] as { text: string }).text.startsWith('-')) {
          if (w === 'command' && /^-[vV]/.test((tokens[k + 1] as { text: string }).text)) {
            expectCommand = false;
            break;
          }
          k++;
        }
        continue;
      }
      expectCommand = false;
      if (SHELL_BUILTINS.has(w)) continue;
      add(commands, w);
    }
    for (const sub of substitutions) visit(sub, depth + 1);
  };
  visit(script, 0);
  return { commands: commands.filter((c) => !functions.has(c)), unresolved };
}
