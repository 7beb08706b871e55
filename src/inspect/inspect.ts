import path from 'node:path/posix';
import type { Source } from '../sources/source.js';
import { parseOsRelease } from '../formats/osrelease.js';
import { parseUnitFile } from '../formats/unitfile.js';
import { locateProgram, programWhere, unitPrograms } from '../units/programs.js';
import { realpathIn } from '../sources/realpath.js';
import { addPath, createClosure } from '../closure/resolve.js';
import { createTree } from '../plan/tree.js';
import {
  MIN_PORTABLE_BLOCK_SIZE, MOUNT_POINT_DIRS, MOUNT_POINT_FILES, OS_RELEASE_PATHS, PORTABLE_UNIT_TYPES, RAW_IMAGE_SUFFIX, UNIT_SEARCH_DIRS,
  IMAGE_UNIT_DIR, isPortableUnitType, isValidPrefix, portablePrefixes, prefixFromName, unitMatchesPrefix,
} from '../systemd/portabled.js';
import type { BuildWarning } from '../errors.js';

export type Severity = 'error' | 'warning';

export interface Problem {
  severity: Severity;
  /** Stable rule name, e.g. "mount-point-missing". */
  rule: string;
  message: string;
  path?: string;
}

export interface InspectOptions {
  /** The image's file or folder name as it would be given to portablectl ("demo_1.0.raw"). */
  name: string;
  kind: 'raw' | 'directory';
  /** Matches given with --prefix; default: the prefix taken from the name. */
  prefixes?: string[];
  /** The squashfs block size, when the image is one. */
  blockSize?: number;
}

export interface InspectReport {
  name: string;
  prefixes: string[];
  osRelease: Record<string, string>;
  /** Units portabled would attach, per prefix. */
  units: Record<string, string[]>;
  problems: Problem[];
  ok: boolean;
}

async function readText(source: Source, p: string): Promise<string | undefined> {
  const real = await realpathIn(source, p).catch(() => undefined);
  if (!real) return undefined;
  const st = await source.lstat(real);
  if (st?.type !== 'file') return undefined;
  return Buffer.from(await source.readFile(real)).toString('utf8');
}

interface FoundUnit {
  name: string;
  path: string;
  text?: string;
  absoluteLink?: string;
}

async function listUnits(source: Source): Promise<FoundUnit[]> {
  const found = new Map<string, FoundUnit>();
  for (const dir of UNIT_SEARCH_DIRS) {
    const real = await realpathIn(source, dir).catch(() => undefined);
    if (!real || (await source.lstat(real))?.type !== 'dir') continue;
    for (const name of await source.readdir(real)) {
      if (found.has(name)) continue;
      const p = `${real}/${name}`;
      const st = await source.lstat(p);
      if (!st) continue;
      if (st.type === 'symlink') {
        const target = await source.readlink(p);
        if (target.startsWith('/')) {
          found.set(name, { name, path: p, absoluteLink: target });
          continue;
        }
      }
      if (st.type === 'dir') continue;
      found.set(name, { name, path: p, text: await readText(source, p) });
    }
  }
  return [...found.values()];
}

/** Judge an image the way systemd-portabled will: what attach refuses and what fails at start. */
export async function inspectSource(source: Source, opts: InspectOptions): Promise<InspectReport> {
  const problems: Problem[] = [];
  const report = (severity: Severity, rule: string, message: string, p?: string) => problems.push({ severity, rule, message, path: p });

  const base = path.basename(opts.name);
  if (opts.kind === 'raw' && !base.endsWith(RAW_IMAGE_SUFFIX)) {
    report('error', 'image-name-suffix', `'${base}' does not end in .raw: portabled refuses it ("Wrong medium type")`);
  }
  const derived = prefixFromName(base);
  const prefixes = opts.prefixes?.length ? opts.prefixes : [derived];
  for (const p of prefixes) {
    if (!isValidPrefix(p)) report('error', 'image-name-prefix', `prefix '${p}' has characters outside [A-Za-z0-9.-]: "Failed to extract prefix of image name"`);
  }

  let osText: string | undefined;
  for (const p of OS_RELEASE_PATHS) if ((osText = await readText(source, p)) !== undefined) break;
  const osRelease: Record<string, string> = {};
  if (osText === undefined) {
    report('error', 'os-release-missing', 'no /etc/os-release nor /usr/lib/os-release: "Image lacks os-release data, refusing"');
  } else {
    const parsed = parseOsRelease(osText);
    for (const [k, v] of parsed.fields) osRelease[k] = v;
    for (const pr of parsed.problems) report('warning', 'os-release-malformed', `os-release line ${pr.line}: ${pr.message}`, '/etc/os-release');
    if (!osRelease.ID) report('error', 'os-release-no-id', 'os-release has no ID= (required since systemd 251)');
    const allowed = portablePrefixes(osRelease);
    if (allowed) {
      for (const p of prefixes) {
        if (!allowed.includes(p)) {
          report('error', 'prefix-not-in-portable-prefixes', `match '${p}' is not in PORTABLE_PREFIXES=${allowed.join(' ')}: "Selected matches are not compatible"`);
        }
      }
    }
  }

  const units: Record<string, string[]> = Object.fromEntries(prefixes.map((p) => [p, []]));
  const attached: FoundUnit[] = [];
  for (const u of await listUnits(source)) {
    const matching = prefixes.filter((p) => unitMatchesPrefix(u.name, p));
    const typeOk = isPortableUnitType(u.name);
    if (matching.length === 0) {
      if (typeOk && u.path.startsWith(`${IMAGE_UNIT_DIR}/`)) {
        report('warning', 'unit-ignored-prefix', `${u.name} does not match ${prefixes.map((p) => `'${p}'`).join(', ')}: it will not be attached`, u.path);
      }
      continue;
    }
    if (!typeOk) {
      report('warning', 'unit-ignored-type', `${u.name}: portabled only attaches ${PORTABLE_UNIT_TYPES.join(' ')} units`, u.path);
      continue;
    }
    if (u.absoluteLink) {
      report('warning', 'unit-absolute-symlink', `${u.name} is a symlink to ${u.absoluteLink}, which portabled resolves on the host, not in the image`, u.path);
      continue;
    }
    if (!u.text || u.text.trim() === '') {
      report('warning', 'unit-empty', `${u.name} is empty: portabled skips it`, u.path);
      continue;
    }
    for (const p of matching) units[p].push(u.name);
    attached.push(u);
  }
  if (attached.length === 0) {
    report('error', 'no-matching-units', `no unit file matches ${prefixes.map((p) => `'${p}'`).join(', ')}: "Couldn't find any matching unit files in image, refusing"`);
  }

  for (const f of MOUNT_POINT_FILES) {
    if (!(await source.lstat(f).catch(() => null))) report('error', 'mount-point-missing', `${f} is missing: the service fails at start (226/NAMESPACE)`, f);
  }
  for (const d of MOUNT_POINT_DIRS) {
    const real = await realpathIn(source, d).catch(() => undefined);
    if (!real || (await source.lstat(real))?.type !== 'dir') report('error', 'mount-point-missing', `${d} is missing: the service fails at start (226/NAMESPACE)`, d);
  }

  await checkPrograms(source, attached, report);

  if (opts.blockSize !== undefined && opts.blockSize < MIN_PORTABLE_BLOCK_SIZE) {
    report('warning', 'block-size-small', `block size ${opts.blockSize / 1024} KiB: the image will not mount on kernels with 64 KiB pages`);
  }
  return { name: base, prefixes, osRelease, units, problems, ok: !problems.some((p) => p.severity === 'error') };
}

type Report = (severity: Severity, rule: string, message: string, p?: string) => void;

/** Every Exec program of the attached units must exist, be executable, and find what it needs inside the image. */
async function checkPrograms(source: Source, units: FoundUnit[], report: Report): Promise<void> {
  const warnings: BuildWarning[] = [];
  const closure = createClosure(source, createTree(), 0, warnings);
  for (const u of units) {
    let parsed;
    try {
      parsed = parseUnitFile(u.text!, u.name);
    } catch (e) {
      report('error', 'unit-invalid', (e as Error).message, u.path);
      continue;
    }
    const programs = unitPrograms(parsed, u.name, { onInvalid: (e) => report('error', 'unit-invalid', e.message, u.path) });
    for (const prog of programs) {
      const where = programWhere(prog);
      if (prog.hasSpecifier) {
        report('warning', 'exec-specifier', `${where} program '${prog.executable}' uses a % specifier that only systemd expands: not checked`, u.path);
        continue;
      }
      const exe = await locateProgram(source, prog);
      if (!exe) {
        report('error', 'exec-missing', `${where} program '${prog.executable}' is not in ${prog.searchPath.join(':')} of the image`, u.path);
        continue;
      }
      const real = await realpathIn(source, exe).catch(() => undefined);
      const st = real ? await source.lstat(real) : null;
      if (!st) {
        report('error', 'exec-missing', `${where} program ${exe} does not exist in the image`, exe);
        continue;
      }
      if (st.type !== 'file' || (st.mode & 0o111) === 0) {
        report('error', 'exec-not-executable', `${where} program ${exe} is not an executable file`, exe);
        continue;
      }
      await addPath(closure, exe, { reason: `${prog.key}= of ${u.name}`, strict: false, envPath: prog.envPath });
    }
  }
  const seen = new Set<string>();
  for (const w of warnings) {
    if (seen.has(w.message)) continue;
    seen.add(w.message);
    if (w.code === 'ELF_UNPARSED') report('error', 'elf-invalid', w.message, w.subject);
    else report('error', w.rule ?? 'dependency-missing', w.message, w.subject);
  }
}
