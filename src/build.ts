import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MkportableError, type BuildWarning } from './errors.js';
import type { PortableServiceConfig } from './config/options.js';
import { resolveOptions, type ResolvedOptions } from './config/resolve.js';
import { createTree, walkTree, type ImageTree } from './plan/tree.js';
import { addEntry } from './plan/add.js';
import type { Source } from './sources/source.js';
import { hostSource } from './sources/host.js';
import { loadUnits, execPrograms, execSearchPath, servicePath, type LoadedUnit } from './units/load.js';
import { addLdConfig, addPath, createClosure, findInPath, SYSTEMD_DEFAULT_PATH, type Closure } from './closure/resolve.js';
import { addFile, addMinimalEtc, addMountPoints } from './layout/skeleton.js';
import { osReleaseFields, readSourceOs } from './layout/osrelease.js';
import { renderOsRelease } from './formats/osrelease.js';
import { writeImage, type Backend } from './writers/index.js';
import { inspectPath, type Problem } from './inspect/index.js';
import { writeContainer, type ImageFormat } from './writers/container.js';
import { loadSigningKeys } from './writers/signing.js';
import { detectArchitecture } from './writers/architecture.js';
import { keepSourceOwners, openFrom, planFullTree, unitFromImageConfig, type OpenedFrom } from './sources/from.js';

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
  /** 'squashfs': `image` is the squashfs (with sidecars when verity is on); 'ddi': a GPT disk image holding it. */
  format: ImageFormat;
  /** Every file written (sidecars first, the image last). */
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
  /** Where binaries come from; the build host by default. */
  source?: Source;
}

const UNIT_DIR = '/etc/systemd/system';

function planSkeleton(tree: ImageTree, opts: ResolvedOptions, units: LoadedUnit[], osRelease: [string, string][]): void {
  addEntry(tree, '/', { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: opts.mtime, reason: 'root', origin: 'generated' });
  addMountPoints(tree, opts.mtime);
  addFile(tree, '/etc/os-release', renderOsRelease(osRelease), opts.mtime, 'os-release');
  for (const u of units) {
    const data = new TextEncoder().encode(u.text);
    addEntry(tree, `${UNIT_DIR}/${u.name}`, {
      type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: opts.mtime, reason: 'unit', origin: u.origin,
      size: data.length, content: { kind: 'bytes', data },
    });
  }
}

async function addUnitPrograms(c: Closure, units: LoadedUnit[]): Promise<void> {
  for (const u of units) {
    const envPath = servicePath(u) ?? SYSTEMD_DEFAULT_PATH;
    for (const prog of execPrograms([u])) {
      const where = `${u.name}: ${prog.key}=`;
      if (prog.hasSpecifier) {
        c.warnings.push({ code: 'SPECIFIER_IN_EXEC', message: `${where} program '${prog.executable}' uses a % specifier; not resolved, add it with contents`, subject: u.name });
        continue;
      }
      let exe = prog.executable;
      if (!exe.startsWith('/')) {
        const found = await findInPath(c.source, exe, execSearchPath(u) ?? SYSTEMD_DEFAULT_PATH);
        if (!found) throw new MkportableError('EXEC_NOT_FOUND', `${where} program '${exe}' is not in ${SYSTEMD_DEFAULT_PATH.join(':')} of ${c.source.name}`, u.name);
        exe = found;
      }
      const real = await addPath(c, exe, { reason: `${prog.key}= of ${u.name}`, strict: true, envPath });
      if (real === null) throw new MkportableError('EXEC_NOT_FOUND', `${where} program '${exe}' does not exist in ${c.source.name}`, u.name);
    }
  }
}

async function addContents(c: Closure, opts: ResolvedOptions): Promise<void> {
  const why = (reason: string) => ({ reason, strict: true, envPath: SYSTEMD_DEFAULT_PATH });
  for (const p of opts.contents) {
    if ((await addPath(c, p, why('contents'), true)) === null) {
      throw new MkportableError('PATH_NOT_FOUND', `contents: '${p}' does not exist in ${c.source.name}`, p);
    }
  }
  for (const { object, symlink } of opts.symlinks) {
    if ((await addPath(c, object, why(`object of symlink ${symlink}`), true)) === null) {
      throw new MkportableError('PATH_NOT_FOUND', `symlinks: object '${object}' of '${symlink}' does not exist in ${c.source.name}`, object);
    }
  }
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

function listFiles(tree: ImageTree): BuildFile[] {
  return walkTree(tree).map((p) => {
    const e = tree.entries.get(p)!;
    const f: BuildFile = { path: p, type: e.type, mode: e.mode.toString(8).padStart(4, '0'), origin: e.origin, reason: e.reason };
    if (e.type === 'file') f.size = e.size;
    if (e.type === 'symlink') f.target = e.target;
    return f;
  });
}

/** Judge the finished image as `mkportable inspect` would; errors stop the build before the image is renamed into place. */
async function checkImage(tmp: string, fileName: string): Promise<Problem[]> {
  // Inspect under the final name: the prefix portablectl derives comes from it.
  const dir = await fs.mkdtemp(path.join(path.dirname(tmp), '.check-'));
  const named = path.join(dir, fileName);
  await fs.link(tmp, named).catch(() => fs.copyFile(tmp, named));
  try {
    const report = await inspectPath(named);
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

/** Build a portable service image: the typed library entry point behind `mkportable build`. */
export async function portableService(options: PortableServiceConfig, hooks: BuildHooks = {}): Promise<BuildResult> {
  const { from: spec, allowDevices } = resolveOptions(options);
  if (!spec) return buildImage(options, hooks);
  if (hooks.source) throw new MkportableError('CONFIG_INVALID', "options: give either 'from' or hooks.source, not both", 'from');
  hooks.progress?.(`reading ${spec}`);
  const from = await openFrom({ from: spec, allowDevices });
  try {
    return await buildImage(options, { ...hooks, source: from.source }, from);
  } finally {
    await from.close();
  }
}

async function buildImage(options: PortableServiceConfig, hooks: BuildHooks, from?: OpenedFrom): Promise<BuildResult> {
  const step = hooks.progress ?? (() => {});
  step('checking options');
  const opts = resolveOptions(options);
  const signing = await loadSigningKeys(opts);
  const source = hooks.source ?? hostSource();
  const generated = opts.unitFromConfig && from?.config ? await unitFromImageConfig(from.config, { pname: opts.pname, source, describe: from.describe }) : undefined;
  if (generated && opts.closure === 'minimal') opts.contents.push(...generated.contents);
  const units = await loadUnits([...opts.units, ...(generated ? [generated.unit] : [])], opts.baseDir, opts.pname);
  const warnings: BuildWarning[] = [];

  step('planning the image');
  const fields = osReleaseFields({
    pname: opts.pname, version: opts.version, description: opts.description, homepage: opts.homepage,
    sourceOs: await readSourceOs(source), overrides: opts.osRelease,
  });
  const full = from !== undefined && opts.closure === 'full';
  const tree = full ? await planFullTree(source, opts.mtime, units.map((u) => `${UNIT_DIR}/${u.name}`)) : createTree();
  planSkeleton(tree, opts, units, fields);

  step('resolving the closure');
  const closure = createClosure(source, tree, opts.mtime, warnings, { nixStore: true });
  await addUnitPrograms(closure, units);
  await addContents(closure, opts);
  await addLdConfig(closure);
  if (from && !full) await keepSourceOwners(tree, source);
  addSymlinks(tree, opts);
  addMinimalEtc(tree, opts.mtime);

  const architecture = opts.format === 'ddi' ? opts.architecture ?? (await detectArchitecture(tree, warnings)) : undefined;
  const name = `${opts.pname}_${opts.version}`;
  const image = path.join(opts.outDir, `${name}.raw`);
  await fs.mkdir(opts.outDir, { recursive: true });
  const tmp = path.join(opts.outDir, `.${name}.raw.${process.pid}.${Date.now()}.tmp`);
  step(`writing ${image} (${opts.backend === 'native' ? 'native writer' : 'mksquashfs'})`);
  try {
    await writeImage(tree, tmp, {
      backend: opts.backend, compression: opts.compression, blockSize: opts.blockSize, mkfsTime: opts.mtime, squashfsTools: opts.squashfsTools,
    });
    const problems = opts.check ? await checkImage(tmp, `${name}.raw`) : [];
    if (opts.verity || opts.format === 'ddi') step(opts.format === 'ddi' ? `writing the disk image (${architecture})` : 'writing the verity sidecars');
    const out = await writeContainer(tmp, { outDir: opts.outDir, name, format: opts.format, verity: opts.verity, signing, architecture });
    return {
      image: out.image, name, size: out.size, sha256: out.sha256, backend: opts.backend, problems,
      format: out.format, outputs: out.outputs, rootHash: out.rootHash, signed: signing !== undefined, architecture,
      units: units.map((u) => u.name),
      osRelease: Object.fromEntries(fields),
      files: listFiles(tree),
      warnings,
      nixStorePaths: [...(closure.nix?.done ?? [])].sort(),
      bytesScanned: closure.nix?.stats.bytesScanned ?? 0,
    };
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
