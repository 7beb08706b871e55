/**
 * Names that portablectl/portabled interpret. An image file is `<pname>_<version>.raw`; `portablectl attach` cuts
 * the file name at the first `_` (or drops `.raw`), requires the prefix to be made of [A-Za-z0-9.-] and a valid file
 * name (portablectl.c extract_prefix()), and then attaches only the image's .service/.socket/.target/.timer/.path
 * units whose name is that prefix followed by '-', '.', '@' or nothing (portable.c prefix_match()/unit_match()).
 * Checking this at build time turns "attach silently did nothing" into an error naming the culprit.
 */
import { MkportableError } from '../errors.js';

/** Unit types portabled attaches (portable.c unit_match()). */
export const PORTABLE_UNIT_TYPES = ['.service', '.socket', '.target', '.timer', '.path'] as const;

/** All unit types systemd knows; a name with another suffix is not a unit name at all. */
const UNIT_TYPES = ['service', 'mount', 'swap', 'socket', 'target', 'device', 'automount', 'timer', 'path', 'slice', 'scope'];

/** systemd's limit: UNIT_NAME_MAX is 256 including the NUL; file names are limited to 255 bytes too. */
const NAME_MAX = 255;

const byteLength = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Render one character for a message: itself when printable, otherwise its code point. */
function show(c: string): string {
  // Control, format, separator (space) and unassigned characters would be invisible or confusing when quoted.
  return /^[^\p{C}\p{Z}]$/u.test(c) ? `'${c}'` : `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** A value quoted for a one-line message, with control characters written as escapes. */
function quoted(s: string): string {
  return `'${s.replace(/[\x00-\x1f\x7f]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`))}'`;
}

const nameError = (message: string, subject: string): MkportableError => new MkportableError('NAME_INVALID', message, subject);

/**
 * The image name prefix. Beyond portablectl's own rule we refuse a leading '.' (the image would be a hidden file,
 * and "." / ".." are not names) and a leading '-' (`portablectl attach -x.raw` reads as an option), and we cap the
 * length so that `<pname>.service` still fits systemd's 255-character unit name limit.
 */
export function validatePname(pname: string): void {
  if (pname === '') throw nameError('pname is empty: it becomes the image name prefix and the unit name prefix', 'pname');
  if (pname.includes('_')) {
    throw nameError(
      `pname ${quoted(pname)} contains '_': portablectl cuts the image name at the first '_', so the prefix would be ${quoted(pname.slice(0, pname.indexOf('_')))}; use '-' instead`,
      'pname',
    );
  }
  const bad = [...pname].find((c) => !/[A-Za-z0-9.-]/.test(c));
  if (bad !== undefined) {
    throw nameError(`pname ${quoted(pname)} contains ${show(bad)}: portablectl only accepts A-Z, a-z, 0-9, '.' and '-' in the image name prefix`, 'pname');
  }
  if (pname.startsWith('.')) throw nameError(`pname ${quoted(pname)} starts with '.': the image would be a hidden file; start with a letter or digit`, 'pname');
  if (pname.startsWith('-')) throw nameError(`pname ${quoted(pname)} starts with '-': portablectl would read the image name as an option; start with a letter or digit`, 'pname');
  if (pname.length > NAME_MAX - '.service'.length) {
    throw nameError(
      `pname ${quoted(`${pname.slice(0, 24)}…`)} is ${pname.length} characters long: '<pname>.service' would exceed systemd's ${NAME_MAX}-character unit name limit`,
      'pname',
    );
  }
}

/**
 * The version part of the image name. Limited to [A-Za-z0-9._+~-] — enough for semver, Debian and RPM style
 * versions (1.2.3-rc1+git.abc, 1.0~beta2) — so the file name needs no quoting anywhere and
 * cannot contain '/', NUL, whitespace or control characters. '_' is allowed because only the first '_' of the file
 * name (the one after pname) matters to portablectl; note that systemd's versioned-directory picking
 * (`<name>.raw.v/<name>_<version>.raw`, systemd 256+) reads a further '_' as the start of an architecture suffix.
 */
export function validateVersion(version: string): void {
  if (version === '') throw nameError('version is empty: it becomes part of the image file name <pname>_<version>.raw', 'version');
  const bad = [...version].find((c) => !/[A-Za-z0-9._+~-]/.test(c));
  if (bad !== undefined) {
    throw nameError(`version ${quoted(version)} contains ${show(bad)}: only A-Z, a-z, 0-9 and '.', '_', '+', '~', '-' are allowed in a version (it is part of the image file name)`, 'version');
  }
  if (version === '.' || version === '..') throw nameError(`version ${quoted(version)} is not a usable name`, 'version');
}

/** Validate both parts and return the image file name `<pname>_<version>.raw` (at most 255 bytes). */
export function imageFileName(pname: string, version: string): string {
  validatePname(pname);
  validateVersion(version);
  const name = `${pname}_${version}.raw`;
  if (byteLength(name) > NAME_MAX) {
    const shown = name.length > 40 ? `${name.slice(0, 32)}…${name.slice(-8)}` : name;
    throw nameError(`image file name ${quoted(shown)} (${byteLength(name)} bytes) is longer than ${NAME_MAX} bytes, the most a file name can have; shorten pname or version`, 'version');
  }
  return name;
}

/** portabled's prefix rule: the unit name starts with the prefix, followed by '-', '.', '@' or nothing. */
export function unitMatchesPrefix(unitName: string, prefix: string): boolean {
  if (prefix === '' || !unitName.startsWith(prefix)) return false;
  const next = unitName.charAt(prefix.length);
  return next === '' || next === '-' || next === '.' || next === '@';
}

/** Why `name` is not a valid systemd unit name (unit_name_is_valid() accepting plain, template and instance names), or null. */
function unitNameProblem(name: string): string | null {
  if (name === '') return 'it is empty';
  if (byteLength(name) > NAME_MAX) return `it is longer than ${NAME_MAX} bytes`;
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return "it has no '.<type>' suffix";
  const type = name.slice(dot + 1);
  if (!UNIT_TYPES.includes(type)) return `'.${type}' is not a unit type`;
  const stem = name.slice(0, dot);
  const bad = [...stem].find((c) => !/[A-Za-z0-9:_.\\@-]/.test(c));
  if (bad !== undefined) return `it contains ${show(bad)} (allowed: A-Z, a-z, 0-9, ':', '_', '.', '\\', '@', '-')`;
  if (stem.startsWith('@')) return "nothing precedes '@' (a template is named like 'foo@.service')";
  return null;
}

/**
 * Check that portabled will attach the unit `unitName` shipped in the image of `pname`: a valid unit name
 * (NAME_INVALID), of a type portabled attaches, starting with the image prefix (UNIT_IGNORED).
 */
export function validateUnitName(unitName: string, pname: string): void {
  const problem = unitNameProblem(unitName);
  if (problem) throw nameError(`unit ${quoted(unitName)} is not a valid systemd unit name: ${problem}`, unitName);
  const suffix = unitName.slice(unitName.lastIndexOf('.'));
  if (!(PORTABLE_UNIT_TYPES as readonly string[]).includes(suffix)) {
    throw new MkportableError(
      'UNIT_IGNORED',
      `unit ${quoted(unitName)}: portabled only attaches .service, .socket, .target, .timer and .path units`,
      unitName,
    );
  }
  if (!unitMatchesPrefix(unitName, pname)) {
    throw new MkportableError(
      'UNIT_IGNORED',
      `unit ${quoted(unitName)} does not start with the image prefix ${quoted(pname)} followed by '.', '-' or '@': portabled would ignore it; name it like '${pname}${suffix}' or '${pname}-…${suffix}'`,
      unitName,
    );
  }
}
