import path from 'node:path/posix';
import type { Source } from '../sources/source.js';
import { parseOsRelease } from '../formats/osrelease.js';
import { parseUnitFile, unitValues } from '../formats/unitfile.js';
import { readElfInfo } from '../formats/elf.js';
import { JIT_LIBRARIES, JIT_PROGRAMS, PROFILES, type Profile } from '../systemd/profiles.js';
import { argumentPrograms, locateNamed, locateProgram, programWhere, unitPrograms, type UnitProgram } from '../units/programs.js';
import { unitDirectories } from '../units/directories.js';
import { realpathIn } from '../sources/realpath.js';
import { addPath, createClosure, type Closure } from '../closure/resolve.js';
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
  /** The portablectl profile the image will be attached with (default "default"). */
  profile?: string;
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
  await checkProfile(source, attached, PROFILES[opts.profile ?? 'default'], report);

  if (opts.blockSize !== undefined && opts.blockSize < MIN_PORTABLE_BLOCK_SIZE) {
    report('warning', 'block-size-small', `block size ${opts.blockSize / 1024} KiB: the image will not mount on kernels with 64 KiB pages`);
  }
  return { name: base, prefixes, osRelease, units, problems, ok: !problems.some((p) => p.severity === 'error') };
}

/** Programs a command line runs through its arguments must be in the image too: env's as an error, shell words as warnings. */
async function checkArgumentPrograms(source: Source, closure: Closure, prog: UnitProgram, unitPath: string, report: Report): Promise<void> {
  const where = programWhere(prog);
  const named = argumentPrograms(prog.executable, prog.argv.slice(1));
  for (const { word, via } of named.unresolved) {
    report('warning', 'command-unresolved', `${where} ${via} runs '${word}', which only the shell can expand: not checked`, unitPath);
  }
  for (const n of named.programs) {
    const exe = await locateNamed(source, n, prog.envPath);
    const real = exe ? await realpathIn(source, exe).catch(() => undefined) : undefined;
    const st = real ? await source.lstat(real) : null;
    if (!st || st.type !== 'file' || (st.mode & 0o111) === 0) {
      const msg = `${where} ${n.via} runs '${n.executable}', which is not an executable in PATH=${prog.envPath.join(':')} of the image`;
      if (n.strict) report('error', 'exec-missing', `${msg}: the command fails (127)`, unitPath);
      else report('warning', 'command-missing', `${msg}: the script fails where it runs it (127)`, unitPath);
      continue;
    }
    await addPath(closure, exe!, { reason: `${n.via} in ${prog.key}= of ${prog.unit}`, strict: false, envPath: prog.envPath });
  }
}

/**
 * What the profile's drop-in takes from a unit, which the unit cannot take back (a drop-in wins over the unit's own
 * lines): W^X memory for JIT runtimes, address families and capabilities it asks for; and template units, which
 * `attach --now` cannot start by themselves.
 */
async function checkProfile(source: Source, units: FoundUnit[], profile: Profile, report: Report): Promise<void> {
  for (const u of units) {
    if (/@\.[a-z]+$/.test(u.name)) {
      report('warning', 'unit-template', `${u.name} is a template: attach --now prints "Unit name ${u.name} is missing the instance name" and starts no instance; it runs through its socket (Accept=yes) or as ${u.name.replace('@.', '@NAME.')}`, u.path);
    }
    let parsed;
    try {
      parsed = parseUnitFile(u.text!, u.name);
    } catch {
      continue;
    }
    if (!u.name.endsWith('.service')) continue;
    const fix = `attach with --profile=trusted, or add a host drop-in (/etc/systemd/system/${u.name}.d/50-override.conf)`;
    const programs = profile.memoryDenyWriteExecute || profile.dynamicUser || profile.noNewPrivileges ? await mainPrograms(source, parsed, u.name) : [];
    if (profile.memoryDenyWriteExecute) {
      for (const { prog, real } of programs) {
        const jit = await jitRuntime(source, real);
        if (!jit || prog.argv.includes('--jitless')) continue;
        report('warning', 'jit-memory-deny-write-execute',
          `${u.name}: ${real} is a JIT runtime (${jit}); the ${profile.name} profile's MemoryDenyWriteExecute=yes kills it at its first compiled code (node: status=5/TRAP): ${fix} with MemoryDenyWriteExecute=no${/node/.test(jit) ? ', or run node with --jitless' : ''}`, u.path);
      }
    }
    // DynamicUser=yes and the profile's sandboxing imply NoNewPrivileges=yes for the (never root) service, and the
    // kernel grants no file capabilities under no_new_privs.
    if (profile.dynamicUser || profile.noNewPrivileges) {
      for (const { real } of programs) {
        if (!(await source.xattrs?.(real))?.['security.capability']) continue;
        report('warning', 'file-capabilities-ignored',
          `${u.name}: ${real} carries file capabilities (security.capability), which the ${profile.name} profile makes useless: its DynamicUser=yes and sandboxing imply NoNewPrivileges=yes, and execve grants no file capabilities then: attach with --profile=trusted`, u.path);
      }
    }
    if (profile.addressFamilies) {
      const asked = unitValues(parsed, 'Service', 'RestrictAddressFamilies').flatMap((v) => (v.startsWith('~') ? [] : v.split(/\s+/))).filter((f) => /^AF_/.test(f));
      const lost = [...new Set(asked.filter((f) => !profile.addressFamilies!.includes(f)))];
      if (lost.length) report('warning', 'address-family-removed', `${u.name} asks for ${lost.join(' ')}, which the ${profile.name} profile removes (RestrictAddressFamilies=${profile.addressFamilies.join(' ')}): socket() fails with EAFNOSUPPORT; ${fix}`, u.path);
    }
    if (profile.capabilities) {
      const asked = ['AmbientCapabilities', 'CapabilityBoundingSet'].flatMap((k) => unitValues(parsed, 'Service', k))
        .flatMap((v) => (v.startsWith('~') ? [] : v.split(/\s+/))).filter((c) => /^CAP_/.test(c));
      const lost = [...new Set(asked.filter((c) => !profile.capabilities!.includes(c)))];
      if (lost.length) report('warning', 'capability-removed', `${u.name} asks for ${lost.join(' ')}, which the ${profile.name} profile's CapabilityBoundingSet= removes: the call needing it fails with EPERM; ${fix}`, u.path);
    }
  }
}

/** The programs a service's ExecStart= lines run, found in the image (symlinks resolved); others are left out. */
async function mainPrograms(source: Source, parsed: ReturnType<typeof parseUnitFile>, unit: string) {
  const found: { prog: ReturnType<typeof unitPrograms>[number]; real: string }[] = [];
  for (const prog of unitPrograms(parsed, unit, { onInvalid: () => {} })) {
    if (prog.key !== 'ExecStart' || prog.hasSpecifier) continue;
    const exe = await locateProgram(source, prog);
    const real = exe ? await realpathIn(source, exe).catch(() => undefined) : undefined;
    if (real) found.push({ prog, real });
  }
  return found;
}

/** The JIT runtime a program is, by its name or the libraries it links, or undefined. */
async function jitRuntime(source: Source, real: string): Promise<string | undefined> {
  const base = path.basename(real);
  if (JIT_PROGRAMS.test(base)) return base;
  const st = await source.lstat(real);
  if (st?.type !== 'file' || st.size < 64) return undefined;
  try {
    const info = await readElfInfo((o, l) => source.read(real, o, l), st.size, real);
    return info.needed.find((n) => JIT_LIBRARIES.test(n));
  } catch {
    return undefined;
  }
}

type Report = (severity: Severity, rule: string, message: string, p?: string) => void;

/** Every Exec program of the attached units must exist, be executable, and find what it needs inside the image. */
async function checkPrograms(source: Source, units: FoundUnit[], report: Report): Promise<void> {
  const warnings: BuildWarning[] = [];
  // The image's own loader, with the cache the image carries (or none): what will really happen at start.
  const closure = createClosure(source, createTree(), 0, warnings, { ldCache: 'image' });
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
      await checkArgumentPrograms(source, closure, prog, u.path, report);
    }
    for (const d of unitDirectories(parsed, u.name)) {
      const real = await realpathIn(source, d.mountPoint).catch(() => undefined);
      if (!real || (await source.lstat(real))?.type !== 'dir') {
        report('error', 'unit-directory-missing', `${u.name}: ${d.key}=${d.name} needs the folder ${d.mountPoint} in the image to mount onto: the start fails (226/NAMESPACE)`, d.mountPoint);
      }
    }
  }
  const seen = new Set<string>();
  for (const w of warnings) {
    if (seen.has(w.message)) continue;
    seen.add(w.message);
    if (w.code === 'ELF_UNPARSED') report('error', 'elf-invalid', w.message, w.subject);
    else if (w.code === 'LD_CACHE_INVALID') report('warning', 'ld-cache-invalid', w.message, w.subject);
    else report('error', w.rule ?? 'dependency-missing', w.message, w.subject);
  }
}
