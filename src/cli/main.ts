import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { MkportableError } from '../errors.js';
import { SETTINGS, type Setting } from '../config/settings.js';
import type { PortableServiceConfig, SymlinkSpec } from '../config/options.js';

/** A wrong command line: exit status 2, unlike a build failure (1). */
class UsageError extends Error {}

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url.replace(/\/dist\/src\//, '/src/')), 'utf8')) as { version: string };

function optionHelp(s: Setting): string {
  const arg = s.kind === 'number' ? 'N' : s.kind === 'symlinks' ? 'LINK=OBJECT' : s.kind === 'record' ? 'KEY=VALUE' : s.kind === 'units' ? 'FILE' : 'VALUE';
  const flag = `  --${s.flag} ${arg}`;
  return `${flag.padEnd(34)}${s.help}${s.default ? ` (default: ${s.default})` : ''}`;
}

const HELP = `mkportable ${pkg.version}: build systemd portable service images

Usage:
  mkportable build [CONFIG_OR_DIR] [options]   build <pname>_<version>.raw
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
    const multiple = ['units', 'symlinks', 'string[]', 'record'].includes(s.kind);
    options[s.flag] = { type: 'string', multiple };
  }
  return options;
}

function splitPair(flag: string, value: string): [string, string] {
  const i = value.indexOf('=');
  if (i <= 0) throw new UsageError(`--${flag}: expected ${flag === 'symlink' ? 'LINK=OBJECT' : 'KEY=VALUE'}, got '${value}'`);
  return [value.slice(0, i), value.slice(i + 1)];
}

/** Turn flag values into option values of the setting's type. */
export function optionsFromFlags(values: Record<string, unknown>): Partial<PortableServiceConfig> {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const v = values[s.flag];
    if (v === undefined) continue;
    switch (s.kind) {
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
        out[s.key] = v;
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
  const flagsSuffice = flags.pname !== undefined && flags.version !== undefined && flags.units !== undefined;
  if (target !== undefined || !flagsSuffice) {
    config = await loadConfigFile(await findConfig(target ?? '.'));
  }
  const progress = process.stderr.isTTY ? (step: string) => process.stderr.write(`mkportable: ${step}…\n`) : undefined;
  const result = await portableService({ ...config, ...flags } as PortableServiceConfig, { progress });
  for (const w of result.warnings) process.stderr.write(`warning: ${w.message}\n`);
  if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
  else {
    const rel = path.relative(process.cwd(), result.image) || result.image;
    process.stdout.write(`${rel}  ${result.size} bytes  sha256 ${result.sha256}  ${result.files.length} entries\n`);
  }
  return 0;
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
