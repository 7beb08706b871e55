/**
 * What systemd decides about a portable service image, in one place: where portabled looks for units and which it
 * attaches, how the image's file name gives the prefix and which units match it, what a read-only image must carry
 * for the service to start, and the PATH systemd searches for bare program names. The build lays images out by
 * these rules and inspect judges images by the same ones, so the two cannot drift apart. Facts are systemd 252's
 * and 257's (portable.c, portablectl.c, execute.c); the name rules live in names.ts and are re-exported here.
 */
import path from 'node:path/posix';
import { PORTABLE_UNIT_TYPES } from './names.js';

export { PORTABLE_UNIT_TYPES, imageFileName, unitMatchesPrefix, validatePname, validateUnitName, validateVersion } from './names.js';

/** Where portabled looks for units inside an image, first found wins (portable.c, the system unit search path). */
export const UNIT_SEARCH_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/usr/local/lib/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system'];

/** Where the build puts the units it ships: the first folder portabled searches. */
export const IMAGE_UNIT_DIR = UNIT_SEARCH_DIRS[0];

/** Where portabled reads the image's os-release, first found wins; it refuses an image with neither. */
export const OS_RELEASE_PATHS = ['/etc/os-release', '/usr/lib/os-release'];

/**
 * Not checked at attach, but a read-only image without them fails at start with 226/NAMESPACE: the profiles bind
 * the host's machine-id and resolv.conf over these files, and the service's namespace mounts API file systems
 * and private temporary folders on these directories.
 */
export const MOUNT_POINT_FILES = ['/etc/machine-id', '/etc/resolv.conf'];
export const MOUNT_POINT_DIRS = ['/proc', '/sys', '/dev', '/run', '/tmp', '/var/tmp'];

/** Temporary folders: world-writable and sticky, as on any system (mode 1777). */
export const STICKY_DIRS = ['/tmp', '/var/tmp'];

/**
 * Parents of StateDirectory=, CacheDirectory= and LogsDirectory=: systemd cannot make their mount points on a
 * read-only image, so the image carries the folders (a unit's own `/var/lib/NAME` is still up to its author).
 */
export const STATE_DIRS = ['/var/lib', '/var/cache', '/var/log'];

/**
 * Where StateDirectory=, CacheDirectory=, LogsDirectory= and ConfigurationDirectory= live in the service's view:
 * systemd binds the host's folder onto `<root>/<name>`, and on a read-only image it cannot create that mount point
 * ("Failed to create destination mount point node … Read-only file system", 226/NAMESPACE), so the image must
 * carry `<root>/<name>` as an empty folder. RuntimeDirectory= lives on /run, which the profiles mount as tmpfs.
 */
export const UNIT_DIRECTORY_ROOTS: Readonly<Record<string, string>> = {
  StateDirectory: '/var/lib',
  CacheDirectory: '/var/cache',
  LogsDirectory: '/var/log',
  ConfigurationDirectory: '/etc',
};

/**
 * Dynamic users (DynamicUser=, which every profile but trusted imposes) exist only in systemd's user database:
 * glibc finds them through nss-systemd, which asks the varlink sockets in /run/systemd/userdb. The profiles give
 * the service a /run of its own without them, so the unit binds that folder in ('-': fine where it is missing).
 */
export const NSS_SYSTEMD_LIBRARY = 'libnss_systemd.so.2';
export const USERDB_BIND = 'BindReadOnlyPaths=-/run/systemd/userdb';

/**
 * systemd's built-in search path for bare Exec names (find_executable_full() without ExecSearchPath=) and the
 * PATH a service gets by default (the manager's DEFAULT_PATH).
 */
export const SYSTEMD_DEFAULT_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin'];

/** Kernels with 64 KiB pages refuse squashfs blocks smaller than a page. */
export const MIN_PORTABLE_BLOCK_SIZE = 64 * 1024;

/** portabled takes a raw image only when its file name ends in `.raw` ("Wrong medium type"). */
export const RAW_IMAGE_SUFFIX = '.raw';

/** portablectl's default match: the file name without `.raw`, cut at the first `_` (portablectl.c extract_prefix()). */
export function prefixFromName(name: string): string {
  const base = path.basename(name);
  const stem = base.endsWith(RAW_IMAGE_SUFFIX) ? base.slice(0, -RAW_IMAGE_SUFFIX.length) : base;
  const i = stem.indexOf('_');
  return i >= 0 ? stem.slice(0, i) : stem;
}

/** A prefix portablectl accepts: only [A-Za-z0-9.-], else "Failed to extract prefix of image name". */
export function isValidPrefix(prefix: string): boolean {
  return /^[A-Za-z0-9.-]+$/.test(prefix);
}

/** The unit types portabled attaches, as a check on a unit's file name. */
export function isPortableUnitType(unitName: string): boolean {
  return PORTABLE_UNIT_TYPES.some((t) => unitName.endsWith(t));
}

/** `PORTABLE_PREFIXES=` of os-release (v250): when set, every match used for attach must be one of them. */
export function portablePrefixes(osRelease: Record<string, string>): string[] | undefined {
  return osRelease.PORTABLE_PREFIXES?.split(/\s+/).filter(Boolean);
}

/**
 * Layered images (portable extensions since 249, sysext, confext since 255): what an extension carries and how
 * portabled and systemd-sysext match it against its base (extension-util.c, extension-release.c, os-util.c).
 */
export type ImageKind = 'portable' | 'extension' | 'sysext' | 'confext';
export const IMAGE_KINDS: readonly ImageKind[] = ['portable', 'extension', 'sysext', 'confext'];

/** Folders an extension's files may live in: only these are overlaid at run time (ExtensionImages=, sysext, confext). */
export function extensionHierarchies(kind: ImageKind): string[] {
  return kind === 'confext' ? ['/etc'] : ['/usr', '/opt'];
}

/** The extension-release folder: /usr/lib/extension-release.d for portable extensions and sysexts, /etc/… for confexts. */
export function extensionReleaseDir(kind: ImageKind): string {
  return kind === 'confext' ? '/etc/extension-release.d' : '/usr/lib/extension-release.d';
}

export function extensionReleasePath(kind: ImageKind, name: string): string {
  return `${extensionReleaseDir(kind)}/extension-release.${name}`;
}

/** Where an extension's units go: inside /usr, so they are also there when the overlay is mounted at start. */
export const EXTENSION_UNIT_DIR = '/usr/lib/systemd/system';

/** The xattr that lets the single extension-release file match any image name (systemd ≥ 249). */
export const EXTENSION_RELEASE_STRICT_XATTR = 'user.extension-release.strict';

/** Key names: sysext and portable extensions use SYSEXT_*, confexts CONFEXT_*. */
export function extensionKeys(kind: ImageKind): { level: string; scope: string } {
  return kind === 'confext' ? { level: 'CONFEXT_LEVEL', scope: 'CONFEXT_SCOPE' } : { level: 'SYSEXT_LEVEL', scope: 'SYSEXT_SCOPE' };
}

/** SYSEXT_SCOPE= when absent: every scope. */
export const DEFAULT_EXTENSION_SCOPE = ['system', 'portable'];

/**
 * The names an image file may carry in its extension-release file name: 252 takes the file name without `.raw`
 * literally; 257 (since 256) also strips `.sysext.raw`/`.confext.raw` and accepts the name cut at the first `_`
 * or `+` (the version). With the strict xattr set false, the single file in the folder matches any name.
 */
export function acceptedReleaseNames(imageFile: string, systemd: 252 | 257): string[] {
  const base = path.basename(imageFile);
  const names = new Set<string>();
  const stem = base.endsWith(RAW_IMAGE_SUFFIX) ? base.slice(0, -RAW_IMAGE_SUFFIX.length) : base;
  names.add(stem);
  if (systemd >= 257) {
    let s = stem;
    for (const suffix of ['.sysext', '.confext']) if (s.endsWith(suffix)) s = s.slice(0, -suffix.length);
    names.add(s);
    const cut = s.search(/[_+]/);
    if (cut > 0) names.add(s.slice(0, cut));
  }
  return [...names];
}

/** The versions mkportable proves against: the naming rules differ between them. */
export const NAMING_SYSTEMD_VERSIONS = [252, 257] as const;

export interface ReleaseMismatch {
  rule: string;
  message: string;
}

/**
 * Does an extension's release fit the base's os-release, as extension_release_validate() judges it?
 * `scope` is the scope asked for (portable for `portablectl attach --extension`, system for systemd-sysext).
 */
export function checkExtensionRelease(
  ext: Record<string, string>, base: Record<string, string>, kind: ImageKind, opts: { scope: string; hostArch?: string; systemd?: 252 | 257 },
): ReleaseMismatch[] {
  const out: ReleaseMismatch[] = [];
  const keys = extensionKeys(kind);
  const id = ext.ID;
  if (!id) out.push({ rule: 'extension-release-no-id', message: 'extension-release has no ID=' });
  else if (id !== '_any' && id !== base.ID) {
    const like = (base.ID_LIKE ?? '').split(/\s+/).filter(Boolean);
    if (!(opts.systemd === 257 && like.includes(id))) {
      out.push({ rule: 'extension-id-mismatch', message: `extension ID=${id} does not match the base's ID=${base.ID ?? '(none)'}` });
    }
  }
  if (id !== '_any') {
    const level = ext[keys.level];
    if (level !== undefined && base[keys.level] !== undefined) {
      if (level !== base[keys.level]) out.push({ rule: 'extension-level-mismatch', message: `extension ${keys.level}=${level} does not match the base's ${keys.level}=${base[keys.level]}` });
    } else if (base.VERSION_ID !== undefined && ext.VERSION_ID !== base.VERSION_ID) {
      out.push({ rule: 'extension-version-mismatch', message: `extension VERSION_ID=${ext.VERSION_ID ?? '(none)'} does not match the base's VERSION_ID=${base.VERSION_ID}` });
    }
  }
  const scope = ext[keys.scope]?.split(/\s+/).filter(Boolean) ?? DEFAULT_EXTENSION_SCOPE;
  if (!scope.includes(opts.scope)) out.push({ rule: 'extension-scope', message: `${keys.scope}=${scope.join(' ')} does not include '${opts.scope}'` });
  const arch = ext.ARCHITECTURE;
  if (arch && arch !== '_any' && opts.hostArch && arch !== opts.hostArch) {
    out.push({ rule: 'extension-architecture', message: `ARCHITECTURE=${arch} is not the host's (${opts.hostArch})` });
  }
  return out;
}

/** systemd's architecture names for Node's process.arch. */
export function systemdArchitecture(nodeArch: string = process.arch): string | undefined {
  return ({ x64: 'x86-64', arm64: 'arm64', arm: 'arm', ia32: 'x86', ppc64: 'ppc64-le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loongarch64' } as Record<string, string>)[nodeArch];
}
