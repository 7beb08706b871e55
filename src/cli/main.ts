import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { MkportableError } from '../errors.js';
import { SETTINGS, type Setting } from '../config/settings.js';
import type { PortableServiceConfig, SymlinkSpec } from '../config/options.js';
import { absoluteFromSpec } from '../config/from-spec.js';

/** A wrong command line: exit status 2, unlike a build failure (1). */
class UsageError extends Error {}

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url.replace(/\/dist\/src\//, '/src/')), 'utf8')) as { version: string };

function optionHelp(s: Setting): string {
  if (s.kind === 'boolean') return `${`  --${s.flag}`.padEnd(34)}${s.help}`;
  const arg = s.kind === 'number' ? 'N' : s.kind === 'symlinks' ? 'LINK=OBJECT' : s.kind === 'files' ? 'PATH=SOURCE' : s.kind === 'record' ? 'KEY=VALUE' : s.kind === 'units' ? 'FILE' : 'VALUE';
  const flag = `  --${s.flag} ${arg}`;
  return `${flag.padEnd(34)}${s.help}${s.default ? ` (default: ${s.default})` : ''}`;
}

const HELP = `mkportable ${pkg.version}: build systemd portable service images

Usage:
  mkportable build [CONFIG_OR_DIR] [options]   build <pname>_<version>.raw
  mkportable inspect IMAGE [--prefix P]... [--profile default|nonetwork|strict|trusted] [--architecture A]
                     [--certificate FILE] [--json]
                                               judge an image (.raw, DDI or folder) by portabled's rules,
                                               check its dm-verity tree and, with --certificate, its signature
  mkportable ls IMAGE [PATH]                   list a squashfs image (any squashfs 4.0 image, or a DDI's root)
  mkportable cat IMAGE PATH                    print a file from a squashfs image (or a DDI's root)
  mkportable pack DIR IMAGE [--squash-compression C] [--squash-block-size B] [--all-root] [--mksquashfs]
                                               squashfs of a whole folder, owners and times kept
  mkportable --help | --version

CONFIG_OR_DIR is a portable.config.{ts,mts,js,mjs,json} or a folder holding one
(default: the current folder). Flags override the config; without a config,
--pname, --version and --unit are enough.

Build options:
  --json                            print the BuildResult as one JSON object on stdout
${SETTINGS.map(optionHelp).join('\n')}

Exit status: 0 success, 1 build failure, 2 usage error.
`;

function buildFlags(): ParseArgsConfig['options'] {
  const options: NonNullable<ParseArgsConfig['options']> = { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };
  for (const s of SETTINGS) {
    const multiple = ['units', 'symlinks', 'string[]', 'record', 'files'].includes(s.kind);
    options[s.flag] = s.kind === 'boolean' ? { type: 'boolean' } : { type: 'string', multiple };
  }
  return options;
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
        if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${s.flag}: '${v}' is not a non-negative integer`);
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

async function build(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: buildFlags(), allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { positionals } = parsed;
  const values = parsed.values as Record<string, unknown>;
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`build takes one config file or folder, got ${positionals.length}`);
  const flags = optionsFromFlags(values);
  const { findConfig, loadConfigFile } = await import('../config/load.js');
  const { portableService } = await import('../build.js');

  let config: Partial<PortableServiceConfig> = {};
  const target = positionals[0];
  const flagsSuffice = flags.pname !== undefined && flags.version !== undefined && (flags.units !== undefined || flags.unitFromConfig === true);
  if (target !== undefined || !flagsSuffice) {
    config = await loadConfigFile(await findConfig(target ?? '.'));
  }
  const progress = process.stderr.isTTY ? (step: string) => process.stderr.write(`mkportable: ${step}…\n`) : undefined;
  const result = await portableService({ ...config, ...flags } as PortableServiceConfig, { progress });
  for (const w of result.warnings) process.stderr.write(`warning: ${w.message}\n`);
  for (const p of result.problems) process.stderr.write(`warning: ${p.rule}: ${p.message}\n`);
  if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
  else {
    const rel = path.relative(process.cwd(), result.image) || result.image;
    process.stdout.write(`${rel}  ${result.size} bytes  sha256 ${result.sha256}  ${result.files.length} entries\n`);
    if (result.rootHash) process.stdout.write(`root hash ${result.rootHash}${result.signed ? ' (signed)' : ''}${result.architecture ? `  ${result.architecture}` : ''}\n`);
  }
  return 0;
}

function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, unknown>, positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

async function pack(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    'squash-compression': { type: 'string' }, 'squash-block-size': { type: 'string' },
    'all-root': { type: 'boolean' }, mksquashfs: { type: 'boolean' }, 'squashfs-tools': { type: 'string' },
  });
  if (positionals.length !== 2) throw new UsageError('pack takes a folder and an image path');
  const { packDirectory } = await import('../pack.js');
  await packDirectory(positionals[0], positionals[1], {
    compression: values['squash-compression'] as string | undefined,
    blockSize: values['squash-block-size'] as string | undefined,
    allRoot: Boolean(values['all-root']),
    backend: values.mksquashfs || values['squashfs-tools'] ? 'mksquashfs' : 'native',
    squashfsTools: values['squashfs-tools'] as string | undefined,
  });
  return 0;
}

async function readImageCommand(cmd: 'ls' | 'cat', args: string[]): Promise<number> {
  const { positionals } = parse(args, {});
  if (cmd === 'ls' && (positionals.length < 1 || positionals.length > 2)) throw new UsageError('ls takes an image and an optional path');
  if (cmd === 'cat' && positionals.length !== 2) throw new UsageError('cat takes an image and a path');
  const { listCommand, openImage } = await import('../squashfs/read/index.js');
  const { rootFileSystem } = await import('../inspect/verity.js');
  // A DDI: its root partition's squashfs.
  const partition = await rootFileSystem(positionals[0]);
  const image = await openImage(positionals[0], partition ? { partition } : {});
  try {
    if (cmd === 'ls') {
      process.stdout.write(await listCommand(image, positionals[1]));
      return 0;
    }
    for await (const chunk of image.createReadStream(positionals[1])) {
      if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
    }
  } finally {
    await image.close();
  }
  return 0;
}

function readCertificate(file: string): X509Certificate {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--certificate '${file}': cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return new X509Certificate(pem);
  } catch {
    throw new UsageError(`--certificate '${file}': not a PEM certificate`);
  }
}

async function inspect(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    prefix: { type: 'string', multiple: true }, profile: { type: 'string' }, json: { type: 'boolean' },
    architecture: { type: 'string' }, certificate: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('inspect takes one image (.raw file or folder)');
  const { PROFILE_NAMES } = await import('../systemd/profiles.js');
  const profile = values.profile as string | undefined;
  if (profile !== undefined && !PROFILE_NAMES.includes(profile)) throw new UsageError(`--profile: '${profile}' is not one of ${PROFILE_NAMES.join(', ')}`);
  const { inspectPath, formatReport } = await import('../inspect/index.js');
  let architecture: string | undefined;
  if (values.architecture !== undefined) {
    const { canonicalArchitecture, ARCHITECTURE_NAMES } = await import('../formats/dps.js');
    architecture = canonicalArchitecture(values.architecture as string);
    if (!architecture) throw new UsageError(`--architecture: '${values.architecture}' is not one of ${ARCHITECTURE_NAMES.join(', ')}`);
  }
  const certificate = values.certificate === undefined ? undefined : readCertificate(values.certificate as string);
  let report;
  try {
    report = await inspectPath(positionals[0], { prefixes: values.prefix as string[] | undefined, profile, architecture, certificate });
  } catch (e) {
    // An unreadable image is not a verdict on the image's contents: exit 2 with the reader's error.
    if (e instanceof MkportableError) {
      process.stderr.write(`mkportable: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  process.stdout.write(values.json ? JSON.stringify(report) + '\n' : formatReport(report));
  return report.ok ? 0 : 1;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(HELP);
        return cmd === undefined ? 2 : 0;
      case '--version':
      case '-V':
        process.stdout.write(`${pkg.version}\n`);
        return 0;
      case 'build':
        return await build(rest);
      case 'pack':
        return await pack(rest);
      case 'ls':
      case 'cat':
        return await readImageCommand(cmd, rest);
      case 'inspect':
        return await inspect(rest);
      default:
        throw new UsageError(`unknown command '${cmd}' (try: mkportable --help)`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`mkportable: ${e.message}\n`);
      return 2;
    }
    if (e instanceof MkportableError) {
      process.stderr.write(`mkportable: error: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`mkportable: error: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}
