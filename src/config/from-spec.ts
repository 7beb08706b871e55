/**
 * The `from` option: where the root filesystem comes from.
 *
 *   oci:DIR[:TAG]            an OCI image layout folder (umoci, skopeo copy … oci:DIR:TAG, buildah push)
 *   oci-archive:FILE[:TAG]   the same as an uncompressed tar
 *   docker-archive:FILE[:REF] what `docker save` (or skopeo … docker-archive:) writes; REF is NAME:TAG
 *   tar:FILE                 a rootfs tarball, plain or gzip/zstd/xz/bzip2-compressed
 *   dir:DIR                  a folder holding a root filesystem
 *
 * For oci, oci-archive and docker-archive the path ends at its first ':' (as skopeo reads these), so the path
 * itself cannot contain one; tar: and dir: paths can. Relative paths are taken from `baseDir`.
 */
import path from 'node:path';
import { MkportableError } from '../errors.js';

export type FromKind = 'oci' | 'oci-archive' | 'docker-archive' | 'tar' | 'dir';

export interface FromSpec {
  kind: FromKind;
  path: string;
  /** Tag (oci) or NAME:TAG (docker-archive); undefined picks the only image. */
  ref?: string;
}

const KINDS: FromKind[] = ['oci', 'oci-archive', 'docker-archive', 'tar', 'dir'];

export function parseFromSpec(spec: string, baseDir = '.', where = 'from'): FromSpec {
  const colon = spec.indexOf(':');
  const kind = spec.slice(0, colon) as FromKind;
  if (colon <= 0 || !KINDS.includes(kind)) {
    throw new MkportableError('CONFIG_INVALID', `${where}: '${spec}' must start with ${KINDS.map((k) => `${k}:`).join(', ')}`, where);
  }
  let rest = spec.slice(colon + 1);
  let ref: string | undefined;
  if (kind !== 'tar' && kind !== 'dir') {
    const c = rest.indexOf(':');
    if (c >= 0) {
      ref = rest.slice(c + 1) || undefined;
      rest = rest.slice(0, c);
    }
  }
  if (rest === '') throw new MkportableError('CONFIG_INVALID', `${where}: '${spec}' names no ${kind === 'oci' || kind === 'dir' ? 'folder' : 'file'}`, where);
  return { kind, path: path.resolve(baseDir, rest), ref };
}

/** The spec with its path made absolute (what the CLI passes on, so that it does not depend on the config's folder). */
export function absoluteFromSpec(spec: string, baseDir: string): string {
  const s = parseFromSpec(spec, baseDir);
  return `${s.kind}:${s.path}${s.ref !== undefined ? `:${s.ref}` : ''}`;
}
