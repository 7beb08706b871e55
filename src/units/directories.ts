/**
 * The folders a service asks systemd to make for it (StateDirectory= and its siblings) and where their mount
 * points sit in the image: the build creates them and inspect checks them, from this one answer.
 */
import path from 'node:path/posix';
import { hasSpecifiers, splitWords, unitEntries, type UnitFile } from '../formats/unitfile.js';
import { UNIT_DIRECTORY_ROOTS } from '../systemd/portabled.js';

export interface UnitDirectory {
  unit: string;
  /** "StateDirectory". */
  key: string;
  /** The name as written ("pgport", "app/cache"). */
  name: string;
  /** The mount point in the image: "/var/lib/pgport". */
  mountPoint: string;
}

/**
 * Every folder of the unit's StateDirectory=, CacheDirectory=, LogsDirectory= and ConfigurationDirectory= lines
 * (space-separated, appended, reset by an empty assignment; `NAME:LINK` makes a symlink LINK to NAME, so only NAME
 * is a mount point). Names holding specifiers, or that are absolute or climb with `..`, are left to systemd.
 */
export function unitDirectories(unit: UnitFile, unitName: string): UnitDirectory[] {
  if (!unitName.endsWith('.service')) return [];
  const out: UnitDirectory[] = [];
  for (const [key, root] of Object.entries(UNIT_DIRECTORY_ROOTS)) {
    for (const entry of unitEntries(unit, 'Service', key)) {
      let words: string[];
      try {
        words = splitWords(entry.value);
      } catch {
        continue;
      }
      for (const word of words) {
        const name = word.split(':')[0];
        if (!name || hasSpecifiers(name) || name.startsWith('/') || name.split('/').includes('..')) continue;
        out.push({ unit: unitName, key, name, mountPoint: path.join(root, name) });
      }
    }
  }
  return out;
}
