import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { asMkportableError, MkportableError } from '../errors.js';
import { escapeBytes, escapeName, escapingReplacer } from '../formats/bytenames.js';
import { SETTINGS, type Setting } from '../config/settings.js';
import { didYouMean } from '../config/suggest.js';
import type { PortableServiceConfig, SymlinkSpec } from '../config/options.js';
import { absoluteFromSpec } from '../config/from-spec.js';
import { columns, commandHelp, parseCommandLine, UsageError, type CommandSpec, type FlagSpec } from './args.js';
import { EXIT_STDOUT_CLOSED, reportError, StdoutClosed, writeStdout } from './output.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url.replace(/\/dist\/src\//, '/src/')), 'utf8')) as { version: string };

const ARG_OF_KIND: Partial<Record<Setting['kind'], string>> = { number: 'N', symlinks: 'LINK=OBJECT', files: 'PATH=SOURCE', record: 'KEY=VALUE', units: 'FILE' };

/** The build's flags come from the settings table, so a setting cannot exist in the config and not on the command line. */
function settingFlag(s: Setting): FlagSpec {
  const multiple = ['units', 'symlinks', 'string[]', 'record', 'files'].includes(s.kind);
  // Booleans are switches: their default is the option's, not the flag's. List defaults ([]) say nothing.
  const note = s.kind === 'boolean' || ['none', '[]', '{}'].includes(s.default) ? undefined : s.default.startsWith('required') ? `(${s.default})` : `(default: ${s.default})`;
  return {
    name: s.flag, aliases: s.aliases, type: s.kind === 'boolean' ? 'boolean' : 'string', multiple,
    arg: s.arg ?? ARG_OF_KIND[s.kind] ?? 'VALUE', help: s.help, note,
  };
}

const JSON_BUILD: FlagSpec = { name: 'json', type: 'boolean', help: 'print the BuildResult as one JSON object on stdout; on failure {"error": {code, message, path}}' };
const PROGRESS: FlagSpec = {
  name: 'progress', type: 'string', arg: 'bar|plain|none',
  help: 'a live bar and step lines, step lines only, or nothing', note: '(default: bar on a terminal, none otherwise or with --json)',
};

const BUILD: CommandSpec = {
  name: 'build',
  args: '[CONFIG_OR_DIR]',
  summary: 'build <pname>_<version>.raw from a config file or flags',
  about: `Build <pname>_<version>.raw, a systemd portable service image.

CONFIG_OR_DIR is a portable.config.{ts,mts,js,mjs,json} or a folder holding one (default: the current
folder). Flags override the config; without a config, --pname, --version and --unit are enough.`,
  flags: [...SETTINGS.map(settingFlag), JSON_BUILD, PROGRESS,
    { name: 'sbom', type: 'string', arg: 'FILE', help: "also write an SPDX 2.3 JSON SBOM: the image's files with SHA-1/SHA-256, the distribution packages they come from" }],
  footer: `Here --version is the image's version (--image-version says the same); mkportable --version prints
mkportable's own.

Exit status: 0 success, 1 build failure (nothing is written), 2 usage error.`,
  positionals: { min: 0, max: 1, message: 'build takes one config file or folder' },
};

const INSPECT: CommandSpec = {
  name: 'inspect',
  args: 'IMAGE',
  summary: "judge an image (.raw, DDI or folder) by portabled's rules, and its dm-verity",
  about: `Judge an image (a .raw file: a squashfs, with or without verity sidecars, or a GPT DDI; or a folder tree) by
portabled's rules: what portablectl inspect would show, the image's format and verity state, then each problem
with its severity and rule name. Every data block is checked against the hash tree.`,
  flags: [
    { name: 'prefix', type: 'string', multiple: true, arg: 'P', help: 'judge as portablectl attach --prefix P would (repeatable)', note: '(default: the prefix of the file name)' },
    { name: 'extension', type: 'string', multiple: true, arg: 'EXT.raw', help: 'judge IMAGE as the base with this extension on top, as portablectl attach --extension (repeatable)' },
    { name: 'profile', type: 'string', arg: 'default|nonetwork|strict|trusted', help: 'judge as attached with portablectl attach --profile', note: '(default: default)' },
    { name: 'architecture', type: 'string', arg: 'ARCH', help: "a DDI: read the root partition of this architecture", note: "(default: the host's, as systemd picks it)" },
    { name: 'certificate', type: 'string', arg: 'FILE', help: 'check the root hash signature against this PEM certificate, as systemd does with /etc/verity.d' },
    { name: 'json', type: 'boolean', help: 'print the report as one JSON object on stdout; on failure {"error": {code, message, path}}' },
  ],
  footer: 'Exit status: 0 no errors, 1 errors found, 2 usage error or an unreadable image.',
  positionals: { min: 1, max: 1, message: 'inspect takes one image (.raw file or folder)' },
};

const LS: CommandSpec = {
  name: 'ls',
  args: 'IMAGE [PATH]',
  summary: 'list a squashfs image (any squashfs 4.0 image, or a DDI\'s root)',
  about: 'List the entries of a squashfs 4.0 image (mkportable\'s or mksquashfs\'s, or the root partition of a DDI) under PATH (default: /), as ls -lR would.',
  flags: [],
  footer: 'Exit status: 0 success, 1 unreadable image or path, 2 usage error.',
  positionals: { min: 1, max: 2, message: 'ls takes an image and an optional path' },
};

const CAT: CommandSpec = {
  name: 'cat',
  args: 'IMAGE PATH',
  summary: 'print a file from a squashfs image (or a DDI\'s root)',
  about: 'Write the file at PATH inside a squashfs 4.0 image (or the root partition of a DDI) to stdout.',
  flags: [],
  footer: 'Exit status: 0 success, 1 unreadable image or path, 2 usage error.',
  positionals: { min: 2, max: 2, message: 'cat takes an image and a path' },
};

const PACK: CommandSpec = {
  name: 'pack',
  args: 'DIR IMAGE',
  summary: 'squashfs of a whole folder, owners and times kept',
  about: 'Write a squashfs image of the whole folder DIR, owners and times kept: mksquashfs DIR IMAGE, done by mkportable.',
  flags: [
    { name: 'squash-compression', type: 'string', arg: 'WORDS', help: 'compression words as mksquashfs takes them', note: '(default: xz -Xdict-size 100%)' },
    { name: 'squash-block-size', type: 'string', arg: 'SIZE', help: 'block size, e.g. 1M, 128K, 131072', note: '(default: 1M)' },
    { name: 'all-root', type: 'boolean', help: 'make every file owned by root' },
    { name: 'mksquashfs', type: 'boolean', help: 'write with mksquashfs from PATH instead of the native writer' },
    { name: 'squashfs-tools', type: 'string', arg: 'PATH', help: 'write with this mksquashfs (the binary or the folder holding it)', note: '(default: the native writer)' },
    { name: 'no-cache', type: 'boolean', help: 'neither use nor fill the block cache in $XDG_CACHE_HOME/mkportable' },
    { name: 'cache-size', type: 'string', arg: 'SIZE', help: 'block cache cap, e.g. 2G, 512M; least recently used blocks go first', note: '(default: 1G)' },
    { ...PROGRESS, note: '(default: bar on a terminal, none otherwise)' }, // pack has no --json
  ],
  footer: 'Exit status: 0 success, 1 failure (nothing is written), 2 usage error.',
  positionals: { min: 2, max: 2, message: 'pack takes a folder and an image path' },
};

const TRY: CommandSpec = {
  name: 'try',
  args: 'IMAGE',
  summary: 'attach it in a throwaway systemd with the real portabled, start it, check it (root)',
  about: `Boot a throwaway systemd (cached Debian rootfs under systemd-nspawn: 12 for 252, 13 for 257), attach IMAGE
with portablectl attach --now --runtime, print each unit's systemctl status and last journal lines, run --check on
this host until it passes, then detach and stop the container. Needs root, systemd-nspawn and nsenter.`,
  flags: [
    { name: 'extension', type: 'string', multiple: true, arg: 'EXT.raw', help: 'attach this extension image on top (repeatable)' },
    { name: 'systemd', type: 'string', arg: '252|257', help: 'systemd version of the throwaway system', note: '(default: 252)' },
    { name: 'profile', type: 'string', arg: 'P', help: 'portablectl attach --profile P', note: '(default: default)' },
    { name: 'check', type: 'string', arg: 'CMD', help: "a command run here with sh -c until it exits 0 (the container shares this host's network)" },
    { name: 'check-timeout', type: 'string', arg: 'SECONDS', help: 'how long --check may keep failing', note: '(default: 30)' },
    { name: 'keep', type: 'boolean', help: 'keep it running until Ctrl-C (prints how to enter it), then detach and stop' },
  ],
  footer: 'Exit status: 0 attach, start and check passed; 1 any of them failed or a prerequisite is missing; 2 usage error.',
  positionals: { min: 1, max: 1, message: 'try takes one image (.raw file)' },
};

const PUBLISH: CommandSpec = {
  name: 'publish',
  args: 'IMAGE...',
  summary: 'add images to a release folder for systemd-sysupdate',
  about: `Add <pname>_<version>.raw images (and the .verity/.roothash/.roothash.p7s sidecars beside them) to a release
folder: the versioned files, SHA256SUMS (signed into SHA256SUMS.gpg with --gpg-key) and the client's transfer
files in sysupdate.<pname>.d/ (.transfer for systemd >= 257, .conf before).`,
  flags: [
    { name: 'to', type: 'string', arg: 'DIR', help: 'the release folder (created when missing)', note: '(required)' },
    { name: 'compress', type: 'string', arg: 'xz|gz', help: 'compress the images (and .verity sidecars)', note: '(default: none)' },
    { name: 'gpg-key', type: 'string', arg: 'ID', help: 'sign SHA256SUMS with this gpg key (GNUPGHOME applies); transfers then say Verify=yes' },
    { name: 'url', type: 'string', arg: 'URL', help: 'where clients fetch the folder from', note: '(default: file://DIR)' },
  ],
  footer: 'Exit status: 0 success, 1 failure (the folder is left as it was), 2 usage error.',
  positionals: { min: 1, max: Infinity, message: 'publish takes one or more images' },
};

const HELP_CMD: CommandSpec = {
  name: 'help',
  args: '[COMMAND]',
  summary: "this text, or a command's own help",
  flags: [],
  positionals: { min: 0, max: 1, message: 'help takes one command name' },
};

export const COMMANDS: CommandSpec[] = [BUILD, INSPECT, LS, CAT, PACK, TRY, PUBLISH, HELP_CMD];

export function mainHelp(): string {
  const commands = COMMANDS.map((c): [string, string] => [`${c.name} ${c.args}`.trim(), c.summary]);
  const options: [string, string][] = [
    ['-h, --help', "this text; mkportable COMMAND --help shows that command's options"],
    ['-V, --version', "print mkportable's version (build --version VERSION sets the image's)"],
  ];
  // One width for both tables, so every description starts in the same column.
  const width = Math.max(...[...commands, ...options].map(([l]) => l.length)) + 2;
  return `mkportable ${pkg.version}: build systemd portable service images

Usage: mkportable COMMAND [ARGS] [options]

Commands:
${columns(commands, { width })}

Options:
${columns(options, { width })}

Exit status: 0 success, 1 failure, 2 usage error (inspect: 1 when the image has errors).
`;
}

function splitPair(flag: string, value: string): [string, string] {
  const i = value.indexOf('=');
  if (i <= 0) throw new UsageError(`--${flag}: expected ${flag === 'symlink' ? 'LINK=OBJECT' : flag === 'file' ? 'PATH=SOURCE' : 'KEY=VALUE'}, got '${value}'`);
  return [value.slice(0, i), value.slice(i + 1)];
}

/** Turn flag values into option values of the setting's type. */
export function optionsFromFlags(values: Record<string, unknown>): Partial<PortableServiceConfig> {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const v = values[s.flag];
    if (v === undefined) continue;
    switch (s.kind) {
      case 'boolean':
        // --no-X flags negate (--no-check sets check: false); the others set true (--unit-from-config).
        out[s.key] = s.flag.startsWith('no-') ? !(v as boolean) : (v as boolean);
        break;
      case 'number': {
        const n = Number(v);
        if (!/^[0-9]+$/.test(v as string) || !Number.isSafeInteger(n)) throw new UsageError(`--${s.flag}: '${v}' is not a non-negative integer`);
        out[s.key] = n;
        break;
      }
      case 'symlinks':
        out[s.key] = (v as string[]).map((x): SymlinkSpec => {
          const [symlink, object] = splitPair(s.flag, x);
          return { symlink, object };
        });
        break;
      case 'files':
        // SOURCE is relative to the working directory, like --unit.
        out[s.key] = (v as string[]).map((x) => {
          const [p, source] = splitPair(s.flag, x);
          return { path: p, source: path.resolve(source) };
        });
        break;
      case 'record':
        out[s.key] = Object.fromEntries((v as string[]).map((x) => {
          const [k, val] = splitPair(s.flag, x);
          return [k, val === '' ? null : val];
        }));
        break;
      case 'units':
        out[s.key] = (v as string[]).map((u) => path.resolve(u));
        break;
      default:
        if (s.key === 'from') {
          // Relative to the working directory, whatever folder the config file is in.
          try {
            out[s.key] = absoluteFromSpec(v as string, process.cwd());
          } catch (e) {
            throw new UsageError(`--from: ${(e as Error).message}`);
          }
        } else if (s.key === 'signingKey' || s.key === 'signingCertificate') {
          out[s.key] = path.resolve(v as string);
        } else out[s.key] = v;
    }
  }
  return out as Partial<PortableServiceConfig>;
}

/** What a build needs before anything else, as flags: named when neither the flags nor a config give them. */
function missingRequired(o: Partial<PortableServiceConfig>): string[] {
  const missing: string[] = [];
  if (o.pname === undefined) missing.push('--pname');
  if (o.version === undefined) missing.push('--version');
  // sysext and confext images carry no units of their own.
  const unitsNeeded = o.kind === undefined || o.kind === 'portable' || o.kind === 'extension';
  if (o.units === undefined && o.unitFromConfig !== true && unitsNeeded) missing.push('--unit (or --unit-from-config)');
  return missing;
}

async function build(args: string[]): Promise<number> {
  const { values, positionals, help } = parseCommandLine(BUILD, args);
  if (help) return printHelp(BUILD);
  const flags = optionsFromFlags(values);
  const { findConfig, loadConfigFile } = await import('../config/load.js');
  const { portableService } = await import('../build.js');

  let config: Partial<PortableServiceConfig> = {};
  let configFile: string | undefined;
  const target = positionals[0];
  if (target !== undefined || missingRequired(flags).length) {
    try {
      configFile = await findConfig(target ?? '.');
    } catch (e) {
      // Flags given and no config here: the user meant a config-less build, so name what it lacks.
      const flagsGiven = Object.keys(flags).some((k) => k !== 'outDir');
      if (!(e instanceof MkportableError) || e.code !== 'CONFIG_NOT_FOUND') throw e;
      if (target === undefined && !flagsGiven) {
        throw new MkportableError(e.code, `${e.message} (give one, or build without a config: --pname, --version and --unit)`, e.subject);
      }
      if (target !== undefined) throw e;
    }
    if (configFile) config = await loadConfigFile(configFile);
  }
  const merged = { ...config, ...flags } as PortableServiceConfig;
  const missing = missingRequired(merged);
  if (missing.length) {
    const it = missing.length === 1 ? 'it' : 'them';
    const why = configFile ? `neither the flags nor ${configFile} set ${it}` : `no portable.config.* in this folder to take ${it} from`;
    throw new UsageError(`build: missing ${missing.join(', ')} (${why})`);
  }
  const ui = await progressUi(values.progress as string | undefined, Boolean(values.json));
  const sbom = values.sbom === undefined ? undefined : path.resolve(values.sbom as string);
  let result;
  try {
    result = await portableService(merged, { progress: (s) => ui.step(s), onWrite: (p) => ui.write(p), sbom });
  } finally {
    ui.done();
  }
  for (const w of result.warnings) process.stderr.write(`warning: ${escapeName(w.message)}\n`);
  for (const p of result.problems) process.stderr.write(`warning: ${p.rule}: ${escapeName(p.message)}\n`);
  if (values.json) await writeStdout(JSON.stringify(result, escapingReplacer) + '\n');
  else {
    await writeStdout(`${shownPath(result.image)}  ${result.size} bytes  sha256 ${result.sha256}  ${result.files.length} entries\n`);
    if (result.rootHash) await writeStdout(`root hash ${result.rootHash}${result.signed ? ' (signed)' : ''}${result.architecture ? `  ${result.architecture}` : ''}\n`);
  }
  return 0;
}

/** A path as the user would type it: relative below the working folder, absolute elsewhere (not ../../tmp/x). */
function shownPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel === '' ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? path.resolve(p) : rel;
}

/** The progress display for --progress (a bar on a terminal by default, nothing elsewhere or with --json). */
async function progressUi(flag: string | undefined, json: boolean) {
  const { createProgress, progressMode } = await import('./progress.js');
  let mode;
  try {
    mode = progressMode(flag, json, process.stderr);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return createProgress(mode, process.stderr);
}

async function pack(args: string[]): Promise<number> {
  const { values, positionals, help } = parseCommandLine(PACK, args);
  if (help) return printHelp(PACK);
  const ui = await progressUi(values.progress as string | undefined, false);
  const { packDirectory } = await import('../pack.js');
  try {
    ui.step(`packing ${positionals[0]} into ${positionals[1]}`);
    await packDirectory(positionals[0], positionals[1], {
      compression: values['squash-compression'] as string | undefined,
      blockSize: values['squash-block-size'] as string | undefined,
      allRoot: Boolean(values['all-root']),
      backend: values.mksquashfs || values['squashfs-tools'] ? 'mksquashfs' : 'native',
      squashfsTools: values['squashfs-tools'] as string | undefined,
      cache: !values['no-cache'],
      cacheSize: values['cache-size'] as string | undefined,
      onProgress: (p) => ui.write(p),
    });
  } finally {
    ui.done();
  }
  return 0;
}

async function readImageCommand(spec: CommandSpec, args: string[]): Promise<number> {
  const { positionals, help } = parseCommandLine(spec, args);
  if (help) return printHelp(spec);
  const { listCommand, openImage, pathArgument } = await import('../squashfs/read/index.js');
  const { rootFileSystem } = await import('../inspect/verity.js');
  // A DDI: its root partition's squashfs.
  const partition = await rootFileSystem(positionals[0]);
  const image = await openImage(positionals[0], partition ? { partition } : {});
  try {
    if (spec === LS) {
      await writeStdout(await listCommand(image, positionals[1]));
      return 0;
    }
    for await (const chunk of image.createReadStream(await pathArgument(image, positionals[1]))) await writeStdout(chunk as Uint8Array);
  } finally {
    await image.close();
  }
  return 0;
}

async function tryCommand(args: string[]): Promise<number> {
  const { values, positionals, help } = parseCommandLine(TRY, args);
  if (help) return printHelp(TRY);
  const systemd = values.systemd === undefined ? undefined : Number(values.systemd);
  if (systemd !== undefined && systemd !== 252 && systemd !== 257) throw new UsageError(`--systemd ${values.systemd}: choose 252 or 257`);
  const checkTimeout = values['check-timeout'] === undefined ? undefined : Number(values['check-timeout']);
  if (checkTimeout !== undefined && !(checkTimeout > 0)) throw new UsageError(`--check-timeout ${values['check-timeout']}: seconds, more than 0`);
  const { tryImage } = await import('../try/try.js');
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const result = await tryImage({
    image: positionals[0],
    extensions: values.extension as string[] | undefined,
    systemd: systemd as 252 | 257 | undefined,
    profile: values.profile as string | undefined,
    check: values.check as string | undefined,
    checkTimeoutMs: checkTimeout === undefined ? undefined : checkTimeout * 1000,
    log: out,
    progress: (line) => process.stderr.write(`${line}\n`),
    keepUntil: values.keep
      ? async (c) => {
          const { leaveSignalsToCaller } = await import('../try/container.js');
          leaveSignalsToCaller(true);
          out(`kept running: enter it with  nsenter -t ${c.pid} -a -- bash   (Ctrl-C here detaches and stops it)`);
          await new Promise<void>((resolve) => {
            const alive = setInterval(() => {}, 1 << 30); // signal listeners alone do not keep node running
            const done = () => {
              clearInterval(alive);
              process.off('SIGINT', done);
              process.off('SIGTERM', done);
              resolve();
            };
            process.on('SIGINT', done);
            process.on('SIGTERM', done);
          });
          leaveSignalsToCaller(false);
        }
      : undefined,
  });
  out(result.ok ? 'PASS' : 'FAIL');
  return result.ok ? 0 : 1;
}

async function publishCommand(args: string[]): Promise<number> {
  const { values, positionals, help } = parseCommandLine(PUBLISH, args);
  if (help) return printHelp(PUBLISH);
  if (values.to === undefined) throw new UsageError('publish needs --to DIR (the release folder)');
  const compress = values.compress as string | undefined;
  if (compress !== undefined && compress !== 'xz' && compress !== 'gz') throw new UsageError(`--compress ${compress}: choose xz or gz`);
  const { publish } = await import('../publish/publish.js');
  const r = await publish({
    images: positionals,
    to: values.to as string,
    compress: compress as 'xz' | 'gz' | undefined,
    gpgKey: values['gpg-key'] as string | undefined,
    url: values.url as string | undefined,
    log: (line) => process.stdout.write(`${line}\n`),
  });
  await writeStdout(`client transfer files: ${r.transfers.map((t) => path.join(shownPath(r.dir), t)).join(' ')}\n`);
  return 0;
}

function readCertificate(file: string): X509Certificate {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`inspect: --certificate '${file}': cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return new X509Certificate(pem);
  } catch {
    throw new UsageError(`inspect: --certificate '${file}': not a PEM certificate`);
  }
}

async function inspect(args: string[]): Promise<number> {
  const { values, positionals, help } = parseCommandLine(INSPECT, args);
  if (help) return printHelp(INSPECT);
  const profile = values.profile as string | undefined;
  if (profile !== undefined) {
    const { PROFILE_NAMES } = await import('../systemd/profiles.js');
    if (!PROFILE_NAMES.includes(profile)) throw new UsageError(`inspect: --profile: '${profile}' is not one of ${PROFILE_NAMES.join(', ')}`);
  }
  let architecture: string | undefined;
  if (values.architecture !== undefined) {
    const { canonicalArchitecture, ARCHITECTURE_NAMES } = await import('../formats/dps.js');
    architecture = canonicalArchitecture(values.architecture as string);
    if (!architecture) throw new UsageError(`inspect: --architecture: '${values.architecture}' is not one of ${ARCHITECTURE_NAMES.join(', ')}`);
  }
  const certificate = values.certificate === undefined ? undefined : readCertificate(values.certificate as string);
  const { inspectPath, formatReport } = await import('../inspect/index.js');
  let report;
  try {
    const prefixes = values.prefix as string[] | undefined;
    const extensions = (values.extension as string[] | undefined) ?? [];
    if (extensions.length) {
      const { inspectStackPaths } = await import('../inspect/stack.js');
      report = await inspectStackPaths(positionals[0], extensions, { prefixes });
    } else report = await inspectPath(positionals[0], { prefixes, profile, architecture, certificate });
  } catch (e) {
    // An unreadable image is not a verdict on the image's contents: exit 2 with the reader's error.
    const known = asMkportableError(e, () => 'IMAGE_CORRUPT');
    if (known instanceof MkportableError) {
      reportError(known, { json: values.json === true });
      return 2;
    }
    throw e;
  }
  await writeStdout(values.json ? JSON.stringify(report, escapingReplacer) + '\n' : escapeBytes(formatReport(report)));
  return report.ok ? 0 : 1;
}

async function printHelp(spec: CommandSpec): Promise<number> {
  await writeStdout(commandHelp(spec));
  return 0;
}

async function helpCommand(args: string[]): Promise<number> {
  const { positionals } = parseCommandLine(HELP_CMD, args);
  if (positionals.length === 0) {
    await writeStdout(mainHelp());
    return 0;
  }
  const spec = COMMANDS.find((c) => c.name === positionals[0]);
  if (!spec) throw unknownCommand(positionals[0]);
  return printHelp(spec);
}

const unknownCommand = (cmd: string) =>
  new UsageError(`unknown command '${cmd}'${didYouMean(cmd, COMMANDS.map((c) => c.name))} (try: mkportable --help)`);

/** `--json` before any `--`: failures then also print the error object on stdout. */
const wantsJson = (args: string[]) => {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).includes('--json');
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const json = (cmd === 'build' || cmd === 'inspect') && wantsJson(rest);
  try {
    switch (cmd) {
      case undefined:
        await writeStdout(mainHelp());
        return 2;
      case '--help':
      case '-h':
        await writeStdout(mainHelp());
        return 0;
      case 'help':
        return await helpCommand(rest);
      case '--version':
      case '-V':
        await writeStdout(`${pkg.version}\n`);
        return 0;
      case 'build':
        return await build(rest);
      case 'pack':
        return await pack(rest);
      case 'ls':
        return await readImageCommand(LS, rest);
      case 'cat':
        return await readImageCommand(CAT, rest);
      case 'inspect':
        return await inspect(rest);
      case 'try':
        return await tryCommand(rest);
      case 'publish':
        return await publishCommand(rest);
      default:
        throw unknownCommand(cmd);
    }
  } catch (e) {
    if (e instanceof StdoutClosed) return EXIT_STDOUT_CLOSED;
    return reportError(e, { json });
  }
}
