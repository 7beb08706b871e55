import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MkportableError } from '../errors.js';
import { storePathOf } from '../closure/nix.js';
import type { UnitSpec } from '../config/options.js';
import { validateUnitName } from '../systemd/portabled.js';
import { EXEC_KEYS, parseExecCommands, parseUnitFile, serviceEnvironment, unitValues, type UnitFile } from '../formats/unitfile.js';

export interface LoadedUnit {
  name: string;
  text: string;
  /** The file it was read from, or "inline". */
  origin: string;
  parsed: UnitFile;
}

/** Read every unit and refuse what portabled would ignore, before any other work starts. */
export async function loadUnits(specs: UnitSpec[], baseDir: string, pname: string): Promise<LoadedUnit[]> {
  const units: LoadedUnit[] = [];
  const names = new Set<string>();
  for (const spec of specs) {
    let name: string;
    let text: string;
    let origin: string;
    if (typeof spec === 'string') {
      origin = path.resolve(baseDir, spec);
      name = path.basename(origin);
      // A unit that is itself a store file (`writeText "demo.service"`) is named by the part after the hash.
      if (storePathOf(origin) === origin) name = name.slice(33);
      try {
        text = await fs.readFile(origin, 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
        throw new MkportableError('UNIT_UNREADABLE', `${origin}: cannot read unit file: ${why}`, origin);
      }
    } else {
      ({ name, text } = spec);
      origin = 'inline';
      if (name.includes('/')) throw new MkportableError('UNIT_IGNORED', `unit '${name}': an inline unit's name must not contain '/'`, name);
    }
    const where = origin === 'inline' ? name : origin;
    validateUnitName(name, pname);
    if (text.trim() === '') {
      throw new MkportableError('UNIT_IGNORED', `${where}: unit file is empty; portabled skips empty unit files`, where);
    }
    if (names.has(name)) throw new MkportableError('UNIT_IGNORED', `${where}: unit '${name}' is given twice`, where);
    names.add(name);
    units.push({ name, text, origin, parsed: parseUnitFile(text, where) });
  }
  return units;
}

export interface ExecProgram {
  unit: string;
  key: string;
  executable: string;
  hasSpecifier: boolean;
}

/** Every program named by the units' Exec*= lines (first word after systemd's prefixes). */
export function execPrograms(units: LoadedUnit[]): ExecProgram[] {
  const out: ExecProgram[] = [];
  for (const u of units) {
    for (const key of EXEC_KEYS) {
      for (const value of unitValues(u.parsed, 'Service', key)) {
        for (const cmd of parseExecCommands(value, `${u.origin === 'inline' ? u.name : u.origin}: ${key}=`)) {
          if (cmd.executable) out.push({ unit: u.name, key, executable: cmd.executable, hasSpecifier: cmd.hasSpecifier });
        }
      }
    }
  }
  return out;
}

/** ExecSearchPath= (v250) if the unit sets it. */
export function execSearchPath(u: LoadedUnit): string[] | undefined {
  const v = unitValues(u.parsed, 'Service', 'ExecSearchPath');
  const last = v[v.length - 1];
  return last ? last.split(':').filter(Boolean) : undefined;
}

/** The PATH the service's processes see: Environment=PATH=… if set. */
export function servicePath(u: LoadedUnit): string[] | undefined {
  const p = serviceEnvironment(u.parsed).get('PATH');
  return p ? p.split(':').filter(Boolean) : undefined;
}
