import { promises as fs } from 'node:fs';
import path from 'node:path';
import { directorySource } from '../sources/host.js';
import { MkportableError } from '../errors.js';
import { inspectSource, type InspectReport } from './inspect.js';

export { prefixFromName } from '../systemd/portabled.js';
export { inspectSource, type InspectReport, type Problem, type Severity } from './inspect.js';

/** Inspect a `.raw` squashfs image or a folder tree, as portablectl would be given it. */
export async function inspectPath(target: string, opts: { prefixes?: string[]; profile?: string } = {}): Promise<InspectReport> {
  const st = await fs.stat(target).catch(() => null);
  if (!st) throw new MkportableError('PATH_NOT_FOUND', `${target}: no such file or directory`, target);
  if (st.isDirectory()) {
    return inspectSource(directorySource(path.resolve(target), path.basename(path.resolve(target))), {
      name: path.basename(path.resolve(target)), kind: 'directory', prefixes: opts.prefixes, profile: opts.profile,
    });
  }
  const { openImage } = await import('../squashfs/read/index.js');
  const { squashfsSource } = await import('../sources/squashfs.js');
  const image = await openImage(target);
  try {
    return await inspectSource(squashfsSource(image, path.basename(target)), {
      name: path.basename(target), kind: 'raw', prefixes: opts.prefixes, blockSize: image.blockSize, profile: opts.profile,
    });
  } finally {
    await image.close();
  }
}

export function formatReport(r: InspectReport & { extensions?: { name: string; release: Record<string, string | undefined> }[] }): string {
  const lines: string[] = [`Image: ${r.name}`];
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
