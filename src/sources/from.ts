/**
 * Opening what the `from` option names: a folder, a rootfs tarball or a container image, each seen as a Source
 * (the other stages plan, resolve and generate from it).
 */
import { MkportableError } from '../errors.js';
import type { ImageConfig } from '../formats/oci.js';
import { normalizeImagePath, parentOf } from '../plan/tree.js';
import { realpathIn } from './realpath.js';
import { directorySource } from './host.js';
import type { Source } from './source.js';
import { parseFromSpec } from '../config/from-spec.js';
import { openDockerArchive, openOciImage, openRootfsTarball } from './oci.js';

export interface OpenedFrom {
  source: Source;
  /** The image config, for container images. */
  config?: ImageConfig;
  /** "oci:/srv/img:1.0 (sha256:…)", for messages. */
  describe: string;
  /** For container images: the reference and image ID, without the build host's path (see ContainerImage). */
  label?: string;
  close(): Promise<void>;
}

export interface OpenFromOptions {
  from: string;
  baseDir?: string;
  allowDevices?: boolean;
}

/** Open what `from` names; for archives and images this reads (and verifies) every layer once. */
export async function openFrom(o: OpenFromOptions): Promise<OpenedFrom> {
  const spec = parseFromSpec(o.from, o.baseDir);
  const rootfs = { allowDevices: o.allowDevices ?? true };
  switch (spec.kind) {
    case 'dir': {
      const source = rootedDirectorySource(spec.path);
      const st = await source.lstat('/').catch(() => null);
      if (st?.type !== 'dir') throw new MkportableError('PATH_NOT_FOUND', `from: '${spec.path}' is not a folder`, spec.path);
      return { source, describe: `dir:${spec.path}`, close: async () => {} };
    }
    case 'tar': {
      const source = await openRootfsTarball(spec.path, rootfs);
      return { source, describe: `tar:${spec.path}`, close: () => source.close() };
    }
    case 'oci':
    case 'oci-archive': {
      const img = await openOciImage(spec.kind, spec.path, spec.ref, rootfs);
      return { source: img.source, config: img.config, describe: img.describe, label: img.label, close: () => img.source.close() };
    }
    case 'docker-archive': {
      const img = await openDockerArchive(spec.path, spec.ref, rootfs);
      return { source: img.source, config: img.config, describe: img.describe, label: img.label, close: () => img.source.close() };
    }
  }
}

/**
 * A folder seen as a root filesystem with chroot semantics: symlinks met on the way, absolute ones included,
 * resolve inside the folder (directorySource alone would let the host's kernel follow `/usr/lib/os-release`
 * to the build host's file). Names are bytes and extended attributes are read, as directorySource does.
 */
export function rootedDirectorySource(root: string): Source {
  const inner = directorySource(root, `dir:${root}`);
  const enoent = (p: string) => Object.assign(new Error(`ENOENT: dir:${root}:${p}: no such file or directory`), { code: 'ENOENT' });
  /** The path with every symlink but the last component's resolved. */
  const withRealParent = async (p: string): Promise<string | undefined> => {
    const n = normalizeImagePath(p);
    if (n === '/') return '/';
    const parent = await realpathIn(inner, parentOf(n));
    if (parent === undefined) return undefined;
    return `${parent === '/' ? '' : parent}/${n.slice(n.lastIndexOf('/') + 1)}`;
  };
  const real = async (p: string): Promise<string> => {
    const r = await realpathIn(inner, p);
    if (r === undefined) throw enoent(p);
    return r;
  };
  return {
    name: inner.name,
    async lstat(p) {
      const r = await withRealParent(p);
      return r === undefined ? null : inner.lstat(r);
    },
    async readlink(p) {
      const r = await withRealParent(p);
      if (r === undefined) throw enoent(p);
      return inner.readlink(r);
    },
    async xattrs(p) {
      const r = await withRealParent(p);
      if (r === undefined) throw enoent(p);
      return inner.xattrs!(r);
    },
    readdir: async (p) => inner.readdir(await real(p)),
    read: async (p, offset, length) => inner.read(await real(p), offset, length),
    readFile: async (p) => inner.readFile(await real(p)),
    dataRanges: async (p, size) => inner.dataRanges!(await real(p), size),
    // Paths given by the planner and the resolver have no symlinks in them; anything else is read through read().
    hostPath: () => undefined,
  };
}
