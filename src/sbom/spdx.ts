/**
 * An SPDX 2.3 JSON document for a built image: the image as the described package, every regular file in it with
 * its SHA-1 and SHA-256 (read back from the image itself), and the distribution packages the files come from
 * (name, version, architecture, as a purl too), each CONTAINS-related to its files. The same image gives the
 * same document: the creation time is the build's timestamp, the namespace is derived from the image's hash.
 */
import { createHash } from 'node:crypto';
import { openImage } from '../squashfs/read/index.js';
import type { BuildPackage, BuildResult } from '../build.js';

export interface SpdxFile {
  fileName: string;
  SPDXID: string;
  checksums: { algorithm: 'SHA1' | 'SHA256'; checksumValue: string }[];
}

export interface SpdxDocument {
  spdxVersion: 'SPDX-2.3';
  dataLicense: 'CC0-1.0';
  SPDXID: 'SPDXRef-DOCUMENT';
  name: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  documentDescribes: string[];
  packages: Record<string, unknown>[];
  files: SpdxFile[];
  relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
}

export interface SbomInput {
  /** The finished image (possibly still under its temporary name). */
  imageFile: string;
  result: Pick<BuildResult, 'name' | 'sha256' | 'files' | 'packages' | 'osRelease'>;
  /** Build time, seconds since the epoch (SOURCE_DATE_EPOCH or the configured mtime). */
  created: number;
  toolVersion: string;
}

/** SPDX ids allow letters, digits, '.' and '-' only. */
const idPart = (s: string) => s.replace(/[^A-Za-z0-9.-]/g, '-');

/** purl type and namespace of a package from this distribution (os-release ID of the source). */
function purl(p: BuildPackage, distro: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%3A/g, ':');
  const type = p.manager === 'apk' ? 'apk' : 'deb';
  const ns = distro || (p.manager === 'apk' ? 'alpine' : 'debian');
  const q = [p.architecture ? `arch=${enc(p.architecture)}` : '', p.sourcePackage ? `upstream=${enc(p.sourcePackage)}` : ''].filter(Boolean).join('&');
  return `pkg:${type}/${enc(ns)}/${enc(p.name)}@${enc(p.version)}${q ? `?${q}` : ''}`;
}

async function hashImageFiles(file: string): Promise<Map<string, { sha1: string; sha256: string }>> {
  const image = await openImage(file);
  const out = new Map<string, { sha1: string; sha256: string }>();
  try {
    for await (const e of image.walk('/')) {
      if (e.stat.type !== 'file') continue;
      const sha1 = createHash('sha1');
      const sha256 = createHash('sha256');
      for await (const chunk of image.createReadStream(e.path)) {
        sha1.update(chunk as Buffer);
        sha256.update(chunk as Buffer);
      }
      out.set(e.path, { sha1: sha1.digest('hex'), sha256: sha256.digest('hex') });
    }
  } finally {
    await image.close();
  }
  return out;
}

export async function spdxForImage(input: SbomInput): Promise<SpdxDocument> {
  const { result } = input;
  const hashes = await hashImageFiles(input.imageFile);
  const distro = result.osRelease.ID ?? '';
  const imageId = 'SPDXRef-Image';
  const pkgIds = new Map(result.packages.map((p, i) => [p.id, `SPDXRef-Package-${i + 1}-${idPart(p.id)}`]));
  const relationships: SpdxDocument['relationships'] = [{ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: imageId }];
  const files: SpdxFile[] = [];
  const paths = [...hashes.keys()].sort();
  const packageOf = new Map(result.files.map((f) => [f.path, f.package]));
  paths.forEach((p, i) => {
    const h = hashes.get(p)!;
    const SPDXID = `SPDXRef-File-${i + 1}`;
    files.push({ fileName: `.${p}`, SPDXID, checksums: [{ algorithm: 'SHA1', checksumValue: h.sha1 }, { algorithm: 'SHA256', checksumValue: h.sha256 }] });
    relationships.push({ spdxElementId: imageId, relationshipType: 'CONTAINS', relatedSpdxElement: SPDXID });
    const owner = packageOf.get(p);
    if (owner && pkgIds.has(owner)) relationships.push({ spdxElementId: pkgIds.get(owner)!, relationshipType: 'CONTAINS', relatedSpdxElement: SPDXID });
  });
  // The package verification code (SPDX 2.3 §7.9): SHA-1 over the sorted SHA-1s of the package's files.
  const verification = createHash('sha1').update([...hashes.values()].map((h) => h.sha1).sort().join('')).digest('hex');
  const [pname, ...rest] = result.name.split('_');
  const packages: Record<string, unknown>[] = [
    {
      name: pname,
      SPDXID: imageId,
      versionInfo: rest.join('_'),
      packageFileName: `${result.name}.raw`,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: true,
      packageVerificationCode: { packageVerificationCodeValue: verification },
      checksums: [{ algorithm: 'SHA256', checksumValue: result.sha256 }],
      primaryPackagePurpose: 'CONTAINER',
      description: 'systemd portable service image',
    },
    ...result.packages.map((p) => ({
      name: p.name,
      SPDXID: pkgIds.get(p.id)!,
      versionInfo: p.version,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      ...(p.sourcePackage ? { sourceInfo: `built from the ${p.manager === 'apk' ? 'apk origin' : 'Debian source'} package ${p.sourcePackage}` } : {}),
      comment: `${p.manager} package ${p.id}, architecture ${p.architecture || 'unknown'}; ${p.files} of the image's entries come from it`,
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: purl(p, distro) }],
    })),
  ];
  for (const id of pkgIds.values()) relationships.push({ spdxElementId: imageId, relationshipType: 'CONTAINS', relatedSpdxElement: id });
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${result.name}.raw`,
    documentNamespace: `https://spdx.org/spdxdocs/mkportable/${idPart(result.name)}-${result.sha256}`,
    creationInfo: { created: new Date(input.created * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'), creators: [`Tool: mkportable-${input.toolVersion}`] },
    documentDescribes: [imageId],
    packages,
    files,
    relationships,
  };
}
