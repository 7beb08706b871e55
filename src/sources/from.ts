/**
 * Glue between the `from` option and the build: open the source it names, plan the whole rootfs (closure
 * "full"), keep the source's owners and xattrs on what the resolver picked (closure "minimal"), and make a
 * service unit from a container image's config.
 */
import { MkportableError } from '../errors.js';
import type { UnitSpec } from '../config/options.js';
import type { ImageConfig } from '../formats/oci.js';
import { type Entry, type ImageTree, normalizeImagePath, parentOf } from '../plan/tree.js';
import { planFromSource } from '../plan/from-source.js';
import { realpathIn } from '../closure/realpath.js';
import { findInPath } from '../closure/resolve.js';
import { MOUNT_POINT_DIRS, MOUNT_POINT_FILES } from '../layout/skeleton.js';
import { directorySource } from './host.js';
import type { Source } from './source.js';
import { parseFromSpec } from './from-spec.js';
import { openDockerArchive, openOciImage, openRootfsTarball } from './oci.js';
import { sourceXattrs } from './xattrs.js';

export interface OpenedFrom {
  source: Source;
  /** The image config, for container images. */
  config?: ImageConfig;
  /** "oci:/srv/img:1.0 (sha256:…)", for messages and the generated unit. */
  describe: string;
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
      return { source: img.source, config: img.config, describe: img.describe, close: () => img.source.close() };
    }
    case 'docker-archive': {
      const img = await openDockerArchive(spec.path, spec.ref, rootfs);
      return { source: img.source, config: img.config, describe: img.describe, close: () => img.source.close() };
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

// ---------------------------------------------------------------------------------------------------------------
// closure: "full"

/**
 * Remove an entry (and a directory's subtree) from a tree; hard links to a removed file are re-pointed to the
 * first remaining name, which takes over the file itself.
 */
function removeEntry(tree: ImageTree, p: string): void {
  const gone: string[] = [];
  for (const k of tree.entries.keys()) if (k === p || k.startsWith(p === '/' ? '/' : p + '/')) gone.push(k);
  const removed = new Map<string, Entry>();
  for (const k of gone) {
    removed.set(k, tree.entries.get(k)!);
    tree.entries.delete(k);
  }
  for (const [k, e] of removed) {
    if (e.type === 'hardlink') continue;
    const links = [...tree.entries].filter(([, x]) => x.type === 'hardlink' && x.target === k).map(([name]) => name).sort();
    if (links.length === 0) continue;
    const [heir, ...rest] = links;
    tree.entries.set(heir, { ...e, origin: tree.entries.get(heir)!.origin });
    for (const r of rest) tree.entries.set(r, { ...(tree.entries.get(r) as Entry & { type: 'hardlink' }), target: heir });
  }
}

/**
 * The whole rootfs of `source` as the image tree, owners, modes, xattrs and hard links kept, every timestamp
 * `mtime`; what the skeleton must own (os-release, the mount points, the units) is cleared so that it replaces
 * the rootfs's version rather than colliding with it.
 */
export async function planFullTree(source: Source, mtime: number, unitPaths: string[]): Promise<ImageTree> {
  const tree = await planFromSource(source, '/', { owners: 'keep', mtime });
  for (const f of ['/etc/os-release', ...MOUNT_POINT_FILES, ...unitPaths]) if (tree.entries.has(f)) removeEntry(tree, f);
  for (const d of MOUNT_POINT_DIRS) {
    const e = tree.entries.get(d);
    if (e && e.type !== 'dir') removeEntry(tree, d);
  }
  return tree;
}

// ---------------------------------------------------------------------------------------------------------------
// closure: "minimal"

/**
 * The resolver puts what it finds in as root's; for a rootfs source the owners, group and xattrs of the source
 * are kept instead (as "full" keeps them), for every entry taken from the same path of the source.
 */
export async function keepSourceOwners(tree: ImageTree, source: Source): Promise<void> {
  for (const [p, e] of tree.entries) {
    if (e.origin !== `${source.name}:${p}` || e.type === 'hardlink') continue;
    const st = await source.lstat(p);
    if (!st) continue;
    e.uid = st.uid;
    e.gid = st.gid;
    const x = await sourceXattrs(source, p);
    if (x) e.xattrs = x;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// unitFromConfig

const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A word for an Exec= line: bare when it is plain, else double-quoted with systemd's C escapes. */
function execWord(s: string): string {
  const body = s.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9/._+,:=@%-]+$/.test(s) && s !== ';') return body;
  return `"${escapeQuoted(body)}"`;
}

function escapeQuoted(s: string): string {
  return s.replace(/[\\"\x00-\x1f\x7f]/g, (c) => {
    switch (c) {
      case '\\': return '\\\\';
      case '"': return '\\"';
      case '\n': return '\\n';
      case '\t': return '\\t';
      default: return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
    }
  });
}

async function lookupId(source: Source, file: '/etc/passwd' | '/etc/group', name: string): Promise<{ id: number; gid?: number } | undefined> {
  let text: string;
  try {
    text = new TextDecoder().decode(await source.readFile(file));
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && /^\d+$/.test(f[2] ?? '')) return { id: Number(f[2]), gid: /^\d+$/.test(f[3] ?? '') ? Number(f[3]) : undefined };
  }
  return undefined;
}

export interface GeneratedUnit {
  unit: UnitSpec & { name: string; text: string };
  /** Paths the unit needs that no Exec= line names (its WorkingDirectory), for the minimal closure. */
  contents: string[];
}

/**
 * `<pname>.service` running the image's Entrypoint + Cmd as a container runtime would: the program found in the
 * image's PATH (from Env), Env as Environment=, WorkingDir, User (names looked up in the image's /etc/passwd and
 * /etc/group: systemd would look them up on the host), StopSignal as KillSignal=.
 */
export async function unitFromImageConfig(config: ImageConfig, o: { pname: string; source: Source; describe: string }): Promise<GeneratedUnit> {
  const where = `unitFromConfig (${o.describe})`;
  const c = config.config;
  const argv = [...(c.entrypoint ?? []), ...(c.cmd ?? [])];
  if (argv.length === 0 || argv[0] === '') throw new MkportableError('CONFIG_INVALID', `${where}: the image config has no Entrypoint or Cmd`, 'unitFromConfig');
  const env = new Map<string, string>();
  for (const kv of c.env) {
    const eq = kv.indexOf('=');
    if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  const workDir = c.workingDir ? normalizeImagePath(c.workingDir) : undefined;
  let exe = argv[0];
  if (!exe.includes('/')) {
    const found = await findInPath(o.source, exe, (env.get('PATH') ?? CONTAINER_PATH).split(':').filter((d) => d.startsWith('/')));
    if (!found) throw new MkportableError('EXEC_NOT_FOUND', `${where}: '${exe}' is not in the image's PATH=${env.get('PATH') ?? CONTAINER_PATH}`, exe);
    exe = found;
  } else if (!exe.startsWith('/')) {
    exe = normalizeImagePath(`${workDir ?? '/'}/${exe}`);
  }

  const lines = [
    `# Generated by mkportable from the image config of ${o.describe}.`,
    '[Unit]',
    `Description=${o.pname} (${o.describe.replace(/%/g, '%%')})`,
    '',
    '[Service]',
    `ExecStart=${[exe, ...argv.slice(1)].map(execWord).join(' ')}`,
  ];
  for (const [k, v] of env) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) continue;
    lines.push(`Environment="${escapeQuoted(`${k}=${v}`.replace(/%/g, '%%'))}"`);
  }
  if (workDir && workDir !== '/') lines.push(`WorkingDirectory=${escapeQuoted(workDir).replace(/%/g, '%%')}`);
  if (c.user) {
    const [user, group] = c.user.split(':', 2);
    let uid: number | undefined;
    let gid: number | undefined;
    if (/^\d+$/.test(user)) uid = Number(user);
    else if (user) {
      const u = await lookupId(o.source, '/etc/passwd', user);
      if (!u) throw new MkportableError('CONFIG_INVALID', `${where}: User '${user}' is not in the image's /etc/passwd`, 'unitFromConfig');
      uid = u.id;
      gid = u.gid;
    }
    if (group !== undefined && group !== '') {
      if (/^\d+$/.test(group)) gid = Number(group);
      else {
        const g = await lookupId(o.source, '/etc/group', group);
        if (!g) throw new MkportableError('CONFIG_INVALID', `${where}: group '${group}' is not in the image's /etc/group`, 'unitFromConfig');
        gid = g.id;
      }
    }
    if (uid !== undefined && uid !== 0) lines.push(`User=${uid}`);
    if (gid !== undefined && gid !== 0) lines.push(`Group=${gid}`);
  }
  if (c.stopSignal && /^(SIG)?[A-Z0-9+-]+$/.test(c.stopSignal)) {
    lines.push(`KillSignal=${/^\d+$/.test(c.stopSignal) || c.stopSignal.startsWith('SIG') ? c.stopSignal : `SIG${c.stopSignal}`}`);
  }
  lines.push('', '[Install]', 'WantedBy=multi-user.target', '');
  return {
    unit: { name: `${o.pname}.service`, text: lines.join('\n') },
    contents: workDir && workDir !== '/' && (await realpathIn(o.source, workDir)) ? [workDir] : [],
  };
}
