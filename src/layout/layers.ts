/**
 * Layered images: the base an extension is built against, the extension-release file it carries, and the
 * pruning that leaves in the extension only what the base lacks. systemd's rules are in systemd/portabled.ts.
 */
import path from 'node:path';
import { MkportableError } from '../errors.js';
import type { Source } from '../sources/source.js';
import type { ImageTree } from '../plan/tree.js';
import { addEntry } from '../plan/add.js';
import { removeEntry } from '../plan/edit.js';
import { parseOsRelease, renderOsRelease } from '../formats/osrelease.js';
import type { SourceOs } from './osrelease.js';
import {
  checkExtensionRelease, EXTENSION_RELEASE_STRICT_XATTR, extensionHierarchies, extensionKeys, extensionReleasePath, OS_RELEASE_PATHS,
  type ImageKind,
} from '../systemd/portabled.js';

export interface OpenedBase {
  file: string;
  source: Source;
  osRelease: Record<string, string>;
  close(): Promise<void>;
}

/** Open a base image (a squashfs .raw) and read its os-release; a base without one is refused. */
export async function openBase(file: string): Promise<OpenedBase> {
  const { openImage } = await import('../squashfs/read/index.js');
  const { squashfsSource } = await import('../sources/squashfs.js');
  let image;
  try {
    image = await openImage(file);
  } catch (e) {
    throw new MkportableError('CONFIG_INVALID', `base: ${file}: cannot read it as a squashfs image: ${(e as Error).message}`, file);
  }
  const source = squashfsSource(image, `base:${path.basename(file)}`);
  const osRelease = await readOsReleaseOf(source);
  if (!osRelease) {
    await image.close();
    throw new MkportableError('CONFIG_INVALID', `base: ${file}: has no /etc/os-release nor /usr/lib/os-release, so it is not a portable image`, file);
  }
  return { file, source, osRelease, close: () => image.close() };
}

export async function readOsReleaseOf(source: Source): Promise<Record<string, string> | undefined> {
  const { realpathIn } = await import('../sources/realpath.js');
  for (const p of OS_RELEASE_PATHS) {
    const real = await realpathIn(source, p).catch(() => undefined);
    if (!real || (await source.lstat(real))?.type !== 'file') continue;
    return Object.fromEntries(parseOsRelease(Buffer.from(await source.readFile(real)).toString('utf8')).fields);
  }
  return undefined;
}

export interface ReleaseInput {
  kind: Exclude<ImageKind, 'portable'>;
  pname: string;
  version: string;
  description?: string;
  /** Unit prefixes the extension's units use (PORTABLE_PREFIXES=). */
  prefixes: string[];
  base?: Record<string, string>;
  sourceOs: SourceOs;
  overrides: Record<string, string | null>;
  /** SYSEXT_SCOPE= / CONFEXT_SCOPE= unless overridden. */
}

/** The keys of the extension-release file: the base's identity (or the build host's), scope, prefixes. */
export function extensionReleaseFields(input: ReleaseInput): Record<string, string> {
  const { kind, base } = input;
  const keys = extensionKeys(kind);
  const f = new Map<string, string>();
  f.set('ID', base?.ID ?? input.sourceOs.id ?? '_any');
  const versionId = base ? base.VERSION_ID : input.sourceOs.versionId;
  if (versionId) f.set('VERSION_ID', versionId);
  if (base?.[keys.level]) f.set(keys.level, base[keys.level]);
  f.set(keys.scope, kind === 'extension' ? 'portable' : 'system');
  if (kind === 'extension') f.set('PORTABLE_PREFIXES', input.prefixes.join(' '));
  f.set(kind === 'confext' ? 'CONFEXT_ID' : 'SYSEXT_ID', input.pname);
  f.set(kind === 'confext' ? 'CONFEXT_VERSION_ID' : 'SYSEXT_VERSION_ID', input.version);
  if (input.description) f.set('PORTABLE_PRETTY_NAME', input.description);
  for (const [k, v] of Object.entries(input.overrides)) {
    if (v === null) f.delete(k);
    else f.set(k, v);
  }
  return Object.fromEntries(f);
}

/** A mismatch with the base is an error before any work: portabled would refuse the stack. */
export function requireMatchingBase(fields: Record<string, string>, base: OpenedBase, kind: ImageKind): void {
  const scope = kind === 'extension' ? 'portable' : kind === 'confext' ? (fields.CONFEXT_SCOPE ?? 'system').split(/\s+/)[0] : (fields.SYSEXT_SCOPE ?? 'system').split(/\s+/)[0];
  const wrong = checkExtensionRelease(fields, base.osRelease, kind, { scope }).filter((m) => m.rule !== 'extension-scope');
  if (wrong.length) {
    throw new MkportableError('CONFIG_INVALID', `base: ${base.file}: ${wrong.map((w) => w.message).join('; ')}: portabled would refuse the extension`, base.file);
  }
}

/**
 * The extension-release file, named after the image file (systemd 252 compares literally) and marked with
 * user.extension-release.strict=0 so the versioned file name matches on every version (see the README).
 */
export function addExtensionRelease(tree: ImageTree, kind: ImageKind, imageName: string, fields: Record<string, string>, mtime: number): string {
  const p = extensionReleasePath(kind, imageName);
  const data = new TextEncoder().encode(renderOsRelease(fields));
  addEntry(tree, p, {
    type: 'file', mode: 0o644, uid: 0, gid: 0, mtime, reason: 'extension-release', origin: 'generated', size: data.length,
    content: { kind: 'bytes', data }, xattrs: { [EXTENSION_RELEASE_STRICT_XATTR]: new TextEncoder().encode('0') },
  });
  return p;
}

async function sameAsBase(tree: ImageTree, p: string, base: Source): Promise<boolean> {
  const e = tree.entries.get(p)!;
  const st = await base.lstat(p);
  if (!st) return false;
  if (e.type === 'dir') return st.type === 'dir';
  if (e.type === 'symlink') return st.type === 'symlink' && (await base.readlink(p)) === e.target;
  if (e.type !== 'file' || st.type !== 'file' || st.size !== e.size || (st.mode & 0o7777) !== (e.mode & 0o7777)) return false;
  const mine = e.content.kind === 'bytes' ? e.content.data : await e.content.source.readFile(e.content.path);
  return Buffer.from(mine).equals(Buffer.from(await base.readFile(p)));
}

/**
 * Drop what the base already holds, byte for byte; folders stay only where something of the extension is in
 * them. Returns the paths the base provided. What is left must sit in the hierarchies the overlay covers.
 */
export async function pruneAgainstBase(tree: ImageTree, base: Source | undefined, kind: ImageKind, keep: ReadonlySet<string>): Promise<string[]> {
  const provided: string[] = [];
  if (base) {
    for (const p of [...tree.entries.keys()].sort().reverse()) {
      if (p === '/' || keep.has(p) || !tree.entries.has(p)) continue;
      const e = tree.entries.get(p)!;
      if (e.type === 'dir' && [...tree.entries.keys()].some((k) => k.startsWith(p + '/'))) continue;
      if (await sameAsBase(tree, p, base)) {
        if (e.type !== 'dir') provided.push(p);
        removeEntry(tree, p);
      }
    }
  }
  const roots = extensionHierarchies(kind);
  const inRoots = (k: string) => roots.some((r) => k === r || k.startsWith(r + '/'));
  for (const p of [...tree.entries.keys()].sort().reverse()) {
    if (p === '/' || inRoots(p) || !tree.entries.has(p)) continue;
    const e = tree.entries.get(p)!;
    // A folder on the way to the hierarchies stays.
    if (e.type === 'dir' && [...tree.entries.keys()].some((k) => k.startsWith(p + '/'))) continue;
    // The overlay never shows it: the base's version (or the base's runtime linker setup) is what runs.
    const intoRoots = e.type === 'symlink' && roots.some((r) => path.posix.resolve(path.posix.dirname(p), e.target).startsWith(r + '/'));
    if ((base && (await base.lstat(p))) || e.reason === 'runtime linker configuration' || intoRoots) {
      if (e.type !== 'dir' && base && (await base.lstat(p))) provided.push(p);
      removeEntry(tree, p);
      continue;
    }
    const why = base ? 'the base lacks it' : 'no base was given';
    throw new MkportableError('LAYER_OUTSIDE', `${p} (${e.reason}) is outside ${roots.join(' and ')}, which is all a ${kind} can carry, and ${why}: put it in the base`, p);
  }
  return provided.sort();
}
