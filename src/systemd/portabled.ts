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
