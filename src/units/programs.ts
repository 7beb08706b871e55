/**
 * The programs a unit makes systemd run, and where systemd finds them: the one answer that the build (which puts
 * them and what they need into the image) and inspect (which checks that an image holds them) both use.
 *
 * A `.service` runs the command lines of its [Service] section, a `.socket` those of its [Socket] section
 * (systemd reads no other section for them). A bare program name is looked up in ExecSearchPath= when the unit
 * sets it, else in systemd's default PATH, never in Environment=PATH= (execute.c: find_executable_full()). The
 * process's PATH, which `#!/usr/bin/env NAME` scripts search, is Environment=PATH= if set, else the joined
 * ExecSearchPath=, else the default (exec-invoke.c merges the manager's, ExecSearchPath=, then Environment=).
 * EnvironmentFile= and PassEnvironment= are not read.
 */
import { MkportableError } from '../errors.js';
import { EXEC_KEYS, SOCKET_EXEC_KEYS, hasSpecifiers, parseExecCommands, serviceEnvironment, unitEntries, type UnitFile } from '../formats/unitfile.js';
import { normalizeImagePath } from '../plan/tree.js';
import { findInPath } from '../sources/realpath.js';
import type { Source } from '../sources/source.js';
import { SYSTEMD_DEFAULT_PATH } from '../systemd/portabled.js';
import { shellCommands } from '../formats/shell.js';

/** The section holding a unit type's command lines and exec settings, and its Exec*= keys. */
const EXEC_SECTIONS: Record<string, { section: string; keys: readonly string[] }> = {
  service: { section: 'Service', keys: EXEC_KEYS },
  socket: { section: 'Socket', keys: SOCKET_EXEC_KEYS },
};

export interface UnitProgram {
  unit: string;
  section: string;
  /** "ExecStartPre". */
  key: string;
  /** Line of the Exec*= entry in the unit file. */
  line: number;
  /** The special prefixes as written ("-", "@", "+", "!!", "-@:", …). */
  prefixes: string;
  /** An absolute path, or a bare name that systemd looks up in `searchPath`. */
  executable: string;
  argv: string[];
  /** The executable holds a `%` specifier that only systemd can expand: where it lives is not known. */
  hasSpecifier: boolean;
  /** Where a bare executable is looked up. */
  searchPath: readonly string[];
  /** The PATH the program's processes see. */
  envPath: readonly string[];
}

/**
 * ExecSearchPath= as systemd reads it (config_parse_colon_separated_paths()): assignments append, an empty one
 * resets; an entry that is empty or not absolute ends its line (the rest of it is ignored). Entries holding
 * specifiers are left out: only systemd can expand them. Undefined when the unit does not set it.
 */
export function execSearchPath(unit: UnitFile, section: string): string[] | undefined {
  const entries = unitEntries(unit, section, 'ExecSearchPath');
  if (entries.length === 0) return undefined;
  const dirs: string[] = [];
  for (const e of entries) {
    for (const d of e.value.split(':')) {
      if (hasSpecifiers(d)) continue;
      if (!d.startsWith('/')) break;
      dirs.push(normalizeImagePath(d));
    }
  }
  return dirs;
}

/**
 * Every command of the unit's Exec*= lines that names a program, in the order systemd.service(5) and
 * systemd.socket(5) list the keys. A command line systemd would refuse is an UNIT_INVALID error: thrown, or passed
 * to `onInvalid` (inspect reports each and goes on with the other lines); `where` names the unit in messages.
 */
export function unitPrograms(
  unit: UnitFile,
  unitName: string,
  o: { where?: string; onInvalid?: (e: MkportableError) => void } = {},
): UnitProgram[] {
  const exec = EXEC_SECTIONS[unitName.slice(unitName.lastIndexOf('.') + 1)];
  if (!exec) return [];
  const search = execSearchPath(unit, exec.section);
  const envPathVar = serviceEnvironment(unit, exec.section).get('PATH');
  const searchPath = search ?? SYSTEMD_DEFAULT_PATH;
  const envPath = envPathVar !== undefined ? envPathVar.split(':').filter(Boolean) : searchPath;
  const out: UnitProgram[] = [];
  for (const key of exec.keys) {
    for (const entry of unitEntries(unit, exec.section, key)) {
      let commands;
      try {
        commands = parseExecCommands(entry.value, `${o.where ?? unitName}:${entry.line}: ${key}=`);
      } catch (e) {
        if (!(e instanceof MkportableError) || !o.onInvalid) throw e;
        o.onInvalid(e);
        continue;
      }
      for (const cmd of commands) {
        // A lone `|` (systemd 258) runs the user's login shell: no program of the unit's own.
        if (!cmd.executable) continue;
        out.push({
          unit: unitName, section: exec.section, key, line: entry.line, prefixes: cmd.prefixes,
          executable: cmd.executable, argv: cmd.argv, hasSpecifier: cmd.hasSpecifier, searchPath, envPath,
        });
      }
    }
  }
  return out;
}

/** The program's path in `source` as systemd would find it: absolute as written, a bare name in its search path. */
export async function locateProgram(source: Source, prog: UnitProgram): Promise<string | undefined> {
  return prog.executable.startsWith('/') ? prog.executable : findInPath(source, prog.executable, prog.searchPath);
}

/** "demo.socket: ExecStartPre=", for messages. */
export const programWhere = (prog: UnitProgram): string => `${prog.unit}: ${prog.key}=`;

/** A program that a unit's command line runs through another one: `env NAME`, `sh -c '… NAME …'`, `nohup NAME`. */
export interface NamedProgram {
  /** A path, or a bare name looked up in the process's PATH (`envPath`). */
  executable: string;
  /** How it is named, for messages: "env", "sh -c". */
  via: string;
  /** The command line cannot run without it (env's program); shell words are best effort. */
  strict: boolean;
}

export interface ArgumentPrograms {
  programs: NamedProgram[];
  /** Shell command words built from expansions: only running the script would tell. */
  unresolved: { word: string; via: string }[];
}

const SHELLS = new Set(['sh', 'bash', 'dash', 'ash', 'ksh', 'mksh', 'zsh', 'busybox']);
/** Programs that run their first operand as a command, with the options that take a value. */
const WRAPPERS: Record<string, { valueOptions: string[]; operands?: number }> = {
  nohup: { valueOptions: [] },
  setsid: { valueOptions: [] },
  nice: { valueOptions: ['-n', '--adjustment'] },
  timeout: { valueOptions: ['-s', '--signal', '-k', '--kill-after'], operands: 1 },
  stdbuf: { valueOptions: ['-i', '-o', '-e'] },
};

/** env(1)'s operands: options, NAME=VALUE assignments and `-S` strings skipped; what is left is the command. */
function envCommand(args: string[]): string[] {
  const rest = [...args];
  while (rest.length) {
    const a = rest[0];
    if (a === '--') {
      rest.shift();
      break;
    }
    if (a === '-S' || a === '--split-string') {
      rest.shift();
      rest.splice(0, 1, ...(rest[0] ?? '').split(/\s+/).filter(Boolean));
      continue;
    }
    if (a.startsWith('-S') || a.startsWith('--split-string=')) {
      rest.splice(0, 1, ...a.slice(a.startsWith('-S') ? 2 : 15).split(/\s+/).filter(Boolean));
      continue;
    }
    if (a === '-u' || a === '--unset' || a === '-C' || a === '--chdir') {
      rest.splice(0, 2);
      continue;
    }
    if (a.startsWith('-')) {
      rest.shift();
      continue;
    }
    if (/^[^=]+=/.test(a)) {
      rest.shift();
      continue;
    }
    break;
  }
  return rest;
}

/** The script of `sh [-options] -c SCRIPT …`, or undefined when the shell runs no `-c` string. */
function shellScript(args: string[]): string | undefined {
  let c = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--' || !/^[-+]/.test(a)) return c ? args[i + (a === '--' ? 1 : 0)] : undefined;
    if (a === '-o' || a === '+o') {
      i++;
      continue;
    }
    if (/^-[a-zA-Z]+$/.test(a) && a.includes('c')) c = true;
  }
  return undefined;
}

/**
 * The programs a command line runs through its arguments, read statically and never run: the command of `env`
 * (after its options and assignments), the commands of a `sh -c`/`bash -c` script (see formats/shell.ts), and
 * the command of nohup, setsid, nice, timeout and stdbuf, each followed again (`env sh -c '…'`).
 */
export function argumentPrograms(executable: string, args: readonly string[]): ArgumentPrograms {
  const out: ArgumentPrograms = { programs: [], unresolved: [] };
  const follow = (exe: string, rest: string[], depth: number): void => {
    if (depth > 8) return;
    const base = exe.slice(exe.lastIndexOf('/') + 1);
    if (base === 'env') {
      const cmd = envCommand(rest);
      if (!cmd.length) return;
      out.programs.push({ executable: cmd[0], via: 'env', strict: true });
      follow(cmd[0], cmd.slice(1), depth + 1);
    } else if (SHELLS.has(base)) {
      const script = shellScript(rest);
      if (script === undefined) return;
      const found = shellCommands(script);
      for (const w of found.commands) out.programs.push({ executable: w, via: `${base} -c`, strict: false });
      for (const w of found.unresolved) out.unresolved.push({ word: w, via: `${base} -c` });
    } else if (WRAPPERS[base]) {
      const { valueOptions, operands = 0 } = WRAPPERS[base];
      let i = 0;
      while (i < rest.length && rest[i].startsWith('-') && rest[i] !== '--') i += valueOptions.includes(rest[i]) ? 2 : 1;
      if (rest[i] === '--') i++;
      i += operands;
      if (i >= rest.length) return;
      out.programs.push({ executable: rest[i], via: base, strict: false });
      follow(rest[i], rest.slice(i + 1), depth + 1);
    }
  };
  follow(executable, [...args], 0);
  return out;
}

/** Where a named program is found: as written when it is a path, else in the process's PATH. */
export async function locateNamed(source: Source, named: NamedProgram, envPath: readonly string[]): Promise<string | undefined> {
  if (named.executable.includes('/')) return named.executable.startsWith('/') ? named.executable : undefined;
  return findInPath(source, named.executable, envPath);
}
