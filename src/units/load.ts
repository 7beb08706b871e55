import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MkportableError } from '../errors.js';
import { storePathOf } from '../closure/nix.js';
import type { UnitSpec } from '../config/options.js';
import { validateUnitName } from '../systemd/portabled.js';
import { parseUnitFile, type UnitFile } from '../formats/unitfile.js';

export interface LoadedUnit {
  name: string;
  text: string;
  /** The file it was read from, or "inline". */
  origin: string;
  /** How messages name it: its file, or its name when inline. */
  where: string;
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
    units.push({ name, text, origin, where, parsed: parseUnitFile(text, where) });
  }
  return units;
}

/**
 * The unit's text with a line added to its [Service] section (a new one at the end: systemd merges sections of
 * the same name). Shipped in the unit file itself, since portabled copies unit files, not the image's drop-ins.
 */
export function withServiceLine(text: string, line: string): string {
  if (text.split('\n').some((l) => l.trim() === line)) return text;
  const body = text.endsWith('\n') ? text : `${text}\n`;
  return `${body}\n# Added by mkportable: nss-systemd reaches dynamic users through systemd's user database.\n[Service]\n${line}\n`;
}
