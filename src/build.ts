/**
 * A build, as the list of named steps in portableService(): resolve the options (once; frozen), open the input,
 * read the units, plan the tree (the rootfs, the skeleton), resolve the closure, finish the tree, then write the
 * image and check it by inspect's rules, then put the container around it (verity sidecars or a DDI). Each step
 * takes and returns plain data.
 */
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { asMkportableError, MkportableError, type BuildWarning } from './errors.js';
import type { PortableServiceConfig, SymlinkSpec } from './config/options.js';
import { resolveOptions, type ResolvedOptions } from './config/resolve.js';
import { createTree, walkTree, type Entry, type ImageTree } from './plan/tree.js';
import { addEntry } from './plan/add.js';
import type { Source } from './sources/source.js';
import { hostSource } from './sources/host.js';
import { dpkgPackageFiles } from './sources/dpkg.js';
import { loadUnits, withServiceLine, type LoadedUnit } from './units/load.js';
import { parseUnitFile } from './formats/unitfile.js';
import { argumentPrograms, locateNamed, locateProgram, programWhere, unitPrograms, type UnitProgram } from './units/programs.js';
import { unitDirectories } from './units/directories.js';
import { addContentNeeds, addLoaderConfig, addPath, createClosure, FILES_REASON, type Closure } from './closure/resolve.js';
import {
  EXTENSION_UNIT_DIR, IMAGE_UNIT_DIR, NSS_SYSTEMD_LIBRARY, OS_RELEASE_PATHS, SYSTEMD_DEFAULT_PATH, UNIT_SEARCH_DIRS, USERDB_BIND, isPortableUnitType, unitMatchesPrefix, type ImageKind,
} from './systemd/portabled.js';
import { globMatcher } from './plan/glob.js';
import { addExtensionRelease, extensionReleaseFields, openBase, pruneAgainstBase, requireMatchingBase, type OpenedBase } from './layout/layers.js';
import { overlaySource } from './sources/overlay.js';
import { addFile, addMinimalEtc, addMountPoints, SKELETON_DIRS, SKELETON_FILES } from './layout/skeleton.js';
import { osReleaseFields, readSourceOs } from './layout/osrelease.js';
import { renderOsRelease } from './formats/osrelease.js';
import { writeImage, type Backend, type WriteProgress } from './writers/index.js';
import { defaultCacheDir } from './squashfs/block-cache.js';
import { prepareOutDir } from './writers/out-dir.js';
import { inspectPath, type Problem } from './inspect/index.js';
import { inspectStackPaths } from './inspect/stack.js';
import { openFrom, type OpenedFrom } from './sources/from.js';
import { readPackageDb, type DistroPackage } from './packages/db.js';
import { spdxForImage } from './sbom/spdx.js';
import { writeContainer, type ImageFormat } from './writers/container.js';
import { loadSigningKeys, type SigningKeys } from './writers/signing.js';
import { detectArchitecture } from './writers/architecture.js';
import { packageRoot } from './package-root.js';
import { planFromSource } from './plan/from-source.js';
import { makeRoom, removeEntry } from './plan/edit.js';
import { keepSourceOwners } from './plan/owners.js';
import { unitFromImageConfig, type GeneratedUnit } from './units/from-image-config.js';

export interface BuildFile {
  path: string;
  type: string;
  /** Octal permission bits, e.g. "0755". */
  mode: string;
  size?: number;
  target?: string;
  /** Where the content came from: "host:/usr/bin/bash", "generated", or the unit file's path. */
  origin: string;
  /** Why it is in the image. */
  reason: string;
  /** The distribution package that installed it in the source (dpkg's or apk's id, e.g. `libc6:amd64`), when known. */
  package?: string;
}

/** A distribution package some of the image's files come from. */
export interface BuildPackage extends DistroPackage {
  /** How many of the image's entries it installed. */
  files: number;
}

export interface BuildResult {
  image: string;
  /** The image name portablectl knows it by: `<pname>_<version>`. */
  name: string;
  size: number;
  sha256: string;
  backend: Backend;
  /** What `mkportable inspect` says of the image (warnings only: errors fail the build unless check is off). */
  problems: Problem[];
  units: string[];
  osRelease: Record<string, string>;
  files: BuildFile[];
  warnings: BuildWarning[];
  /** Nix store paths in the image, sorted: each one named by a unit, `contents` or a symlink, with its closure. */
  nixStorePaths: string[];
  /** Bytes searched for store path references while computing those closures. */
  bytesScanned: number;
  /** Paths that `exclude` left out (each with its size in bytes, folders with what was in them), sorted. */
  excluded: { path: string; size: number }[];
  /** Bytes the image does not carry because of `exclude`: the excluded files and what only they needed. */
  excludedBytes: number;
  /** What was built: portable, extension, sysext or confext. */
  kind: ImageKind;
  /** Layered images: the extension-release keys (os-release stays empty), and what the base already held. */
  extensionRelease?: Record<string, string>;
  base?: { image: string; osRelease: Record<string, string>; provided: string[] };
  /** Packages of the source's package database (dpkg, apk) that files of the image belong to, sorted by id. */
  packages: BuildPackage[];
  /** What the block cache did (native writer with the cache on; null otherwise). */
  cache: { hits: number; misses: number; stored: number; corrupt: number } | null;
  /** 'squashfs': `image` is the squashfs (with sidecars when verity is on); 'ddi': a GPT disk image holding it. */
  format: ImageFormat;
  /** Every file written (sidecars and the SBOM first, the image last). */
  outputs: string[];
  /** The dm-verity root hash, lowercase hex, when verity is on. */
  rootHash?: string;
  /** Whether the root hash is signed (`.roothash.p7s`, or the DDI's root-verity-sig partition). */
  signed: boolean;
  /** The DPS architecture of a DDI's partitions. */
  architecture?: string;
}

export interface BuildHooks {
  /** Called with a short line as each step starts. */
  progress?: (step: string) => void;
  /** Called as the image's file data is written (native writer): bytes and files done of the totals. */
  onWrite?: (p: WriteProgress) => void;
  /** Where binaries come from; the build host by default. */
  source?: Source;
  /** Also write an SPDX 2.3 JSON SBOM of the image to this file (written and renamed together with the image). */
  sbom?: string;
}

/** Build a portable service image: the typed library entry point behind `mkportable build`. */
export async function portableService(options: PortableServiceConfig, hooks: BuildHooks = {}): Promise<BuildResult> {
  const step = hooks.progress ?? (() => {});
  step('checking options');
  const opts = resolveOptions(options);
  try {
    // A signing key that does not belong to its certificate stops the build before anything is read.
    const signing = await loadSigningKeys(opts);
    // A base that cannot be read, or that the extension does not match, stops the build before anything is made.
    const base = await openBaseImage(opts, step);
    try {
      if (base) await planExtensionRelease(opts, undefined, base);
      await prepareOutDir(opts.outDir);
      return await buildSteps(opts, hooks, step, base, signing);
    } finally {
      await base?.close();
    }
  } catch (e) {
    throw asMkportableError(e, (file) => (file !== undefined && isInside(file, opts.outDir) ? 'OUTPUT_FAILED' : 'SOURCE_READ'));
  }
}

const isInside = (file: string, dir: string) => path.resolve(file).startsWith(dir.endsWith('/') ? dir : `${dir}/`);

/** The steps, once the options are resolved and the output folder is known to take the image. */
async function buildSteps(opts: ResolvedOptions, hooks: BuildHooks, step: (s: string) => void, base: OpenedBase | undefined,
  signing: SigningKeys | undefined): Promise<BuildResult> {
  let input: Input | undefined;
  try {
    input = await openInput(opts, hooks, step);
    const release = await planExtensionRelease(opts, input.source, base);
    const generated = await generateUnit(opts, input);
    const loaded = await loadUnits([...opts.units, ...(generated ? [generated.unit] : [])], opts.baseDir, opts.pname);
    const units = opts.dynamicUserLookup ? loaded.map(withUserdbAccess) : loaded;

    step('planning the image');
    const osRelease = release ? [] : await planOsRelease(opts, input.source);
    const { tree, warnings } = await planTree(opts, input, units);
    if (release) planExtension(tree, opts, units, release);
    else planSkeleton(tree, opts, units, osRelease);

    step('resolving the closure');
    const contents = [...opts.contents, ...(generated && opts.closure === 'minimal' ? generated.contents : [])];
    const closure = await resolveClosure(tree, opts, input, base, units, contents);
    const nssSystemd = opts.kind === 'portable' && opts.dynamicUserLookup && (await addNssSystemd(closure, units));
    await finishTree(tree, opts, input, nssSystemd);
    const excluded = await leaveOutExcluded(closure, opts);
    if (loaderConfigOf(opts, input) === 'written') {
      step('writing the loader configuration');
      await addLoaderConfig(closure);
    }
    const provided = release ? await pruneAgainstBase(tree, base?.source, opts.kind, new Set(units.map((u) => unitPath(opts, u)))) : [];

    const architecture = opts.format === 'ddi' ? opts.architecture ?? (await detectArchitecture(tree, closure.warnings)) : undefined;

    const files = listFiles(tree);
    step('naming the packages files come from');
    const packages = await attributePackages(files, input.source);

    const sbom = hooks.sbom;
    const written = await writeChecked(tree, opts, step, { signing, architecture }, hooks.onWrite, base, sbom === undefined ? undefined : async (tmp, w) => {
      step(`writing the SBOM ${sbom}`);
      const doc = await spdxForImage({ imageFile: tmp, result: { name: w.name, sha256: w.sha256, files, packages, osRelease: Object.fromEntries(osRelease) }, created: opts.mtime, toolVersion: toolVersion() });
      return { data: JSON.stringify(doc, null, 2) + '\n', file: path.resolve(sbom) };
    });
    return {
      ...written,
      backend: opts.backend,
      kind: opts.kind,
      ...(release ? { extensionRelease: release } : {}),
      ...(base ? { base: { image: base.file, osRelease: base.osRelease, provided } } : {}),
      units: units.map((u) => u.name),
      osRelease: Object.fromEntries(osRelease),
      files,
      warnings: [...warnings, ...closure.warnings],
      ...excluded,
      nixStorePaths: [...(closure.nix?.done ?? [])].sort(),
      bytesScanned: closure.nix?.stats.bytesScanned ?? 0,
      packages,
    };
  } finally {
    await input?.close();
  }
}

/** The base an extension is built against, opened first: a base that cannot be read stops the build before any work. */
async function openBaseImage(opts: ResolvedOptions, step: (s: string) => void): Promise<OpenedBase | undefined> {
  if (!opts.base) return undefined;
  step(`reading the base ${opts.base}`);
  return openBase(opts.base);
}

/** Layered kinds: the extension-release keys, checked against the base's os-release now, before any work. */
async function planExtensionRelease(opts: ResolvedOptions, source: Source | undefined, base: OpenedBase | undefined): Promise<Record<string, string> | undefined> {
  if (opts.kind === 'portable') return undefined;
  const fields = extensionReleaseFields({
    kind: opts.kind, pname: opts.pname, version: opts.version, description: opts.description, prefixes: [opts.pname],
    base: base?.osRelease, sourceOs: base || !source ? {} : await readSourceOs(source), overrides: opts.osRelease,
  });
  if (base) requireMatchingBase(fields, base, opts.kind);
  return fields;
}

/** Where a unit goes: extensions keep theirs inside the hierarchy the overlay covers. */
function unitPath(opts: ResolvedOptions, u: LoadedUnit): string {
  const dir = opts.kind === 'portable' ? IMAGE_UNIT_DIR : opts.kind === 'confext' ? '/etc/systemd/system' : EXTENSION_UNIT_DIR;
  return `${dir}/${u.name}`;
}

/** An extension carries no os-release and no mount points (the base does): its extension-release and its units. */
function planExtension(tree: ImageTree, opts: ResolvedOptions, units: LoadedUnit[], release: Record<string, string>): void {
  addEntry(tree, '/', { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: opts.mtime, reason: 'root', origin: 'generated' });
  addExtensionRelease(tree, opts.kind, `${opts.pname}_${opts.version}`, release, opts.mtime);
  addUnitFiles(tree, opts, units);
}

/** Where binaries come from: what `from` names, hooks.source, or the build host. */
interface Input {
  source: Source;
  /** Set when the source is a rootfs opened from `from` (its owners and xattrs are kept). */
  from?: OpenedFrom;
  close(): Promise<void>;
}

async function openInput(opts: ResolvedOptions, hooks: BuildHooks, step: (s: string) => void): Promise<Input> {
  if (!opts.from) return { source: hooks.source ?? hostSource(), close: async () => {} };
  if (hooks.source) throw new MkportableError('CONFIG_INVALID', "options: give either 'from' or hooks.source, not both", 'from');
  step(`reading ${opts.from}`);
  const from = await openFrom({ from: opts.from, allowDevices: opts.allowDevices });
  return { source: from.source, from, close: () => from.close() };
}

/** `unitFromConfig`: the service unit made from the container image's config. */
async function generateUnit(opts: ResolvedOptions, input: Input): Promise<GeneratedUnit | undefined> {
  const from = input.from;
  if (!opts.unitFromConfig || !from?.config) return undefined;
  return unitFromImageConfig(from.config, { pname: opts.pname, source: input.source, describe: from.describe, label: from.label ?? from.describe });
}

async function planOsRelease(opts: ResolvedOptions, source: Source): Promise<[string, string][]> {
  return osReleaseFields({
    pname: opts.pname, version: opts.version, description: opts.description, homepage: opts.homepage,
    sourceOs: await readSourceOs(source), overrides: opts.osRelease,
  });
}

/** The tree the skeleton and the closure are added to: the whole rootfs with closure "full", else empty. */
async function planTree(opts: ResolvedOptions, input: Input, units: LoadedUnit[]): Promise<{ tree: ImageTree; warnings: BuildWarning[] }> {
  if (!wholeRootfs(opts, input)) return { tree: createTree(), warnings: [] };
  const tree = await planWholeRootfs(input.source, opts.mtime, units);
  return { tree, warnings: opts.keepSourceUnits ? [] : leaveOutSourceUnits(tree, opts.pname, units) };
}

/**
 * A rootfs brings its packages' unit files; those that match the prefix would be attached too (a distribution's
 * own `lighttpd.service` beside yours), so only the units the build was given stay, with their `.wants` links.
 */
function leaveOutSourceUnits(tree: ImageTree, pname: string, units: LoadedUnit[]): BuildWarning[] {
  const given = new Set(units.map((u) => u.name));
  const dropped = new Set<string>();
  for (const p of [...tree.entries.keys()]) {
    const dir = UNIT_SEARCH_DIRS.find((d) => p.startsWith(`${d}/`));
    if (!dir) continue;
    const name = p.slice(p.lastIndexOf('/') + 1);
    if (given.has(name) || !isPortableUnitType(name) || !unitMatchesPrefix(name, pname)) continue;
    if (!tree.entries.has(p)) continue;
    removeEntry(tree, p);
    dropped.add(name);
  }
  if (dropped.size === 0) return [];
  const names = [...dropped].sort();
  return [{ code: 'SOURCE_UNIT_LEFT_OUT', message: `left out the rootfs's own unit files that match '${pname}' but are not in units: ${names.join(', ')} (keepSourceUnits keeps them)`, subject: names[0] }];
}

/**
 * The whole rootfs of `source` as the image tree, owners, modes, xattrs and hard links kept, every timestamp
 * `mtime`; what the skeleton owns (os-release, the mount points, the units) is cleared so that it replaces the
 * rootfs's version rather than colliding with it.
 */
async function planWholeRootfs(source: Source, mtime: number, units: LoadedUnit[]): Promise<ImageTree> {
  const tree = await planFromSource(source, '/', { owners: 'keep', mtime });
  makeRoom(tree, [...SKELETON_FILES, ...units.map((u) => `${IMAGE_UNIT_DIR}/${u.name}`)], SKELETON_DIRS);
  return tree;
}

function planSkeleton(tree: ImageTree, opts: ResolvedOptions, units: LoadedUnit[], osRelease: [string, string][]): void {
  addEntry(tree, '/', { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: opts.mtime, reason: 'root', origin: 'generated' });
  addMountPoints(tree, opts.mtime);
  addFile(tree, OS_RELEASE_PATHS[0], renderOsRelease(osRelease), opts.mtime, 'os-release');
  addUnitFiles(tree, opts, units);
}

function addUnitFiles(tree: ImageTree, opts: ResolvedOptions, units: LoadedUnit[]): void {
  for (const u of units) {
    const data = new TextEncoder().encode(u.text);
    addEntry(tree, unitPath(opts, u), {
      type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: opts.mtime, reason: 'unit', origin: u.origin,
      size: data.length, content: { kind: 'bytes', data },
    });
    for (const d of unitDirectories(u.parsed, u.name)) {
      addEntry(tree, d.mountPoint, { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: opts.mtime, reason: `mount point for ${d.key}=${d.name} of ${u.name}`, origin: 'generated' });
    }
  }
}

/**
 * What files, units, contents, symlinks and packages need, found with the loader configuration the image will run
 * with (loaderConfigOf); when mkportable writes it, that happens once the tree is complete (addLoaderConfig).
 */
async function resolveClosure(
  tree: ImageTree, opts: ResolvedOptions, input: Input, base: OpenedBase | undefined, units: LoadedUnit[], contents: readonly string[],
): Promise<Closure> {
  const source = base ? overlaySource([input.source, base.source], `${input.source.name}+${base.source.name}`) : input.source;
  const written = loaderConfigOf(opts, input) === 'written';
  const closure = createClosure(source, tree, opts.mtime, [], {
    nixStore: true, exclude: globMatcher(opts.exclude), ldCache: written ? 'build' : 'image', ldCacheSource: base?.source ?? input.source,
  });
  await placeFiles(closure, opts);
  await addUnitPrograms(closure, units);
  await addContents(closure, contents, opts.symlinks);
  await addPackages(closure, opts.packages);
  return closure;
}

/**
 * Whose loader configuration (/etc/ld.so.cache, musl's path file) the programs will run with: a portable image's
 * own, which mkportable writes for it; with closure "full" the rootfs's, as it is; an extension's /etc is not
 * overlaid, so its base's (or, without a base, the source's, e.g. the host a sysext is merged into).
 */
function loaderConfigOf(opts: ResolvedOptions, input: Input): 'written' | 'kept' | 'base' {
  if (opts.kind !== 'portable') return 'base';
  return wholeRootfs(opts, input) ? 'kept' : 'written';
}

/** closure "full" from a rootfs: the image is that rootfs, as it is, plus the skeleton. */
const wholeRootfs = (opts: ResolvedOptions, input: Input) => input.from !== undefined && opts.closure === 'full';

async function addUnitPrograms(c: Closure, units: LoadedUnit[]): Promise<void> {
  for (const u of units) {
    for (const prog of unitPrograms(u.parsed, u.name, { where: u.where })) {
      const where = programWhere(prog);
      if (prog.hasSpecifier) {
        c.warnings.push({ code: 'SPECIFIER_IN_EXEC', message: `${where} program '${prog.executable}' uses a % specifier; not resolved, add it with contents`, subject: u.name });
        continue;
      }
      if (placedProgram(c.tree, prog)) continue;
      const exe = await locateProgram(c.source, prog);
      if (!exe) throw new MkportableError('EXEC_NOT_FOUND', `${where} program '${prog.executable}' is not in ${prog.searchPath.join(':')} of ${c.source.name}`, u.name);
      const real = await addPath(c, exe, { reason: `${prog.key}= of ${u.name}`, strict: true, forUnit: true, envPath: prog.envPath });
      if (real === null) throw new MkportableError('EXEC_NOT_FOUND', `${where} program '${exe}' does not exist in ${c.source.name}`, u.name);
      await addArgumentPrograms(c, prog);
    }
  }
}

/** A unit's program placed by `files`: it and what it needs were added with it. */
function placedProgram(tree: ImageTree, prog: UnitProgram): boolean {
  const candidates = prog.executable.startsWith('/') ? [prog.executable] : prog.searchPath.map((d) => `${d}/${prog.executable}`);
  return candidates.some((p) => tree.entries.get(p)?.reason.startsWith(FILES_REASON));
}

/** What a command line runs through its arguments (`env NAME`, `sh -c '…'`): strict for env, best effort for scripts. */
async function addArgumentPrograms(c: Closure, prog: UnitProgram): Promise<void> {
  const where = programWhere(prog);
  const named = argumentPrograms(prog.executable, prog.argv.slice(1));
  for (const { word, via } of named.unresolved) {
    c.warnings.push({ code: 'COMMAND_UNRESOLVED', message: `${where} ${via} runs '${word}', which only the shell can expand: not resolved, add it with contents`, subject: prog.unit });
  }
  for (const n of named.programs) {
    const exe = await locateNamed(c.source, n, prog.envPath);
    const real = exe ? await addPath(c, exe, { reason: `${n.via} in ${prog.key}= of ${prog.unit}`, strict: n.strict, forUnit: n.strict, envPath: prog.envPath }) : null;
    if (real !== null) continue;
    const msg = `${where} ${n.via} runs '${n.executable}', which is not in PATH=${prog.envPath.join(':')} of ${c.source.name}`;
    if (n.strict) throw new MkportableError('EXEC_NOT_FOUND', msg, prog.unit);
    c.warnings.push({ code: 'COMMAND_NOT_FOUND', message: `${msg}; add it with contents if the script needs it`, subject: prog.unit });
  }
}

async function addContents(c: Closure, contents: readonly string[], symlinks: readonly SymlinkSpec[]): Promise<void> {
  const why = (reason: string) => ({ reason, strict: true, envPath: SYSTEMD_DEFAULT_PATH });
  for (const p of contents) {
    if ((await addPath(c, p, why('contents'), true)) === null) {
      throw new MkportableError('PATH_NOT_FOUND', `contents: '${p}' does not exist in ${c.source.name}`, p);
    }
  }
  for (const { object, symlink } of symlinks) {
    if ((await addPath(c, object, why(`object of symlink ${symlink}`), true)) === null) {
      throw new MkportableError('PATH_NOT_FOUND', `symlinks: object '${object}' of '${symlink}' does not exist in ${c.source.name}`, object);
    }
  }
}

/**
 * `packages`: what dpkg lists for each, like a `contents` folder's files (missing dependencies are warnings);
 * listed paths the source lacks are skipped, as dpkg lists diverted and since-removed files too.
 */
async function addPackages(c: Closure, packages: readonly string[]): Promise<void> {
  for (const name of packages) {
    for (const p of await dpkgPackageFiles(c.source, name)) {
      await addPath(c, p, { reason: `package ${name}`, strict: false, envPath: SYSTEMD_DEFAULT_PATH });
    }
  }
}

/**
 * `files`: entries at paths of the user's choosing, after the skeleton and before the closure; a collision with
 * either is an error naming both. Regular files among them bring what they need, found in the source.
 */
async function placeFiles(c: Closure, opts: ResolvedOptions): Promise<void> {
  const host = hostSource();
  const base = { uid: 0, gid: 0, mtime: opts.mtime, origin: 'files' };
  const put = (p: string, entry: Entry) => {
    try {
      addEntry(c.tree, p, entry);
    } catch (e) {
      if (e instanceof MkportableError) throw new MkportableError('FILES_COLLISION', `files: ${e.message}`, p);
      throw e;
    }
  };
  const copy = async (from: string, to: string, top: boolean): Promise<void> => {
    const st = await host.lstat(from);
    if (!st) throw new MkportableError('PATH_NOT_FOUND', `files: source '${from}' of '${to}' does not exist`, from);
    const reason = `${FILES_REASON}${to}`;
    const origin = `host:${from}`;
    if (st.type === 'dir') {
      put(to, { ...base, origin, reason, type: 'dir', mode: st.mode & 0o7777 });
      for (const name of await host.readdir(from)) await copy(`${from}/${name}`, to === '/' ? `/${name}` : `${to}/${name}`, false);
    } else if (st.type === 'file') {
      put(to, { ...base, origin, reason, type: 'file', mode: st.mode & 0o7777, size: st.size, content: { kind: 'source', source: host, path: from } });
      await addContentNeeds(c, to, (o, l) => host.read(from, o, l), st.size, { reason: `needed by ${to} (files)`, strict: top, envPath: SYSTEMD_DEFAULT_PATH });
    } else if (st.type === 'symlink') {
      put(to, { ...base, origin, reason, type: 'symlink', mode: 0o777, target: await host.readlink(from) });
    } else {
      throw new MkportableError('CONFIG_INVALID', `files: '${from}' is a ${st.type}; only files, folders and symlinks can be placed`, from);
    }
  };
  for (const f of opts.files) {
    const reason = `${FILES_REASON}${f.path}`;
    if ('source' in f) await copy(f.source, f.path, true);
    else if ('text' in f) {
      const data = new TextEncoder().encode(f.text);
      put(f.path, { ...base, reason, type: 'file', mode: f.mode ?? 0o644, size: data.length, content: { kind: 'bytes', data } });
      await addContentNeeds(c, f.path, async (o, l) => data.subarray(o, o + l), data.length, { reason: `needed by ${f.path} (files)`, strict: true, envPath: SYSTEMD_DEFAULT_PATH });
    } else if ('type' in f) {
      const existing = c.tree.entries.get(f.path);
      if (existing?.type === 'dir' && f.mode !== undefined) existing.mode = f.mode;
      else put(f.path, { ...base, reason, type: 'dir', mode: f.mode ?? 0o755 });
    } else put(f.path, { ...base, reason, type: 'symlink', mode: 0o777, target: f.symlink });
  }
}

/**
 * `exclude`: what the closure left out (it never followed those paths), and what a whole rootfs brought that
 * matches; the bytes saved count the excluded files and what only they needed, found by a closure of their own.
 */
async function leaveOutExcluded(c: Closure, opts: ResolvedOptions): Promise<{ excluded: { path: string; size: number }[]; excludedBytes: number }> {
  if (opts.exclude.length === 0) return { excluded: [], excludedBytes: 0 };
  const match = globMatcher(opts.exclude);
  const sizes = new Map<string, number>();
  let bytes = 0;
  for (const [p, e] of [...c.tree.entries]) {
    if (!match(p) || !c.tree.entries.has(p)) continue;
    if (e.type === 'file') bytes += e.size;
    sizes.set(p, e.type === 'file' ? e.size : 0);
    removeEntry(c.tree, p);
  }
  const scratch = createClosure(c.source, createTree(), opts.mtime, []);
  for (const p of c.excluded.keys()) await addPath(scratch, p, { reason: 'excluded', strict: false, envPath: SYSTEMD_DEFAULT_PATH }, true);
  for (const [p, e] of scratch.tree.entries) {
    if (c.tree.entries.has(p) || e.type !== 'file') continue;
    bytes += e.size;
    const top = [...c.excluded.keys()].find((x) => p === x || p.startsWith(`${x}/`));
    if (top) sizes.set(top, (sizes.get(top) ?? 0) + e.size);
  }
  for (const p of c.excluded.keys()) if (!sizes.has(p)) sizes.set(p, 0);
  const excluded = [...sizes].map(([path, size]) => ({ path, size })).sort((a, b) => (a.path < b.path ? -1 : 1));
  return { excluded, excludedBytes: bytes };
}

/** A service unit that reaches systemd's user database, so its dynamic user has a name (see USERDB_BIND). */
function withUserdbAccess(u: LoadedUnit): LoadedUnit {
  if (!u.name.endsWith('.service')) return u;
  const text = withServiceLine(u.text, USERDB_BIND);
  return text === u.text ? u : { ...u, text, parsed: parseUnitFile(text, u.where) };
}

/**
 * nss-systemd beside the image's libc, with what it needs: true when the image carries it. Without a libc in the
 * image (static programs) nothing looks names up through NSS; a source without the module gets a warning.
 */
async function addNssSystemd(c: Closure, units: LoadedUnit[]): Promise<boolean> {
  if (!units.some((u) => u.name.endsWith('.service'))) return false;
  const libc = [...c.tree.entries.keys()].find((p) => p.endsWith('/libc.so.6') && c.tree.entries.get(p)!.type === 'file');
  if (!libc) return false;
  const module = `${libc.slice(0, libc.lastIndexOf('/'))}/${NSS_SYSTEMD_LIBRARY}`;
  const found = await addPath(c, module, { reason: 'nss-systemd: names of dynamic users', strict: false, envPath: SYSTEMD_DEFAULT_PATH });
  if (found === null) {
    c.warnings.push({ code: 'CONTENT_DEPENDENCY_MISSING', message: `${module} is not in ${c.source.name}: programs cannot look up their dynamic user's name (install libnss-systemd, or dynamicUserLookup: false)`, subject: module });
    return false;
  }
  return true;
}

/** Owners from a rootfs, the configured symlinks, and name service files where the tree has none. */
async function finishTree(tree: ImageTree, opts: ResolvedOptions, input: Input, nssSystemd: boolean): Promise<void> {
  if (input.from && opts.closure !== 'full') await keepSourceOwners(tree, input.source);
  addSymlinks(tree, opts);
  if (opts.kind === 'portable') addMinimalEtc(tree, opts.mtime, nssSystemd);
}

function addSymlinks(tree: ImageTree, opts: ResolvedOptions): void {
  for (const { object, symlink } of opts.symlinks) {
    try {
      addEntry(tree, symlink, { type: 'symlink', target: object, mode: 0o777, uid: 0, gid: 0, mtime: opts.mtime, reason: `symlink ${symlink}`, origin: 'symlinks' });
    } catch (e) {
      if (e instanceof MkportableError) throw new MkportableError('SYMLINK_COLLISION', `symlinks: '${symlink}' collides with the image: ${e.message}`, symlink);
      throw e;
    }
  }
}

interface Written {
  image: string;
  name: string;
  size: number;
  sha256: string;
  problems: Problem[];
  cache: BuildResult['cache'];
  format: ImageFormat;
  outputs: string[];
  rootHash?: string;
  signed: boolean;
  architecture?: string;
}

/** A file made from the checked squashfs and the final image's sha256 (the SBOM), renamed into place together with it. */
type Companion = (tmp: string, w: { name: string; sha256: string }) => Promise<{ data: string; file: string }>;

/** Write the image under a temporary name, check it, and rename it (and its companion) into place only when all is well. */
async function writeChecked(tree: ImageTree, opts: ResolvedOptions, step: (s: string) => void,
  output: { signing?: SigningKeys; architecture?: string }, onWrite?: (p: WriteProgress) => void, base?: OpenedBase,
  companion?: Companion): Promise<Written> {
  const name = `${opts.pname}_${opts.version}`;
  const image = path.join(opts.outDir, `${name}.raw`);
  // Not named after the image: `<pname>_<version>.raw` may take all 255 bytes a name can have.
  const tmp = path.join(opts.outDir, `.mkportable-${process.pid}-${Date.now()}.tmp`);
  step(`writing ${image} (${opts.backend === 'native' ? 'native writer' : 'mksquashfs'})`);
  try {
    const w = await writeImage(tree, tmp, {
      backend: opts.backend, compression: opts.compression, blockSize: opts.blockSize, mkfsTime: opts.mtime, squashfsTools: opts.squashfsTools,
      cache: opts.cache ? { dir: defaultCacheDir(), cap: opts.cacheSize } : null,
      onProgress: onWrite,
    });
    if (opts.check) step("checking the image by portabled's rules");
    const problems = opts.check ? await checkImage(tmp, `${name}.raw`, opts, base) : [];
    if (opts.verity || opts.format === 'ddi') step(opts.format === 'ddi' ? `writing the disk image (${output.architecture})` : 'writing the verity sidecars');
    // The container writer renames the image, its sidecars and the companion into place together, or none of them.
    const out = await writeContainer(tmp, { outDir: opts.outDir, name, format: opts.format, verity: opts.verity, ...output },
      companion && ((squashfs, w) => companion(squashfs, { name, sha256: w.sha256 })));
    const c = w?.cache;
    return {
      image: out.image, name, size: out.size, sha256: out.sha256, problems,
      format: out.format, outputs: out.outputs, rootHash: out.rootHash, signed: output.signing !== undefined, architecture: output.architecture,
      cache: c ? { hits: c.hits, misses: c.misses, stored: c.stores, corrupt: c.corrupt } : null,
    };
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

/** Judge the finished image as `mkportable inspect` would; errors stop the build before the image is renamed into place. */
async function checkImage(tmp: string, fileName: string, opts: ResolvedOptions, base?: OpenedBase): Promise<Problem[]> {
  // A sysext or confext, or an extension without a base, has no stack to judge: the layout rules were applied.
  if (opts.kind !== 'portable' && !(opts.kind === 'extension' && base)) return [];
  // Inspect under the final name: the prefix portablectl derives comes from it.
  const dir = await fs.mkdtemp(path.join(path.dirname(tmp), '.check-'));
  const named = path.join(dir, fileName);
  await fs.link(tmp, named).catch(() => fs.copyFile(tmp, named));
  try {
    const report = await judgeImage(named, opts, base);
    const errors = report.problems.filter((p) => p.severity === 'error');
    if (errors.length) {
      const more = errors.length > 1 ? ` (and ${errors.length - 1} more; see mkportable inspect)` : '';
      throw new MkportableError('CHECK_FAILED', `${fileName}: portabled would fail: ${errors[0].rule}: ${errors[0].message}${more}`, fileName);
    }
    return report.problems;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** A portable image alone (a base with no units by the prefixes it names), or an extension on its base. */
async function judgeImage(named: string, opts: ResolvedOptions, base?: OpenedBase): Promise<{ problems: Problem[] }> {
  if (opts.kind === 'extension' && base) return inspectStackPaths(base.file, [named], { prefixes: [opts.pname] });
  if (opts.units.length > 0 || opts.unitFromConfig) return inspectPath(named);
  const prefixes = (opts.osRelease.PORTABLE_PREFIXES ?? '').split(/\s+/).filter(Boolean);
  const report = await inspectPath(named, { prefixes });
  return { problems: report.problems.filter((p) => p.rule !== 'no-matching-units') };
}

/** Names, per file taken from the source, the package that installed it there; lists those packages. */
async function attributePackages(files: BuildFile[], source: Source): Promise<BuildPackage[]> {
  const prefix = `${source.name}:`;
  const sourced = files.filter((f) => f.type !== 'dir' && f.origin.startsWith(prefix));
  const db = await readPackageDb(source, new Set(sourced.map((f) => path.posix.basename(f.origin))));
  if (!db) return [];
  const counts = new Map<DistroPackage, number>();
  await Promise.all(sourced.map(async (f) => {
    const owner = await db.owner(f.origin.slice(prefix.length));
    if (!owner) return;
    f.package = owner.id;
    counts.set(owner, (counts.get(owner) ?? 0) + 1);
  }));
  return [...counts].map(([p, n]) => ({ ...p, files: n })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function toolVersion(): string {
  return (JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

function listFiles(tree: ImageTree): BuildFile[] {
  return walkTree(tree).map((p) => {
    const e = tree.entries.get(p)!;
    const f: BuildFile = { path: p, type: e.type, mode: e.mode.toString(8).padStart(4, '0'), origin: e.origin, reason: e.reason };
    if (e.type === 'file') f.size = e.size;
    if (e.type === 'symlink') f.target = e.target;
    return f;
  });
}
