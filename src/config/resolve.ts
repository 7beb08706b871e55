import path from 'node:path';
import { MkportableError } from '../errors.js';
import type { FileSpec, PortableServiceConfig, SymlinkSpec, UnitSpec } from './options.js';
import { DEFAULTS, normalizeOptions } from './settings.js';
import { compressionWords, parseBlockSize } from './size.js';
import { validatePname, validateVersion } from '../systemd/portabled.js';
import { parseCompression } from '../compress/registry.js';
import type { Backend } from '../writers/index.js';
import { parseFromSpec } from './from-spec.js';
import { ARCHITECTURE_NAMES, canonicalArchitecture } from '../formats/dps.js';
import type { ImageFormat } from '../writers/container.js';

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
  readonly format: ImageFormat;
  readonly verity: boolean;
  /** Absolute paths. */
  readonly signingKey?: string;
  readonly signingCertificate?: string;
  /** Canonical DPS name; undefined: detect from the image. */
  readonly architecture?: string;
}

/** The output options: format, verity, signing and architecture, each checked against the others. */
function resolveOutput(o: ReturnType<typeof normalizeOptions>, where: string, baseDir: string) {
  const bad = (msg: string) => new MkportableError('CONFIG_INVALID', `${where}: ${msg}`, where);
  const format = o.format ?? 'squashfs';
  if (format !== 'squashfs' && format !== 'ddi') throw bad(`'format' must be "squashfs" or "ddi", got ${JSON.stringify(o.format)}`);
  const verity = o.verity ?? false;
  if (o.signingKey !== undefined && o.signingCertificate === undefined) {
    throw bad("'signingKey' needs 'signingCertificate' (the certificate systemd checks the signature against)");
  }
  if (o.signingCertificate !== undefined && !verity) throw bad("signing needs 'verity: true' (the signature covers the verity root hash)");
  let architecture: string | undefined;
  if (o.architecture !== undefined) {
    if (format !== 'ddi') throw bad("'architecture' only applies to format \"ddi\" (it types the partitions)");
    architecture = canonicalArchitecture(o.architecture);
    if (!architecture) throw bad(`'architecture' ${JSON.stringify(o.architecture)} is not one of ${ARCHITECTURE_NAMES.join(', ')}`);
  }
  const abs = (p?: string) => (p === undefined ? undefined : path.resolve(baseDir, p));
  return { format, verity, signingKey: abs(o.signingKey), signingCertificate: abs(o.signingCertificate), architecture } as const;
}

function requireAbsolute(where: string, p: string): void {
  if (!p.startsWith('/')) {
    throw new MkportableError('CONFIG_INVALID', `${where}: '${p}' must be an absolute path (it is taken from, and placed at, the same path)`, where);
  }
}

export function resolveOptions(input: PortableServiceConfig, where = 'options'): ResolvedOptions {
  const o = normalizeOptions(where, input);
  for (const key of ['pname', 'version', ...(o.unitFromConfig ? [] : ['units' as const])] as const) {
    if (o[key] === undefined) throw new MkportableError('CONFIG_INVALID', `${where}: '${key}' is required`, where);
  }
  const baseDir = path.resolve(o.baseDir ?? '.');
  const from = o.from === undefined ? undefined : parseFromSpec(o.from, baseDir, `${where}: from`);
  if (o.closure !== undefined && o.closure !== 'full' && o.closure !== 'minimal') {
    throw new MkportableError('CONFIG_INVALID', `${where}: 'closure' must be "full" or "minimal", got ${JSON.stringify(o.closure)}`, where);
  }
  if (o.closure === 'full' && !from) throw new MkportableError('CONFIG_INVALID', `${where}: closure "full" needs 'from' (the whole build host is never copied)`, where);
  if (o.unitFromConfig && (!from || from.kind === 'tar' || from.kind === 'dir')) {
    throw new MkportableError('CONFIG_INVALID', `${where}: 'unitFromConfig' needs 'from' to name a container image (oci:, oci-archive:, docker-archive:)`, where);
  }
  validatePname(o.pname!);
  validateVersion(o.version!);
  for (const c of o.contents ?? []) requireAbsolute(`${where}: contents`, c);
  for (const g of o.exclude ?? []) requireAbsolute(`${where}: exclude`, g);
  for (const s of o.symlinks ?? []) {
    requireAbsolute(`${where}: symlinks[].object`, s.object);
    requireAbsolute(`${where}: symlinks[].symlink`, s.symlink);
  }
  let mtime = o.sourceDateEpoch;
  if (mtime === undefined && process.env.SOURCE_DATE_EPOCH) {
    mtime = Number(process.env.SOURCE_DATE_EPOCH);
    if (!Number.isInteger(mtime) || mtime < 0) {
      throw new MkportableError('CONFIG_INVALID', `SOURCE_DATE_EPOCH: '${process.env.SOURCE_DATE_EPOCH}' is not a number of seconds`, 'SOURCE_DATE_EPOCH');
    }
  }
  const compression = compressionWords(o.squashCompression ?? DEFAULTS.squashCompression);
  const blockSize = parseBlockSize(o.squashBlockSize ?? DEFAULTS.squashBlockSize);
  const backend: Backend = o.squashfsTools ? 'mksquashfs' : 'native';
  // The native writer checks every compression word now, before any work; mksquashfs checks its own.
  if (backend === 'native') parseCompression(compression, blockSize);
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
    exclude: [...(o.exclude ?? [])],
    keepSourceUnits: o.keepSourceUnits ?? false,
    dynamicUserLookup: o.dynamicUserLookup ?? true,
    squashfsTools: o.squashfsTools,
    compression,
    blockSize,
    backend,
    check: o.check ?? true,
    outDir: path.resolve(o.outDir ?? DEFAULTS.outDir),
    osRelease: { ...o.osRelease },
    mtime: mtime ?? 0,
    baseDir,
    from: from && `${from.kind}:${from.path}${from.ref !== undefined ? `:${from.ref}` : ''}`,
    closure: o.closure ?? (from ? 'full' : 'minimal'),
    unitFromConfig: o.unitFromConfig ?? false,
    allowDevices: o.allowDevices ?? true,
    ...resolveOutput(o, where, baseDir),
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
