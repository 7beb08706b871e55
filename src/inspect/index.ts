import { promises as fs } from 'node:fs';
import path from 'node:path';
import { directorySource } from '../sources/host.js';
import { MkportableError } from '../errors.js';
import { inspectSource, type InspectReport } from './inspect.js';
import { prefixFromName } from '../systemd/portabled.js';
import { locateImage, type VerityFacts, type VerityInspectOptions } from './verity.js';
import type { SquashfsImage } from '../squashfs/read/index.js';

export { prefixFromName } from '../systemd/portabled.js';
export { inspectSource, type InspectReport, type Problem, type Severity } from './inspect.js';
export { locateImage, type VerityFacts, type LocatedImage, type VerityInspectOptions } from './verity.js';

export interface InspectPathOptions extends VerityInspectOptions {
  prefixes?: string[];
  /** The portable profile the image will be attached with (default: "default"). */
  profile?: string;
}

/** An image's report with what its file is and how it is verified. */
export type ImageReport = InspectReport & { image?: VerityFacts };

/**
 * Inspect a `.raw` image (a squashfs, with or without verity sidecars, or a DDI) or a folder tree, as portablectl
 * would be given it.
 */
export async function inspectPath(target: string, opts: InspectPathOptions = {}): Promise<ImageReport> {
  const st = await fs.stat(target).catch(() => null);
  if (!st) throw new MkportableError('PATH_NOT_FOUND', `${target}: no such file or directory`, target);
  if (st.isDirectory()) {
    return inspectSource(directorySource(path.resolve(target), path.basename(path.resolve(target))), {
      name: path.basename(path.resolve(target)), kind: 'directory', prefixes: opts.prefixes, profile: opts.profile,
    });
  }
  const { openImage } = await import('../squashfs/read/index.js');
  const { squashfsSource } = await import('../sources/squashfs.js');
  const located = await locateImage(target, { architecture: opts.architecture, certificate: opts.certificate });
  let image: SquashfsImage;
  try {
    image = await openImage(target, located.facts.format === 'ddi' ? { partition: located.root } : {});
  } catch (e) {
    return unreadable(e);
  }
  try {
    const report: ImageReport = await inspectSource(squashfsSource(image, path.basename(target)), {
      name: path.basename(target), kind: 'raw', prefixes: opts.prefixes, blockSize: image.blockSize, profile: opts.profile,
    });
    report.problems.unshift(...located.problems);
    report.ok = !report.problems.some((p) => p.severity === 'error');
    report.image = located.facts;
    return report;
  } catch (e) {
    return unreadable(e);
  } finally {
    await image.close();
  }

  /** With a broken hash tree the verdict stands on it, even when the squashfs can no longer be read. */
  function unreadable(e: unknown): ImageReport {
    if (!(e instanceof MkportableError) || !located.problems.some((p) => p.severity === 'error')) throw e;
    const name = path.basename(target);
    return {
      name, prefixes: opts.prefixes?.length ? opts.prefixes : [prefixFromName(name)], osRelease: {}, units: {}, ok: false, image: located.facts,
      problems: [...located.problems, { severity: 'error', rule: 'squashfs-unreadable', message: e.message }],
    };
  }
}

function describeVerity(f: VerityFacts): string[] {
  const lines = [`Format: ${f.format === 'ddi' ? `ddi (root partition for ${f.architecture})` : 'squashfs'}`];
  if (f.verity === 'none') return [...lines, 'Verity: none'];
  const sig = !f.signed ? 'unsigned' : f.signatureValid === undefined ? 'signed (signature not checked: give --certificate)' : f.signatureValid ? 'signed (signature valid)' : 'signed (signature INVALID)';
  const tree = f.treeValid === undefined ? 'not checked' : f.treeValid ? 'matches the data' : 'DOES NOT match the data';
  lines.push(`Verity: ${f.verity === 'sidecar' ? 'sidecar (.verity, .roothash)' : 'embedded (root-verity partition)'}, ${sig}`);
  const from = { sidecar: 'from .roothash', signature: 'from the signature partition', 'partition-uuids': 'only in the partition UUIDs: systemd will not use verity' };
  if (f.rootHash) lines.push(`Root hash: ${f.rootHash}${f.rootHashSource ? ` (${from[f.rootHashSource]})` : ''}`);
  lines.push(`Hash tree: ${tree}${f.verityUuid ? `  (UUID ${f.verityUuid}, salt ${f.veritySalt})` : ''}`);
  return lines;
}

export function formatReport(r: ImageReport & { extensions?: { name: string; release: Record<string, string | undefined> }[] }): string {
  const lines: string[] = [`Image: ${r.name}`];
  if (r.image) lines.push(...describeVerity(r.image));
  for (const e of r.extensions ?? []) {
    const found = Object.entries(e.release).map(([v, p]) => `systemd ${v}: ${p ?? 'none'}`).join(', ');
    lines.push(`Extension: ${e.name} (extension-release: ${found})`);
  }
  lines.push(`Prefix: ${r.prefixes.join(' ')}`);
  lines.push('os-release:');
  for (const [k, v] of Object.entries(r.osRelease)) lines.push(`  ${k}=${v}`);
  for (const [p, units] of Object.entries(r.units)) {
    lines.push(`Unit files attached for '${p}':`);
    lines.push(...(units.length ? units.map((u) => `  ${u}`) : ['  (none)']));
  }
  if (r.problems.length === 0) lines.push('No problems found.');
  else {
    lines.push('Problems:');
    for (const p of r.problems) lines.push(`  ${p.severity.padEnd(7)} ${p.rule.padEnd(32)} ${p.message}`);
  }
  return lines.join('\n') + '\n';
}
