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
