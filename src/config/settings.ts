import { MkportableError } from '../errors.js';
import type { PortableServiceOptions } from './options.js';
import { collectProblems } from './problems.js';
import { didYouMean } from './suggest.js';

/**
 * One table drives config validation, the CLI flags and `--help`, so a setting cannot exist in one and not
 * the others.
 */
export type SettingKind = 'boolean' | 'string' | 'number' | 'size' | 'string[]' | 'units' | 'symlinks' | 'record' | 'files';

export interface Setting {
  key: keyof PortableServiceOptions;
  kind: SettingKind;
  /** CLI flag (without "--"); repeatable for list kinds. */
  flag: string;
  /** Other spellings of the flag. */
  aliases?: string[];
  /** The flag's value in help texts (VALUE when unset). */
  arg?: string;
  help: string;
  /** The default as the README's option table and `build --help` say it ("required", "none", "[]", ...). */
  default: string;
}

export const SETTINGS: readonly Setting[] = [
  { key: 'pname', kind: 'string', flag: 'pname', arg: 'NAME', help: 'service name; image prefix and unit prefix ([A-Za-z0-9.-])', default: 'required' },
  // `--version` after `build` is the image's version (`mkportable --version` prints the tool's); --image-version says it plainly.
  { key: 'version', kind: 'string', flag: 'version', aliases: ['image-version'], arg: 'VERSION', help: 'image version, after the "_" in the file name', default: 'required' },
  { key: 'units', kind: 'units', flag: 'unit', arg: 'FILE', help: 'unit file to ship (repeatable); names must start with pname', default: 'required (not for sysext, confext)' },
  { key: 'description', kind: 'string', flag: 'description', arg: 'TEXT', help: 'PORTABLE_PRETTY_NAME in os-release', default: 'none' },
  { key: 'homepage', kind: 'string', flag: 'homepage', arg: 'URL', help: 'HOME_URL in os-release', default: 'none' },
  { key: 'symlinks', kind: 'symlinks', flag: 'symlink', arg: 'LINK=OBJECT', help: 'a link in the image to OBJECT, with its closure (repeatable)', default: '[]' },
  { key: 'contents', kind: 'string[]', flag: 'contents', arg: 'PATH', help: 'host file or directory to add with its closure (repeatable)', default: '[]' },
  { key: 'files', kind: 'files', flag: 'file', arg: 'PATH=SOURCE', help: 'file or folder SOURCE placed at PATH in the image, with its closure (repeatable)', default: '[]' },
  { key: 'packages', kind: 'string[]', flag: 'package', arg: 'NAME', help: 'Debian package of the source (dpkg) whose files are added with their closure (repeatable)', default: '[]' },
  { key: 'exclude', kind: 'string[]', flag: 'exclude', arg: 'GLOB', help: 'glob of image paths to leave out, with what only they need (repeatable)', default: '[]' },
  { key: 'dynamicUserLookup', kind: 'boolean', flag: 'no-dynamic-user-lookup', help: 'leave out nss-systemd and the userdb binding that give dynamic users a name (config: dynamicUserLookup: false)', default: 'true' },
  { key: 'keepSourceUnits', kind: 'boolean', flag: 'keep-source-units', help: "with --closure full, keep the rootfs's unit files that match pname but are not given", default: 'false' },
  { key: 'squashfsTools', kind: 'string', flag: 'squashfs-tools', arg: 'PATH', help: 'write with mksquashfs instead: the binary or the folder holding it', default: 'the native writer' },
  { key: 'squashCompression', kind: 'string', flag: 'squash-compression', arg: 'WORDS', help: 'compression words as mksquashfs takes them', default: 'xz -Xdict-size 100%' },
  { key: 'squashBlockSize', kind: 'size', flag: 'squash-block-size', arg: 'SIZE', help: 'block size, e.g. 1M, 128K, 131072', default: '1M' },
  { key: 'outDir', kind: 'string', flag: 'out', arg: 'DIR', help: 'output folder (relative to the working directory)', default: './result' },
  { key: 'osRelease', kind: 'record', flag: 'os-release', arg: 'KEY=VALUE', help: 'added to /etc/os-release; KEY= removes it (repeatable)', default: '{}' },
  { key: 'sourceDateEpoch', kind: 'number', flag: 'source-date-epoch', arg: 'SECONDS', help: 'timestamp of every file', default: '$SOURCE_DATE_EPOCH, else 0' },
  { key: 'from', kind: 'string', flag: 'from', arg: 'SPEC', help: 'rootfs to build from: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], tar:FILE, dir:DIR', default: 'the build host' },
  { key: 'closure', kind: 'string', flag: 'closure', arg: 'full|minimal', help: 'full (the whole rootfs of --from) or minimal (what units and contents need)', default: 'full with from, else minimal' },
  { key: 'unitFromConfig', kind: 'boolean', flag: 'unit-from-config', help: 'make <pname>.service from the image config (Entrypoint, Cmd, Env, WorkingDir, User)', default: 'false' },
  { key: 'kind', kind: 'string', flag: 'kind', arg: 'KIND', help: 'portable, extension (portable extension), sysext (/usr, /opt) or confext (/etc)', default: 'portable' },
  { key: 'base', kind: 'string', flag: 'base', arg: 'IMAGE', help: 'base image (.raw) an extension is built against: its files are not repeated', default: 'none' },
  { key: 'allowDevices', kind: 'boolean', flag: 'no-devices', help: 'refuse device nodes in --from (config: allowDevices: false)', default: 'true' },
  { key: 'check', kind: 'boolean', flag: 'no-check', help: 'skip the portabled checks on the finished image (config: check: false)', default: 'true' },
  { key: 'cache', kind: 'boolean', flag: 'no-cache', help: 'neither use nor fill the block cache in $XDG_CACHE_HOME/mkportable (config: cache: false)', default: 'true' },
  { key: 'cacheSize', kind: 'size', flag: 'cache-size', arg: 'SIZE', help: 'block cache cap, e.g. 2G, 512M; least recently used blocks go first', default: '1G' },
  { key: 'format', kind: 'string', flag: 'format', arg: 'squashfs|ddi', help: 'squashfs (a plain .raw) or ddi (a GPT Discoverable Disk Image holding it)', default: 'squashfs' },
  { key: 'verity', kind: 'boolean', flag: 'verity', help: 'dm-verity: .verity and .roothash sidecars, or the verity partition of a ddi', default: 'false' },
  { key: 'signingKey', kind: 'string', flag: 'signing-key', arg: 'FILE', help: 'PEM RSA private key that signs the root hash (the variable holds PEM text or a path)', default: '$MKPORTABLE_SIGNING_KEY' },
  { key: 'signingCertificate', kind: 'string', flag: 'signing-certificate', arg: 'FILE', help: 'PEM certificate of the signing key; signs the image (.roothash.p7s or the verity-sig partition)', default: 'none' },
  { key: 'architecture', kind: 'string', flag: 'architecture', arg: 'ARCH', help: 'DPS architecture of the ddi partitions (x86-64, arm64, ...)', default: "the ELF machine of the image's executables" },
];

export const DEFAULTS = {
  squashCompression: 'xz -Xdict-size 100%',
  squashBlockSize: '1M',
  outDir: './result',
  cacheSize: '1G',
} as const;

/** `squashCompression` → `squash-compression`: the seed's spelling. */
export function hyphenate(key: string): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

const bad = (where: string, key: string, want: string, value: unknown) =>
  new MkportableError('CONFIG_INVALID', `${where}: '${key}' must be ${want}, got ${JSON.stringify(value)}`, where);

/** Check one value against its setting's kind; returns the value in its canonical shape. */
export function checkSetting(where: string, setting: Setting, value: unknown): unknown {
  const { key, kind } = setting;
  const isStr = (v: unknown) => typeof v === 'string';
  switch (kind) {
    case 'boolean':
      if (typeof value !== 'boolean') throw bad(where, key, 'true or false', value);
      return value;
    case 'string':
      if (!isStr(value)) throw bad(where, key, 'a string', value);
      return value;
    case 'number':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw bad(where, key, 'a non-negative integer', value);
      return value;
    case 'size':
      if (!isStr(value) && typeof value !== 'number') throw bad(where, key, 'a size like "1M" or a number', value);
      return value;
    case 'string[]':
      if (!Array.isArray(value) || !value.every(isStr)) throw bad(where, key, 'a list of strings', value);
      return value;
    case 'units':
      if (!Array.isArray(value)) throw bad(where, key, 'a list of unit files', value);
      for (const u of value) {
        const inline = u && typeof u === 'object' && isStr((u as { name: unknown }).name) && isStr((u as { text: unknown }).text)
          && Object.keys(u).every((k) => k === 'name' || k === 'text');
        if (!isStr(u) && !inline) throw bad(where, key, 'a list of paths or { name, text } objects', u);
      }
      return value;
    case 'symlinks':
      if (!Array.isArray(value)) throw bad(where, key, 'a list of { object, symlink }', value);
      for (const s of value) {
        const ok = s && typeof s === 'object' && isStr((s as { object: unknown }).object) && isStr((s as { symlink: unknown }).symlink)
          && Object.keys(s).every((k) => k === 'object' || k === 'symlink');
        if (!ok) throw bad(where, key, 'a list of { object, symlink }', s);
      }
      return value;
    case 'files':
      if (!Array.isArray(value)) throw bad(where, key, 'a list of { path, source | text | type: "dir" | symlink }', value);
      for (const f of value) checkFileSpec(where, f);
      return value;
    case 'record':
      if (!value || typeof value !== 'object' || Array.isArray(value)) throw bad(where, key, 'an object of KEY: value', value);
      for (const [k, v] of Object.entries(value)) if (v !== null && !isStr(v)) throw bad(where, `${key}.${k}`, 'a string or null', v);
      return value;
  }
}

/**
 * Accept camelCase and hyphenated keys, refuse unknown keys and wrong types (all of them in one error), and
 * return the options in canonical camelCase.
 */
export function normalizeOptions(where: string, raw: unknown): Partial<PortableServiceOptions> {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new MkportableError('CONFIG_INVALID', `${where}: the config must be an object`, where);
  }
  const byName = new Map<string, Setting>();
  for (const s of SETTINGS) {
    byName.set(s.key, s);
    byName.set(hyphenate(s.key), s);
  }
  const problems = collectProblems(where);
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (name === 'baseDir') {
      problems.check(() => (out.baseDir = checkSetting(where, { key: 'baseDir', kind: 'string', flag: '', help: '', default: '' }, value)));
      continue;
    }
    const setting = byName.get(name);
    if (!setting) {
      const hint = didYouMean(name, byName.keys(), (c) => `'${c}'`);
      const known = hint ? '' : ` (known: ${SETTINGS.map((s) => s.key).join(', ')})`;
      problems.add(new MkportableError('CONFIG_INVALID', `${where}: unknown option '${name}'${hint}${known}`, where));
      continue;
    }
    if (setting.key in out) {
      problems.add(new MkportableError('CONFIG_INVALID', `${where}: '${setting.key}' is given twice (as '${name}' and another spelling)`, where));
      continue;
    }
    if (value === undefined) continue;
    problems.check(() => (out[setting.key] = checkSetting(where, setting, value)));
  }
  problems.done();
  return out as Partial<PortableServiceOptions>;
}

const FILE_SHAPES: Record<string, { required: string[]; optional: string[] }> = {
  source: { required: ['path', 'source'], optional: [] },
  text: { required: ['path', 'text'], optional: ['mode'] },
  type: { required: ['path', 'type'], optional: ['mode'] },
  symlink: { required: ['path', 'symlink'], optional: [] },
};

/** One `files` entry: exactly one of source, text, type: "dir" or symlink, with an absolute path. */
function checkFileSpec(where: string, f: unknown): void {
  const fail = (why: string) => new MkportableError('CONFIG_INVALID', `${where}: files: ${why}, got ${JSON.stringify(f)}`, where);
  if (!f || typeof f !== 'object' || Array.isArray(f)) throw fail('each entry must be an object');
  const o = f as Record<string, unknown>;
  const kinds = Object.keys(FILE_SHAPES).filter((k) => k in o);
  if (kinds.length !== 1) throw fail('each entry needs exactly one of source, text, type or symlink');
  const shape = FILE_SHAPES[kinds[0]];
  for (const k of Object.keys(o)) if (![...shape.required, ...shape.optional].includes(k)) throw fail(`unknown key '${k}' for a ${kinds[0]} entry`);
  for (const k of shape.required) if (typeof o[k] !== 'string') throw fail(`'${k}' must be a string`);
  if (!(o.path as string).startsWith('/')) throw fail("'path' must be absolute");
  if ('type' in o && o.type !== 'dir') throw fail("'type' can only be \"dir\"");
  if ('mode' in o && (typeof o.mode !== 'number' || !Number.isInteger(o.mode) || o.mode < 0 || o.mode > 0o7777)) throw fail("'mode' must be a number like 0o644");
}
