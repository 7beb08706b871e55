/** The user-facing option types: what a config file, `defineConfig()` or `portableService()` accepts. */

/** A unit file on disk (relative paths are relative to the config file) or given inline. */
export type UnitSpec = string | { name: string; text: string };

export interface SymlinkSpec {
  /** What the link points to; it and its closure are put into the image. */
  object: string;
  /** Where the link is created in the image. */
  symlink: string;
}

/**
 * A file, folder or link placed at `path` in the image, whatever the build host has there: `source` is a file or
 * folder relative to the config file (copied with its modes, owned by root), or the entry is given inline.
 */
export type FileSpec =
  | { path: string; source: string }
  | { path: string; text: string; mode?: number }
  | { path: string; type: 'dir'; mode?: number }
  | { path: string; symlink: string };

export interface PortableServiceOptions {
  pname: string;
  version: string;
  /** Required unless unitFromConfig makes the service unit. */
  units?: UnitSpec[];
  description?: string;
  homepage?: string;
  symlinks?: SymlinkSpec[];
  contents?: string[];
  /** Files, folders and links at paths of your choosing; executables among them get their closure. */
  files?: FileSpec[];
  /** Debian packages installed in the source (the build host or `from`): the files dpkg lists for them, as if given in `contents`. */
  packages?: string[];
  /** Globs of image paths to leave out, with what only they needed (`*` within a name, `**` across folders). */
  exclude?: string[];
  /** With closure "full": keep the rootfs's own unit files that match the prefix but are not in `units`. */
  keepSourceUnits?: boolean;
  /** Dynamic users get names: nss-systemd in the image, `systemd` in nsswitch.conf, the user database bound in (default true). */
  dynamicUserLookup?: boolean;
  /** Path to mksquashfs, or to the folder that holds it. */
  squashfsTools?: string;
  squashCompression?: string;
  squashBlockSize?: string | number;
  outDir?: string;
  /** Extra or replaced os-release keys; null removes a key. */
  osRelease?: Record<string, string | null>;
  /** Timestamp for every file and the image (seconds); defaults to $SOURCE_DATE_EPOCH, else 0. */
  sourceDateEpoch?: number;
  /** Inspect the finished image by portabled's rules and fail on errors (default true). */
  check?: boolean;
  /** Root filesystem to take binaries from instead of the build host: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], tar:FILE, dir:DIR. */
  from?: string;
  /** "full": the whole rootfs of `from`; "minimal": only what units, contents and symlinks need. Default: full with `from`. */
  closure?: 'full' | 'minimal';
  /** Make `<pname>.service` from the image config's Entrypoint, Cmd, Env, WorkingDir and User (oci, oci-archive, docker-archive). */
  unitFromConfig?: boolean;
  /** What to build: a portable image (default), a portable extension, a sysext (/usr, /opt) or a confext (/etc). */
  kind?: 'portable' | 'extension' | 'sysext' | 'confext';
  /** The base image an extension is built against (relative to the config file): what it holds is not repeated. */
  base?: string;
  /** Keep device nodes found in `from` (default true); false makes one an error. */
  allowDevices?: boolean;
  /**
   * Reuse compressed blocks from the block cache in $XDG_CACHE_HOME/mkportable (~/.cache/mkportable) and add new
   * ones (default true): a rebuild recompresses only what changed. false: neither read nor write it.
   */
  cache?: boolean;
  /** The cache's size cap ("2G", "512M", bytes); past it, least recently used blocks go. Default 1G. */
  cacheSize?: string | number;
  /** 'squashfs' (default): a plain `.raw` squashfs; 'ddi': a GPT Discoverable Disk Image with root, root-verity and root-verity-sig partitions. */
  format?: 'squashfs' | 'ddi';
  /** dm-verity (default false): `.verity` and `.roothash` sidecars beside a squashfs image, the verity partition of a DDI. */
  verity?: boolean;
  /** PEM RSA private key that signs the root hash (relative to the config file); default $MKPORTABLE_SIGNING_KEY (PEM text or a path). */
  signingKey?: string;
  /** PEM certificate of the signing key: setting it signs the image (`.roothash.p7s`, or the DDI's root-verity-sig partition). */
  signingCertificate?: string;
  /** DPS architecture of the DDI's partition types (x86-64, arm64, …); default: the ELF machine of the image's binaries. */
  architecture?: string;
  /** Folder that relative unit paths are taken from (the config file's folder); defaults to the working directory. */
  baseDir?: string;
}

/** The seed's hyphenated spellings are accepted too, e.g. `squash-compression`. */
export type PortableServiceConfig = PortableServiceOptions & {
  'squash-compression'?: string;
  'squash-block-size'?: string | number;
  'squashfs-tools'?: string;
  'out-dir'?: string;
  'os-release'?: Record<string, string | null>;
  'source-date-epoch'?: number;
  'unit-from-config'?: boolean;
  'allow-devices'?: boolean;
  'cache-size'?: string | number;
  'keep-source-units'?: boolean;
  'dynamic-user-lookup'?: boolean;
  'signing-key'?: string;
  'signing-certificate'?: string;
};

/** Identity helper that gives config files type checking. */
export function defineConfig(options: PortableServiceConfig): PortableServiceConfig {
  return options;
}
