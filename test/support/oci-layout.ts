/**
 * OCI image layouts written for tests with the tests' own tar writer: layers compressed as asked, a config with the
 * given run config, an index naming the manifest by tag; `tamper` changes blobs after their digests are taken.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import zlib from 'node:zlib';
import { hostPlatform, MEDIA_TYPES, REF_NAME } from '../../src/formats/oci.js';
import { encodeTar, type TarWriteEntry } from './tar.js';

const zstd = createRequire(import.meta.url)('zstd-napi') as { compress(d: Uint8Array): Buffer };
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export type Compress = 'none' | 'gzip' | 'zstd' | 'xz';
export function compress(tar: Uint8Array, how: Compress): Uint8Array {
  if (how === 'gzip') return zlib.gzipSync(tar);
  if (how === 'zstd') return zstd.compress(tar);
  if (how === 'xz') {
    const r = spawnSync('xz', ['-c'], { input: tar, maxBuffer: 1 << 30 });
    assert.equal(r.status, 0);
    return r.stdout;
  }
  return tar;
}

export interface LayoutOptions {
  tag?: string;
  runConfig?: Record<string, unknown>;
  /** Change a blob after its digest is taken. */
  tamper?: (blobs: Map<string, Uint8Array>, digests: { layers: string[]; config: string; manifest: string }) => void;
  diffIds?: (real: string[]) => string[];
}

export function writeLayout(dir: string, layers: { entries: TarWriteEntry[]; compress?: Compress }[], o: LayoutOptions = {}): void {
  const blobs = new Map<string, Uint8Array>();
  const put = (b: Uint8Array) => {
    const d = sha256(b);
    blobs.set(d, b);
    return d;
  };
  const descs = layers.map((l) => {
    const tar = encodeTar(l.entries);
    const blob = compress(tar, l.compress ?? 'gzip');
    const mediaType = l.compress === 'none' ? 'application/vnd.oci.image.layer.v1.tar' : l.compress === 'zstd' ? 'application/vnd.oci.image.layer.v1.tar+zstd' : 'application/vnd.oci.image.layer.v1.tar+gzip';
    return { mediaType, digest: `sha256:${put(blob)}`, size: blob.length, diffId: `sha256:${sha256(tar)}` };
  });
  const diffIds = descs.map((d) => d.diffId);
  const config = Buffer.from(JSON.stringify({
    architecture: hostPlatform().architecture, os: 'linux', config: o.runConfig ?? {},
    rootfs: { type: 'layers', diff_ids: o.diffIds ? o.diffIds(diffIds) : diffIds },
  }));
  const configDigest = put(config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configDigest}`, size: config.length },
    layers: descs.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
  }));
  const manifestDigest = put(manifest);
  o.tamper?.(blobs, { layers: descs.map((d) => d.digest.slice(7)), config: configDigest, manifest: manifestDigest });
  mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const [d, b] of blobs) writeFileSync(path.join(dir, 'blobs', 'sha256', d), b);
  writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: `sha256:${manifestDigest}`, size: manifest.length, annotations: o.tag ? { [REF_NAME]: o.tag } : {} }],
  }));
}
