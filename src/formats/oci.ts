/**
 * The JSON documents of OCI image layouts and `docker save` archives, checked field by field: digests (only
 * `sha256:<64 hex>` and `sha512:<128 hex>`, so a digest can never be a path), descriptors, indexes, manifests, the
 * image config, and docker's manifest.json. Pure functions; the files are read by src/sources/oci.ts.
 */
import { MkportableError } from '../errors.js';

export type DigestAlgorithm = 'sha256' | 'sha512';

export interface Digest {
  algorithm: DigestAlgorithm;
  hex: string;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export interface ImageManifest {
  config: Descriptor;
  layers: Descriptor[];
}

/** What a container runtime takes from the image config (all optional in the spec). */
export interface ImageRunConfig {
  entrypoint?: string[];
  cmd?: string[];
  env: string[];
  workingDir?: string;
  user?: string;
  stopSignal?: string;
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  config: ImageRunConfig;
  diffIds: Digest[];
}

export interface DockerArchiveImage {
  config: string;
  repoTags: string[];
  layers: string[];
}

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

/** The annotation `umoci tag`, skopeo and buildah put on index entries. */
export const REF_NAME = 'org.opencontainers.image.ref.name';

const HEX = { sha256: 64, sha512: 128 } as const;

export function ociError(where: string, what: string): MkportableError {
  return new MkportableError('ARCHIVE_INVALID', `${where}: ${what}`, where);
}

export function parseDigest(where: string, value: unknown): Digest {
  if (typeof value !== 'string') throw ociError(where, `digest must be a string, got ${JSON.stringify(value)}`);
  const m = /^(sha256|sha512):([0-9a-f]+)$/.exec(value);
  if (!m || m[2].length !== HEX[m[1] as DigestAlgorithm]) {
    throw ociError(where, `digest '${value.slice(0, 100)}' is not sha256:<64 hex digits> or sha512:<128 hex digits>`);
  }
  return { algorithm: m[1] as DigestAlgorithm, hex: m[2] };
}

export const digestString = (d: Digest) => `${d.algorithm}:${d.hex}`;
export const shortDigest = (d: Digest) => `${d.algorithm}:${d.hex.slice(0, 12)}`;

/** JSON from bytes, with a size cap so that a hostile file cannot make us parse gigabytes. */
export function parseJson(where: string, bytes: Uint8Array, maxSize = 4 << 20): unknown {
  if (bytes.length > maxSize) throw ociError(where, `${bytes.length} bytes of JSON (more than ${maxSize})`);
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw ociError(where, `not valid JSON (${(e as Error).message})`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function stringList(where: string, key: string, v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw ociError(where, `'${key}' must be a list of strings`);
  return v as string[];
}

function optString(where: string, key: string, v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw ociError(where, `'${key}' must be a string`);
  return v;
}

export function parseDescriptor(where: string, v: unknown): Descriptor {
  if (!isObject(v)) throw ociError(where, 'a descriptor must be an object');
  const mediaType = optString(where, 'mediaType', v.mediaType) ?? '';
  const digest = parseDigest(where, v.digest);
  const size = v.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw ociError(where, `descriptor size ${JSON.stringify(size)} is not a byte count`);
  const annotations: Record<string, string> = {};
  if (isObject(v.annotations)) for (const [k, a] of Object.entries(v.annotations)) if (typeof a === 'string') annotations[k] = a;
  const d: Descriptor = { mediaType, digest, size, annotations };
  if (isObject(v.platform)) {
    const p = v.platform;
    d.platform = { os: optString(where, 'os', p.os), architecture: optString(where, 'architecture', p.architecture), variant: optString(where, 'variant', p.variant) };
  }
  return d;
}

export function isIndexMediaType(t: string): boolean {
  return t === MEDIA_TYPES.ociIndex || t === MEDIA_TYPES.dockerList;
}

/** index.json, or a nested image index. */
export function parseIndex(where: string, v: unknown): Descriptor[] {
  if (!isObject(v) || !Array.isArray(v.manifests)) throw ociError(where, "an image index needs a 'manifests' list");
  if (v.manifests.length > 10_000) throw ociError(where, 'more than 10000 manifests');
  return v.manifests.map((m, i) => parseDescriptor(`${where} manifests[${i}]`, m));
}

/** A layer media type we can apply: tar, possibly compressed (the compression itself is detected from the bytes). */
export function isLayerMediaType(t: string): boolean {
  return /^application\/vnd\.oci\.image\.layer\.(nondistributable\.)?v1\.tar(\+(gzip|zstd))?$/.test(t)
    || /^application\/vnd\.docker\.image\.rootfs\.(foreign\.)?diff\.tar(\.gzip)?$/.test(t);
}

export function parseManifest(where: string, v: unknown): ImageManifest {
  if (!isObject(v)) throw ociError(where, 'an image manifest must be an object');
  if (v.mediaType !== undefined && v.mediaType !== MEDIA_TYPES.ociManifest && v.mediaType !== MEDIA_TYPES.dockerManifest) {
    throw ociError(where, `media type '${String(v.mediaType)}' is not an image manifest`);
  }
  if (!Array.isArray(v.layers)) throw ociError(where, "an image manifest needs a 'layers' list");
  if (v.layers.length > 1000) throw ociError(where, 'more than 1000 layers');
  const config = parseDescriptor(`${where} config`, v.config);
  const layers = v.layers.map((l, i) => parseDescriptor(`${where} layers[${i}]`, l));
  for (const [i, l] of layers.entries()) {
    if (!isLayerMediaType(l.mediaType)) throw ociError(where, `layers[${i}] has media type '${l.mediaType}', not a tar layer`);
  }
  return { config, layers };
}

export function parseImageConfig(where: string, v: unknown): ImageConfig {
  if (!isObject(v)) throw ociError(where, 'the image config must be an object');
  const c = isObject(v.config) ? v.config : {};
  const config: ImageRunConfig = {
    entrypoint: stringList(where, 'config.Entrypoint', c.Entrypoint),
    cmd: stringList(where, 'config.Cmd', c.Cmd),
    env: stringList(where, 'config.Env', c.Env) ?? [],
    workingDir: optString(where, 'config.WorkingDir', c.WorkingDir),
    user: optString(where, 'config.User', c.User),
    stopSignal: optString(where, 'config.StopSignal', c.StopSignal),
  };
  const rootfs = isObject(v.rootfs) ? v.rootfs : {};
  const diffIds = Array.isArray(rootfs.diff_ids) ? rootfs.diff_ids.map((d, i) => parseDigest(`${where} rootfs.diff_ids[${i}]`, d)) : [];
  return { architecture: optString(where, 'architecture', v.architecture), os: optString(where, 'os', v.os), config, diffIds };
}

/** `docker save`'s manifest.json: one object per image. */
export function parseDockerManifest(where: string, v: unknown): DockerArchiveImage[] {
  if (!Array.isArray(v) || v.length === 0) throw ociError(where, 'manifest.json must be a non-empty list');
  return v.map((m, i) => {
    const w = `${where}[${i}]`;
    if (!isObject(m) || typeof m.Config !== 'string') throw ociError(w, "each image needs a 'Config' path");
    const layers = stringList(w, 'Layers', m.Layers);
    if (!layers) throw ociError(w, "each image needs a 'Layers' list");
    return { config: m.Config, repoTags: stringList(w, 'RepoTags', m.RepoTags) ?? [], layers };
  });
}

/** GOARCH for node's process.arch: what image indexes call the platform. */
export function hostPlatform(): { os: string; architecture: string } {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

/** The entry of a layout's index.json that `ref` names, or the only one there is. */
export function selectByRef(where: string, manifests: Descriptor[], ref: string | undefined): Descriptor {
  const names = manifests.map((m) => m.annotations[REF_NAME]).filter((n): n is string => n !== undefined);
  if (ref !== undefined) {
    const hits = manifests.filter((m) => m.annotations[REF_NAME] === ref);
    if (hits.length === 0) throw ociError(where, `no image tagged '${ref}' (tags: ${names.length ? names.join(', ') : 'none'})`);
    if (hits.length > 1 && new Set(hits.map((h) => digestString(h.digest))).size > 1) throw ociError(where, `several different images are tagged '${ref}'`);
    return hits[0];
  }
  if (manifests.length === 0) throw ociError(where, 'the index lists no image');
  if (manifests.length > 1 && new Set(manifests.map((m) => digestString(m.digest))).size > 1) {
    throw ociError(where, `holds ${manifests.length} images; name one with :TAG (tags: ${names.length ? names.join(', ') : 'none'})`);
  }
  return manifests[0];
}

/** In a multi-platform index, the image for this machine (linux and its architecture). */
export function selectPlatform(where: string, manifests: Descriptor[]): Descriptor {
  const want = hostPlatform();
  const fits = manifests.filter((m) => !isIndexMediaType(m.mediaType) && (m.platform?.os ?? 'linux') === want.os
    && (m.platform?.architecture ?? want.architecture) === want.architecture);
  if (fits.length === 0) {
    const have = manifests.map((m) => `${m.platform?.os ?? '?'}/${m.platform?.architecture ?? '?'}`).join(', ');
    throw ociError(where, `no image for ${want.os}/${want.architecture} in the index (has ${have || 'nothing'})`);
  }
  return fits[0];
}
