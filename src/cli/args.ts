/**
 * Command lines: each command declares its flags once, and the same declaration parses, refuses with a
 * "did you mean", and writes the command's --help.
 */
import { didYouMean } from '../config/suggest.js';

/** A wrong command line: exit status 2, unlike a failure (1). */
export class UsageError extends Error {}

export interface FlagSpec {
  /** Canonical name without "--"; values are stored under it. */
  name: string;
  aliases?: string[];
  short?: string;
  type: 'boolean' | 'string';
  multiple?: boolean;
  /** The value's name in help (VALUE when unset). */
  arg?: string;
  help: string;
  /** Appended to the help, e.g. "(default: 1M)". */
  note?: string;
}

export interface CommandSpec {
  name: string;
  /** What follows the command name in the usage line, e.g. "IMAGE [PATH]". */
  args: string;
  summary: string;
  /** Paragraphs after the usage line. */
  about?: string;
  flags: FlagSpec[];
  /** Lines after the options (exit status, notes). */
  footer?: string;
  positionals: { min: number; max: number; message: string };
}

export interface Parsed {
  values: Record<string, unknown>;
  positionals: string[];
  help: boolean;
}

export const HELP_FLAG: FlagSpec = { name: 'help', short: 'h', type: 'boolean', help: 'this help' };

/** Parse `args` for `spec`; a usage error names the command, the flag and the nearest known flag. */
export function parseCommandLine(spec: CommandSpec, args: string[]): Parsed {
  const flags = [...spec.flags, HELP_FLAG];
  const byName = new Map<string, FlagSpec>();
  for (const f of flags) {
    byName.set(`--${f.name}`, f);
    for (const a of f.aliases ?? []) byName.set(`--${a}`, f);
    if (f.short) byName.set(`-${f.short}`, f);
  }
  const fail = (what: string) => new UsageError(`${spec.name}: ${what}; see mkportable ${spec.name} --help`);
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const flag = byName.get(name);
    if (!flag) {
      const long = [...byName.keys()].filter((k) => k.startsWith('--'));
      throw fail(`unknown option ${name}${didYouMean(name, long)}`);
    }
    let value: string | boolean;
    if (flag.type === 'boolean') {
      if (eq !== -1) throw fail(`${name} takes no value`);
      value = true;
    } else if (eq !== -1) {
      value = arg.slice(eq + 1);
    } else {
      const next = args[i + 1];
      if (next === undefined) throw fail(`${name} needs a value`);
      if (next.startsWith('-') && next !== '-' && byName.has(next.split('=')[0])) {
        throw fail(`${name} needs a value, got the option ${next} (write ${name}=${next} if that is the value)`);
      }
      value = next;
      i++;
    }
    if (flag.multiple) ((values[flag.name] ??= []) as unknown[]).push(value);
    else values[flag.name] = value;
  }
  const help = values.help === true;
  delete values.help;
  if (!help && (positionals.length < spec.positionals.min || positionals.length > spec.positionals.max)) {
    throw fail(spec.positionals.message);
  }
  return { values, positionals, help };
}

/**
 * Two columns, the second starting where the longest first column of at most `max` characters ends; longer
 * ones wrap below.
 * `width` forces the first column's width (tables that should line up with each other).
 */
export function columns(rows: [string, string][], o: { indent?: number; max?: number; width?: number } = {}): string {
  const indent = o.indent ?? 2;
  const max = o.max ?? 34;
  const width = o.width ?? Math.max(0, ...rows.map(([l]) => l.length).filter((n) => n <= max)) + 2;
  const pad = ' '.repeat(indent);
  return rows
    .map(([l, r]) => (l.length + 2 > width ? `${pad}${l}\n${pad}${' '.repeat(width)}${r}` : `${pad}${l.padEnd(width)}${r}`))
    .join('\n');
}

function flagLabel(f: FlagSpec): string {
  const names = [...(f.short ? [`-${f.short}`] : []), `--${f.name}`, ...(f.aliases ?? []).map((a) => `--${a}`)].join(', ');
  return f.type === 'boolean' ? names : `${names} ${f.arg ?? 'VALUE'}`;
}

export function commandHelp(spec: CommandSpec): string {
  const flags = [...spec.flags, HELP_FLAG];
  const rows = flags.map((f): [string, string] => [flagLabel(f), f.note ? `${f.help} ${f.note}` : f.help]);
  return [
    `Usage: mkportable ${spec.name}${spec.args ? ` ${spec.args}` : ''}${spec.flags.length ? ' [options]' : ''}`,
    '',
    spec.about ?? spec.summary,
    '',
    'Options:',
    columns(rows),
    ...(spec.footer ? ['', spec.footer] : []),
    '',
  ].join('\n');
}
