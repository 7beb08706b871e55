import { parseOsRelease, renderOsRelease } from '../formats/osrelease.js';
import type { Source } from '../sources/source.js';
import { OS_RELEASE_PATHS } from '../systemd/portabled.js';

export interface SourceOs {
  id?: string;
  versionId?: string;
  prettyName?: string;
}

/** The ID of the system the binaries come from, as its own os-release says (/etc first, then /usr/lib). */
export async function readSourceOs(source: Source): Promise<SourceOs> {
  for (const p of OS_RELEASE_PATHS) {
    const st = await source.lstat(p).catch(() => null);
    if (!st) continue;
    try {
      const { fields } = parseOsRelease(Buffer.from(await source.readFile(p)).toString('utf8'));
      return { id: fields.get('ID'), versionId: fields.get('VERSION_ID'), prettyName: fields.get('PRETTY_NAME') };
    } catch {
      continue; // a dangling /etc/os-release symlink: try the next one
    }
  }
  return {};
}

export interface OsReleaseInput {
  pname: string;
  version: string;
  description?: string;
  homepage?: string;
  sourceOs: SourceOs;
  overrides?: Record<string, string | null>;
}

/** The fields portabled and portablectl read, in a stable order; description and homepage only when set. */
export function osReleaseFields(input: OsReleaseInput): [string, string][] {
  const { pname, version, description, homepage, sourceOs } = input;
  const fields = new Map<string, string>();
  fields.set('ID', sourceOs.id ?? 'linux');
  if (sourceOs.versionId) fields.set('VERSION_ID', sourceOs.versionId);
  fields.set('PRETTY_NAME', sourceOs.prettyName ?? `${description || pname} ${version}`);
  fields.set('PORTABLE_ID', pname);
  if (description) fields.set('PORTABLE_PRETTY_NAME', description);
  if (homepage) fields.set('HOME_URL', homepage);
  fields.set('PORTABLE_PREFIXES', pname);
  fields.set('IMAGE_ID', pname);
  fields.set('IMAGE_VERSION', version);
  for (const [k, v] of Object.entries(input.overrides ?? {})) {
    if (v === null) fields.delete(k);
    else fields.set(k, v);
  }
  return [...fields];
}

export function renderImageOsRelease(input: OsReleaseInput): string {
  return renderOsRelease(osReleaseFields(input));
}
