import path from 'node:path';
import { MkportableError } from '../errors.js';
import type { FileSpec, PortableServiceConfig, SymlinkSpec, UnitSpec } from './options.js';
import { DEFAULTS, normalizeOptions } from './settings.js';
import { compressionWords, parseBlockSize, parseByteSize } from './size.js';
import { IMAGE_KINDS, imageFileName, validatePname, validateVersion, type ImageKind } from '../systemd/portabled.js';
import { parseCompression, requireCompressorLibrary } from '../compress/registry.js';
import { collectProblems } from './problems.js';
import type { Backend } from '../writers/index.js';
import { parseFromSpec } from './from-spec.js';
import { ARCHITECTURE_NAMES, canonicalArchitecture } from '../formats/dps.js';
import type { ImageFormat } from '../writers/container.js';
import type { Problems } from './problems.js';

/** Options after validation, with defaults applied: what the build steps read. Frozen: no step changes them. */
export interface ResolvedOptions {
  readonly pname: string;
  readonly version: string;
  readonly units: readonly UnitSpec[];
  readonly description?: string;
  readonly homepage?: string;
  readonly symlinks: readonly Readonly<SymlinkSpec>[];
  readonly contents: readonly string[];
  /** `files`, with `source` made absolute (relative to the config file). */
  readonly files: readonly Readonly<FileSpec>[];
  readonly packages: readonly string[];
  readonly exclude: readonly string[];
  readonly keepSourceUnits: boolean;
  readonly dynamicUserLookup: boolean;
  readonly squashfsTools?: string;
  readonly compression: readonly string[];
  readonly blockSize: number;
  readonly outDir: string;
  readonly osRelease: Readonly<Record<string, string | null>>;
  readonly mtime: number;
  readonly baseDir: string;
  readonly check: boolean;
  readonly backend: Backend;
  /** `from` with an absolute path; undefined: the build host (or hooks.source). */
  readonly from?: string;
  readonly closure: 'full' | 'minimal';
  readonly unitFromConfig: boolean;
  readonly allowDevices: boolean;
  readonly kind: ImageKind;
  /** Absolute path of the base image. */
  readonly base?: string;
  /** Use the block cache (native writer only). */
  readonly cache: boolean;
  readonly cacheSize: number;
  readonly format: ImageFormat;
  readonly verity: boolean;
  /** Absolute paths. */
  readonly signingKey?: string;
  readonly signingCertificate?: string;
  /** Canonical DPS name; undefined: detect from the image. */
  readonly architecture?: string;
}

/** The output options: format, verity, signing and architecture, each checked against the others. */
function resolveOutput(o: ReturnType<typeof normalizeOptions>, where: string, baseDir: string, kind: ImageKind, problems: Problems) {
  const bad = (msg: string) => problems.add(new MkportableError('CONFIG_INVALID', `${where}: ${msg}`, where));
  const format = (o.format ?? 'squashfs') as ImageFormat;
  if (format !== 'squashfs' && format !== 'ddi') bad(`'format' must be "squashfs" or "ddi", got ${JSON.stringify(o.format)}`);
  // Extensions as DDIs carry /usr (sysext) or other partitions than a portable root: not made here.
  if (format === 'ddi' && kind !== 'portable') bad(`format "ddi" is for portable images, not kind ${kind}`);
  const verity = o.verity ?? false;
  if (o.signingKey !== undefined && o.signingCertificate === undefined) {
    bad("'signingKey' needs 'signingCertificate' (the certificate systemd checks the signature against)");
  }
  if (o.signingCertificate !== undefined && !verity) bad("signing needs 'verity: true' (the signature covers the verity root hash)");
  let architecture: string | undefined;
  if (o.architecture !== undefined) {
    architecture = canonicalArchitecture(o.architecture);
    if (format !== 'ddi') bad("'architecture' only applies to format \"ddi\" (it types the partitions)");
    else if (!architecture) bad(`'architecture' ${JSON.stringify(o.architecture)} is not one of ${ARCHITECTURE_NAMES.join(', ')}`);
  }
  const abs = (p?: string) => (p === undefined ? undefined : path.resolve(baseDir, p));
  return { format, verity, signingKey: abs(o.signingKey), signingCertificate: abs(o.signingCertificate), architecture };
}

function requireAbsolute(where: string, p: string): void {
  if (!p.startsWith('/')) {
    throw new MkportableError('CONFIG_INVALID', `${where}: '${p}' must be an absolute path (it is taken from, and placed at, the same path)`, where);
  }
}

export function resolveOptions(input: PortableServiceConfig, where = 'options'): ResolvedOptions {
  const o = normalizeOptions(where, input);
  // Every check runs, so one error names all that is wrong with the options.
  const problems = collectProblems(where);
  const kind = (o.kind ?? 'portable') as ImageKind;
  if (!IMAGE_KINDS.includes(kind)) {
    problems.add(new MkportableError('CONFIG_INVALID', `${where}: 'kind' must be one of ${IMAGE_KINDS.join(', ')}, got ${JSON.stringify(o.kind)}`, where));
  }
  const unitsRequired = !o.unitFromConfig && (kind === 'portable' || kind === 'extension');
  const missing = (['pname', 'version', ...(unitsRequired ? ['units' as const] : [])] as const).filter((k) => o[k] === undefined);
  if (missing.length) {
    const list = missing.map((k) => `'${k}'`).join(missing.length === 2 ? ' and ' : ', ');
    problems.add(new MkportableError('CONFIG_INVALID', `${where}: ${list} ${missing.length === 1 ? 'is' : 'are'} required`, where));
  }
  const baseDir = path.resolve(o.baseDir ?? '.');
  const from = o.from === undefined ? undefined : problems.check(() => parseFromSpec(o.from!, baseDir, `${where}: from`));
  if (o.closure !== undefined && o.closure !== 'full' && o.closure !== 'minimal') {
    problems.add(new MkportableError('CONFIG_INVALID', `${where}: 'closure' must be "full" or "minimal", got ${JSON.stringify(o.closure)}`, where));
  }
  if (o.closure === 'full' && o.from === undefined) problems.add(new MkportableError('CONFIG_INVALID', `${where}: closure "full" needs 'from' (the whole build host is never copied)`, where));
  if (o.unitFromConfig && (o.from === undefined || from?.kind === 'tar' || from?.kind === 'dir')) {
    problems.add(new MkportableError('CONFIG_INVALID', `${where}: 'unitFromConfig' needs 'from' to name a container image (oci:, oci-archive:, docker-archive:)`, where));
  }
  if (kind === 'portable' && o.units?.length === 0 && !o.unitFromConfig && !o.osRelease?.PORTABLE_PREFIXES) {
    problems.add(new MkportableError('CONFIG_INVALID', `${where}: 'units' is empty: a base image without units needs osRelease.PORTABLE_PREFIXES naming the extensions' prefixes`, where));
  }
  if (o.base !== undefined && kind === 'portable') problems.add(new MkportableError('CONFIG_INVALID', `${where}: 'base' is for kind extension, sysext or confext`, where));
  if (kind !== 'portable' && o.closure === 'full') problems.add(new MkportableError('CONFIG_INVALID', `${where}: closure "full" is for portable images; a ${kind} carries only what it needs`, where));
  if (o.pname !== undefined && o.version !== undefined) problems.check(() => imageFileName(o.pname!, o.version!));
  else if (o.pname !== undefined) problems.check(() => validatePname(o.pname!));
  else if (o.version !== undefined) problems.check(() => validateVersion(o.version!));
  for (const c of o.contents ?? []) problems.check(() => requireAbsolute(`${where}: contents`, c));
  for (const g of o.exclude ?? []) problems.check(() => requireAbsolute(`${where}: exclude`, g));
  for (const s of o.symlinks ?? []) {
    problems.check(() => requireAbsolute(`${where}: symlinks[].object`, s.object));
    problems.check(() => requireAbsolute(`${where}: symlinks[].symlink`, s.symlink));
  }
  const compression = problems.check(() => compressionWords(o.squashCompression ?? DEFAULTS.squashCompression));
  const blockSize = problems.check(() => parseBlockSize(o.squashBlockSize ?? DEFAULTS.squashBlockSize));
  const backend: Backend = o.squashfsTools ? 'mksquashfs' : 'native';
  // The native writer checks every compression word now, before any work, and that its library loads; mksquashfs checks its own.
  if (backend === 'native' && compression && blockSize) {
    problems.check(() => requireCompressorLibrary(parseCompression(compression, blockSize)));
  }
  let mtime = o.sourceDateEpoch;
  if (mtime === undefined && process.env.SOURCE_DATE_EPOCH) {
    mtime = Number(process.env.SOURCE_DATE_EPOCH);
    if (!Number.isInteger(mtime) || mtime < 0) {
      problems.add(new MkportableError('CONFIG_INVALID', `SOURCE_DATE_EPOCH: '${process.env.SOURCE_DATE_EPOCH}' is not a number of seconds`, 'SOURCE_DATE_EPOCH'));
    }
  }
  const output = resolveOutput(o, where, baseDir, kind, problems);
  problems.done();
  return deepFreeze({
    pname: o.pname!,
    version: o.version!,
    // Copies: freezing must not reach into the caller's own objects.
    units: (o.units ?? []).map((u) => (typeof u === 'string' ? u : { ...u })),
    description: o.description,
    homepage: o.homepage,
    symlinks: (o.symlinks ?? []).map((s) => ({ ...s })),
    contents: [...(o.contents ?? [])],
    files: (o.files ?? []).map((f) => ('source' in f ? { ...f, source: path.resolve(baseDir, f.source) } : { ...f })),
    packages: [...(o.packages ?? [])],
    exclude: [...(o.exclude ?? [])],
    keepSourceUnits: o.keepSourceUnits ?? false,
    dynamicUserLookup: o.dynamicUserLookup ?? true,
    squashfsTools: o.squashfsTools,
    compression: compression!,
    blockSize: blockSize!,
    backend,
    check: o.check ?? true,
    outDir: path.resolve(o.outDir ?? DEFAULTS.outDir),
    osRelease: { ...o.osRelease },
    mtime: mtime ?? 0,
    baseDir,
    from: from && `${from.kind}:${from.path}${from.ref !== undefined ? `:${from.ref}` : ''}`,
    closure: o.closure ?? (from && kind === 'portable' ? 'full' : 'minimal'),
    kind,
    base: o.base === undefined ? undefined : path.resolve(baseDir, o.base),
    unitFromConfig: o.unitFromConfig ?? false,
    allowDevices: o.allowDevices ?? true,
    cache: o.cache ?? true,
    cacheSize: parseByteSize(o.cacheSize ?? DEFAULTS.cacheSize, `${where}: cacheSize`),
    ...output,
  });
}

/** Freeze a plain value and everything in it. */
function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
