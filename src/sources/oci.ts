/**
 * Container images as root filesystems: OCI image layouts (a folder, or an `oci-archive` tar of one) and
 * `docker save` archives. Every blob read is checked against its digest (the manifest's for blobs, the config's
 * diff_ids for uncompressed layers, the file name for docker's content-addressed names) and its size; the first
 * mismatch stops everything with DIGEST_MISMATCH before anything is built. Layers are streamed into a RootfsSource.
 *
 * Archives (oci-archive, docker-archive) must be uncompressed tars, as skopeo and `docker save` write them: blobs
 * are then read in place, by offset. A compressed archive is refused (decompress it first).
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path/posix';
import { MkportableError } from '../errors.js';
import { ByteReader, TarReader, type TarEntry } from '../formats/tar.js';
import {
  type Descriptor, type Digest, type ImageConfig, isIndexMediaType, ociError, parseDigest,
  parseDockerManifest, parseImageConfig, parseIndex, parseJson, parseManifest, selectByRef, selectPlatform, shortDigest,
} from '../formats/oci.js';
import { decompressed, detectCompression, tapped } from './decompress.js';
import { RootfsSource, type RootfsOptions } from './rootfs.js';

/** A stretch of a host file. */
interface Region {
  file: string;
  offset: number;
  size: number;
}

function readRegion(r: Region): AsyncIterable<Uint8Array> {
  if (r.size === 0) return (async function* () {})();
  return createReadStream(r.file, { start: r.offset, end: r.offset + r.size - 1, highWaterMark: 1 << 20 });
}

async function readRegionWhole(r: Region, where: string, max = 4 << 20): Promise<Uint8Array> {
  if (r.size > max) throw ociError(where, `${r.size} bytes (more than ${max} for a JSON document)`);
  const fh = await fs.open(r.file, 'r');
  try {
    const buf = new Uint8Array(r.size);
    let done = 0;
    while (done < r.size) {
      const { bytesRead } = await fh.read(buf, done, r.size - done, r.offset + done);
      if (bytesRead === 0) throw ociError(where, 'file ends early');
      done += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

const hasher = (d: Digest): Hash => createHash(d.algorithm);

function checkDigest(where: string, want: Digest, got: Hash, what = 'content'): void {
  const hex = got.digest('hex');
  if (hex !== want.hex) {
    throw new MkportableError('DIGEST_MISMATCH', `${where}: ${what} has digest ${want.algorithm}:${hex.slice(0, 16)}…, not ${shortDigest(want)}… as the manifest says`, where);
  }
}

/** Where blobs and named files are: a layout folder, or members of an uncompressed tar archive. */
interface Store {
  /** "oci:/srv/img", for messages. */
  name: string;
  /** A file of the layout or archive by its relative path (symlinks inside archives followed), or null. */
  member(rel: string): Promise<Region | null>;
}

async function folderStore(dir: string, name: string): Promise<Store> {
  const st = await fs.stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw new MkportableError('PATH_NOT_FOUND', `${name}: '${dir}' is not a folder`, dir);
  return {
    name,
    async member(rel) {
      const file = path.join(dir, path.normalize('/' + rel));
      const s = await fs.stat(file).catch(() => null);
      return s?.isFile() ? { file, offset: 0, size: s.size } : null;
    },
  };
}

/** Index an uncompressed tar's members (headers only are kept: name → where its bytes are). */
async function archiveStore(file: string, name: string): Promise<Store> {
  const st = await fs.stat(file).catch(() => null);
  if (!st?.isFile()) throw new MkportableError('PATH_NOT_FOUND', `${name}: '${file}' is not a file`, file);
  const head = await readRegionWhole({ file, offset: 0, size: Math.min(6, st.size) }, name);
  const compression = detectCompression(head);
  if (compression !== 'none') {
    throw ociError(name, `the archive is ${compression}-compressed; decompress it first (its blobs are read in place)`);
  }
  const members = new Map<string, { entry: TarEntry }>();
  const reader = new TarReader(new ByteReader(readRegion({ file, offset: 0, size: st.size })), { where: name });
  for (;;) {
    const e = await reader.next();
    if (!e) break;
    const key = path.normalize('/' + e.name);
    if (e.type === 'file' || e.type === 'symlink' || e.type === 'hardlink') members.set(key, { entry: e });
  }
  const resolve = (rel: string, depth = 0): Region | null => {
    const m = members.get(path.normalize('/' + rel));
    if (!m || depth > 40) return null;
    const e = m.entry;
    if (e.type === 'file') return { file, offset: e.dataOffset, size: e.size };
    // docker save (old versions) writes a repeated layer as a symlink to the first copy; path.normalize keeps it inside.
    const target = e.type === 'symlink' ? path.join(path.dirname('/' + e.name), e.linkname) : '/' + e.linkname;
    return resolve(target, depth + 1);
  };
  return { name, member: async (rel) => resolve(rel) };
}

async function memberJson(store: Store, rel: string): Promise<{ value: unknown; bytes: Uint8Array }> {
  const where = `${store.name}: ${rel}`;
  const r = await store.member(rel);
  if (!r) throw ociError(store.name, `has no '${rel}'`);
  const bytes = await readRegionWhole(r, where);
  return { value: parseJson(where, bytes), bytes };
}

const blobPath = (d: Digest) => `blobs/${d.algorithm}/${d.hex}`;

/** A blob by descriptor, its size checked (the digest is checked as it is read). */
async function blobRegion(store: Store, d: Descriptor, where: string): Promise<Region> {
  const r = await store.member(blobPath(d.digest));
  if (!r) throw ociError(store.name, `blob ${shortDigest(d.digest)}… (${where}) is missing`);
  if (r.size !== d.size) {
    throw new MkportableError('DIGEST_MISMATCH', `${store.name}: blob ${shortDigest(d.digest)}… (${where}) is ${r.size} bytes, the manifest says ${d.size}`, store.name);
  }
  return r;
}

async function blobJson(store: Store, d: Descriptor, what: string): Promise<unknown> {
  const where = `${store.name}: ${what} ${shortDigest(d.digest)}…`;
  const r = await blobRegion(store, d, what);
  const bytes = await readRegionWhole(r, where);
  checkDigest(where, d.digest, hasher(d.digest).update(bytes), what);
  return parseJson(where, bytes);
}

export interface ContainerImage {
  source: RootfsSource;
  config: ImageConfig;
  /** "oci:/srv/img:1.0 (sha256:…)", for messages. */
  describe: string;
  /**
   * What the image is, independent of where it sits on the build host: the reference it was picked by and its
   * image ID (the config's digest), e.g. "1.0, image ID sha256:0123456789ab". Goes into generated units.
   */
  label: string;
}

/** A ContainerImage's label: `ref` (when one picked the image) and the config digest. */
function imageLabel(ref: string | undefined, configDigest: Digest): string {
  return `${ref ? `${ref}, ` : ''}image ID ${configDigest.algorithm}:${configDigest.hex.slice(0, 12)}`;
}

interface LayerPlan {
  region: Region;
  where: string;
  /** Digest of the bytes as stored (OCI blobs, content-addressed docker names). */
  blob?: Digest;
  /** Digest of the uncompressed tar (the config's diff_ids). */
  diffId?: Digest;
}

async function applyLayers(source: RootfsSource, layers: LayerPlan[]): Promise<void> {
  for (const l of layers) {
    const blobHash = l.blob ? hasher(l.blob) : undefined;
    const raw = blobHash ? tapped(readRegion(l.region), (c) => blobHash.update(c)) : readRegion(l.region);
    const { compression, stream } = await decompressed(raw, l.where);
    const diffHash = l.diffId ? hasher(l.diffId) : undefined;
    const tar = diffHash ? tapped(stream, (c) => diffHash.update(c)) : stream;
    const bytes = new ByteReader(tar);
    try {
      await source.applyLayer({
        reader: new TarReader(bytes, { where: l.where }),
        where: l.where,
        whiteouts: true,
        direct: compression === 'none' ? { file: source.addFile(l.region.file), base: l.region.offset } : undefined,
      });
    } finally {
      await bytes.close();
    }
    if (l.blob) checkDigest(l.where, l.blob, blobHash!, 'the layer');
    if (l.diffId) checkDigest(l.where, l.diffId, diffHash!, 'the uncompressed layer (diff_id)');
  }
}

/** Open an OCI image layout (folder or oci-archive) and assemble the rootfs of the image `ref` names. */
export async function openOciImage(kind: 'oci' | 'oci-archive', file: string, ref: string | undefined, opts: RootfsOptions = {}): Promise<ContainerImage> {
  const name = `${kind}:${file}`;
  const store = kind === 'oci' ? await folderStore(file, name) : await archiveStore(file, name);
  const layout = await memberJson(store, 'oci-layout').catch((e) => {
    if (e instanceof MkportableError && /has no 'oci-layout'/.test(e.message)) throw ociError(name, "is not an OCI image layout (no 'oci-layout' file)");
    throw e;
  });
  const version = (layout.value as { imageLayoutVersion?: unknown })?.imageLayoutVersion;
  if (typeof version !== 'string' || !version.startsWith('1.')) throw ociError(name, `unsupported imageLayoutVersion ${JSON.stringify(version)}`);

  let desc = selectByRef(`${name}: index.json`, parseIndex(`${name}: index.json`, (await memberJson(store, 'index.json')).value), ref);
  for (let depth = 0; isIndexMediaType(desc.mediaType); depth++) {
    if (depth >= 4) throw ociError(name, 'image indexes nested more than 4 deep');
    desc = selectPlatform(`${name}: index ${shortDigest(desc.digest)}…`, parseIndex(name, await blobJson(store, desc, 'image index')));
  }
  const manifest = parseManifest(`${name}: manifest ${shortDigest(desc.digest)}…`, await blobJson(store, desc, 'manifest'));
  const config = parseImageConfig(`${name}: config`, await blobJson(store, manifest.config, 'config'));
  if (config.diffIds.length !== manifest.layers.length) {
    throw ociError(name, `the config lists ${config.diffIds.length} diff_ids for ${manifest.layers.length} layers`);
  }
  const describe = `${name}${ref ? `:${ref}` : ''} (${shortDigest(desc.digest)}…)`;
  const source = new RootfsSource(`${kind}:${path.basename(file)}`, opts);
  try {
    const layers: LayerPlan[] = [];
    for (const [i, l] of manifest.layers.entries()) {
      const where = `${name}: layer ${i + 1}/${manifest.layers.length} (${shortDigest(l.digest)}…)`;
      layers.push({ region: await blobRegion(store, l, `layer ${i + 1}`), where, blob: l.digest, diffId: config.diffIds[i] });
    }
    await applyLayers(source, layers);
    return { source, config, describe, label: imageLabel(ref, manifest.config.digest) };
  } catch (e) {
    await source.close();
    throw e;
  }
}

/** `docker save` output (or skopeo's docker-archive): manifest.json, a config, layer tars. */
export async function openDockerArchive(file: string, ref: string | undefined, opts: RootfsOptions = {}): Promise<ContainerImage> {
  const name = `docker-archive:${file}`;
  const store = await archiveStore(file, name);
  const images = parseDockerManifest(`${name}: manifest.json`, (await memberJson(store, 'manifest.json')).value);
  let image = images[0];
  if (ref !== undefined) {
    const hit = images.find((i) => i.repoTags.includes(ref) || i.repoTags.some((t) => t.endsWith(`/${ref}`)));
    if (!hit) throw ociError(name, `no image tagged '${ref}' (tags: ${images.flatMap((i) => i.repoTags).join(', ') || 'none'})`);
    image = hit;
  } else if (images.length > 1) {
    throw ociError(name, `holds ${images.length} images; name one with :NAME:TAG (tags: ${images.flatMap((i) => i.repoTags).join(', ') || 'none'})`);
  }
  // Content-addressed names carry their digest: "<hex>.json", "blobs/sha256/<hex>".
  const namedDigest = (rel: string): Digest | undefined => {
    const m = /(?:^|\/)(?:blobs\/sha256\/)?([0-9a-f]{64})(?:\.json)?$/.exec(rel);
    return m && (rel.startsWith('blobs/') || rel.endsWith('.json')) ? parseDigest(name, `sha256:${m[1]}`) : undefined;
  };
  const configRegion = await store.member(image.config);
  if (!configRegion) throw ociError(name, `config '${image.config}' is missing`);
  const configBytes = await readRegionWhole(configRegion, `${name}: ${image.config}`);
  const configDigest = namedDigest(image.config);
  if (configDigest) checkDigest(`${name}: ${image.config}`, configDigest, hasher(configDigest).update(configBytes), 'the config');
  const config = parseImageConfig(`${name}: ${image.config}`, parseJson(`${name}: ${image.config}`, configBytes));
  if (config.diffIds.length !== image.layers.length) {
    throw ociError(name, `the config lists ${config.diffIds.length} diff_ids for ${image.layers.length} layers`);
  }
  const describe = `${name}${ref ? `:${ref}` : image.repoTags[0] ? ` (${image.repoTags[0]})` : ''}`;
  const label = imageLabel(ref ?? image.repoTags[0], configDigest ?? { algorithm: 'sha256', hex: createHash('sha256').update(configBytes).digest('hex') });
  const source = new RootfsSource(`docker-archive:${path.basename(file)}`, opts);
  try {
    const layers: LayerPlan[] = [];
    for (const [i, rel] of image.layers.entries()) {
      const region = await store.member(rel);
      if (!region) throw ociError(name, `layer '${rel}' is missing`);
      const blob = rel.startsWith('blobs/') ? namedDigest(rel) : undefined;
      layers.push({ region, where: `${name}: layer ${i + 1}/${image.layers.length} (${rel})`, blob, diffId: config.diffIds[i] });
    }
    await applyLayers(source, layers);
    return { source, config, describe, label };
  } catch (e) {
    await source.close();
    throw e;
  }
}

/** A rootfs tarball (plain, gzip, zstd, xz or bzip2): one layer, no whiteouts. */
export async function openRootfsTarball(file: string, opts: RootfsOptions = {}): Promise<RootfsSource> {
  const name = `tar:${file}`;
  const st = await fs.stat(file).catch(() => null);
  if (!st?.isFile()) throw new MkportableError('PATH_NOT_FOUND', `${name}: '${file}' is not a file`, file);
  const source = new RootfsSource(`tar:${path.basename(file)}`, opts);
  try {
    const region = { file, offset: 0, size: st.size };
    const { compression, stream } = await decompressed(readRegion(region), name);
    const bytes = new ByteReader(stream);
    try {
      await source.applyLayer({
        reader: new TarReader(bytes, { where: name }),
        where: name,
        whiteouts: false,
        direct: compression === 'none' ? { file: source.addFile(file), base: 0 } : undefined,
      });
    } finally {
      await bytes.close();
    }
    return source;
  } catch (e) {
    await source.close();
    throw e;
  }
}

