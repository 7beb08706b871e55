/**
 * A base with extensions judged as `portablectl attach --extension EXT… BASE PREFIX` will: each extension's
 * extension-release must be found under systemd 252's and 257's naming rules and match the base; units are taken
 * from all layers (extensions over the base); every program and library must resolve in the merged view.
 */
import path from 'node:path';
import type { Source } from '../sources/source.js';
import { overlaySource } from '../sources/overlay.js';
import { squashfsSource } from '../sources/squashfs.js';
import { parseOsRelease } from '../formats/osrelease.js';
import {
  acceptedReleaseNames, checkExtensionRelease, EXTENSION_RELEASE_STRICT_XATTR, extensionHierarchies, extensionReleaseDir,
  NAMING_SYSTEMD_VERSIONS, OS_RELEASE_PATHS, portablePrefixes, prefixFromName, systemdArchitecture,
} from '../systemd/portabled.js';
import { inspectSource, type InspectReport, type Problem } from './inspect.js';

export interface LayerImage {
  /** File name as given to portablectl. */
  name: string;
  source: Source;
  /** xattrs of a path, when the image holds them. */
  xattrs(p: string): Promise<Record<string, Uint8Array>>;
}

export interface ExtensionVerdict {
  name: string;
  /** The extension-release file portabled would read, per systemd version; undefined: none matches. */
  release: Record<string, string | undefined>;
  fields: Record<string, string>;
}

export interface StackReport extends InspectReport {
  extensions: ExtensionVerdict[];
}

const STRICT_FALSE = new Set(['0', 'false', 'no', 'n', 'off']);

/** Which extension-release file each systemd version takes for an image file name. */
export async function findExtensionRelease(ext: LayerImage, systemd: 252 | 257): Promise<string | undefined> {
  const dir = extensionReleaseDir('extension');
  const names = (await ext.source.readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith('extension-release.'));
  for (const n of acceptedReleaseNames(ext.name, systemd)) if (names.includes(`extension-release.${n}`)) return `${dir}/extension-release.${n}`;
  if (names.length === 1) {
    const p = `${dir}/${names[0]}`;
    const v = (await ext.xattrs(p))[EXTENSION_RELEASE_STRICT_XATTR];
    if (v && STRICT_FALSE.has(Buffer.from(v).toString('utf8').trim().toLowerCase())) return p;
  }
  return undefined;
}

export async function inspectStack(base: LayerImage, exts: LayerImage[], opts: { prefixes?: string[] } = {}): Promise<StackReport> {
  const problems: Problem[] = [];
  const report = (severity: Problem['severity'], rule: string, message: string, p?: string) => problems.push({ severity, rule, message, path: p });
  let baseOs: Record<string, string> = {};
  for (const p of OS_RELEASE_PATHS) {
    const text = await base.source.readFile(p).catch(() => undefined);
    if (text) {
      baseOs = Object.fromEntries(parseOsRelease(Buffer.from(text).toString('utf8')).fields);
      break;
    }
  }
  const allowed = new Set(portablePrefixes(baseOs) ?? []);
  let anyPrefixList = portablePrefixes(baseOs) !== undefined;
  const verdicts: ExtensionVerdict[] = [];
  for (const ext of exts) {
    const release: Record<string, string | undefined> = {};
    let fields: Record<string, string> = {};
    for (const v of NAMING_SYSTEMD_VERSIONS) {
      release[v] = await findExtensionRelease(ext, v);
      if (!release[v]) {
        report('error', 'extension-release-missing', `${ext.name}: systemd ${v} finds no extension-release.{${acceptedReleaseNames(ext.name, v).join(',')}} (and no single file with ${EXTENSION_RELEASE_STRICT_XATTR}=0): "lacks extension-release data, refusing"`);
      }
    }
    const found = release[252] ?? release[257];
    if (found) {
      fields = Object.fromEntries(parseOsRelease(Buffer.from(await ext.source.readFile(found)).toString('utf8')).fields);
      const refusedBy = new Map<string, { rule: string; versions: number[] }>();
      for (const v of NAMING_SYSTEMD_VERSIONS) {
        if (!release[v]) continue;
        for (const m of checkExtensionRelease(fields, baseOs, 'extension', { scope: 'portable', hostArch: systemdArchitecture(), systemd: v })) {
          const r = refusedBy.get(m.message) ?? { rule: m.rule, versions: [] };
          r.versions.push(v);
          refusedBy.set(m.message, r);
        }
      }
      for (const [message, { rule, versions }] of refusedBy) {
        report('error', rule, `${ext.name}: ${message}: systemd ${versions.join(' and ')} refuse${versions.length > 1 ? '' : 's'} it (unless --force)`);
      }
      const extPrefixes = portablePrefixes(fields);
      if (extPrefixes) {
        anyPrefixList = true;
        for (const p of extPrefixes) allowed.add(p);
      }
    }
    for (const name of await ext.source.readdir('/')) {
      const roots = extensionHierarchies('extension');
      if (!roots.includes(`/${name}`)) report('warning', 'extension-outside-hierarchy', `${ext.name}: /${name} is not overlaid at run time (only ${roots.join(' and ')} are)`, `/${name}`);
    }
    verdicts.push({ name: ext.name, release, fields });
  }
  const prefixes = opts.prefixes?.length ? opts.prefixes : [prefixFromName(base.name)];
  // Extensions' files win over the base's, and later extensions over earlier ones, as in the overlay mount.
  const merged = overlaySource([...exts].reverse().map((e) => e.source).concat(base.source), `${exts.map((e) => e.name).join('+')} over ${base.name}`);
  const inner = await inspectSource(merged, { name: base.name, kind: 'raw', prefixes });
  for (const p of inner.problems) if (p.rule !== 'prefix-not-in-portable-prefixes') problems.push(p);
  if (anyPrefixList) {
    for (const p of prefixes) {
      if (!allowed.has(p)) report('error', 'prefix-not-in-portable-prefixes', `match '${p}' is not in the PORTABLE_PREFIXES of the base or its extensions (${[...allowed].join(' ')}): "Selected matches are not compatible"`);
    }
  }
  return { ...inner, problems, extensions: verdicts, ok: !problems.some((p) => p.severity === 'error') };
}

/** Open .raw files as layers; the caller closes them. */
export async function openLayers(files: string[]): Promise<{ layers: LayerImage[]; close(): Promise<void> }> {
  const { openImage } = await import('../squashfs/read/index.js');
  const images: Awaited<ReturnType<typeof openImage>>[] = [];
  try {
    for (const f of files) images.push(await openImage(f));
  } catch (e) {
    await Promise.all(images.map((i) => i.close()));
    throw e;
  }
  const layers = images.map((image, i) => ({
    name: path.basename(files[i]),
    source: squashfsSource(image, path.basename(files[i])),
    xattrs: async (p: string) => (await image.stat(p)).xattrs,
  }));
  return { layers, close: async () => void (await Promise.all(images.map((i) => i.close()))) };
}

export async function inspectStackPaths(base: string, exts: string[], opts: { prefixes?: string[] } = {}): Promise<StackReport> {
  const { layers, close } = await openLayers([base, ...exts]);
  try {
    return await inspectStack(layers[0], layers.slice(1), opts);
  } finally {
    await close();
  }
}
