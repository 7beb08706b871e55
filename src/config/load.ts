import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { MkportableError, systemReason } from '../errors.js';
import type { PortableServiceOptions } from './options.js';
import { normalizeOptions } from './settings.js';
import { resolveSelfImports } from './self-import.js';

export const CONFIG_NAMES = ['portable.config.ts', 'portable.config.mts', 'portable.config.js', 'portable.config.mjs', 'portable.config.json'];

/** A config file path, or the config inside a directory (the first of CONFIG_NAMES that exists). */
export async function findConfig(target: string): Promise<string> {
  const st = await fs.stat(target).catch(() => null);
  if (!st) throw new MkportableError('CONFIG_NOT_FOUND', `${target}: no such file or directory`, target);
  if (st.isFile()) return target;
  for (const name of CONFIG_NAMES) {
    const candidate = path.join(target, name);
    if (await fs.stat(candidate).then((s) => s.isFile(), () => false)) return candidate;
  }
  throw new MkportableError('CONFIG_NOT_FOUND', `${target}: no ${CONFIG_NAMES.join(', ')} in this folder`, target);
}

async function importModule(file: string): Promise<unknown> {
  const url = pathToFileURL(path.resolve(file)).href;
  resolveSelfImports();
  if (/\.m?ts$/.test(file)) {
    // tsx compiles TypeScript configs on the fly, so users need no build step.
    const { tsImport } = await import('tsx/esm/api');
    return tsImport(url, import.meta.url);
  }
  return import(url);
}

/** Load and validate a config file; relative unit paths are later taken from its folder. */
export async function loadConfigFile(file: string): Promise<Partial<PortableServiceOptions>> {
  let raw: unknown;
  if (file.endsWith('.json')) {
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (e) {
      throw new MkportableError('CONFIG_NOT_FOUND', `${file}: cannot read: ${systemReason(e)}`, file);
    }
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new MkportableError('CONFIG_INVALID', `${file}: invalid JSON: ${(e as Error).message}`, file);
    }
  } else if (/\.(m?ts|m?js)$/.test(file)) {
    let mod: { default?: unknown };
    try {
      mod = (await importModule(file)) as { default?: unknown };
    } catch (e) {
      throw new MkportableError('CONFIG_INVALID', `${file}: cannot load: ${(e as Error).message.split('\n')[0]}`, file);
    }
    raw = mod.default;
    // A .ts file outside an ESM package is compiled as CommonJS: its exports object then holds `default`.
    if (raw && typeof raw === 'object' && 'default' in raw && Object.keys(raw).every((k) => k === 'default' || k === '__esModule')) {
      raw = (raw as { default: unknown }).default;
    }
    if (typeof raw === 'function') raw = await (raw as () => unknown)();
    if (raw === undefined) throw new MkportableError('CONFIG_INVALID', `${file}: has no default export`, file);
  } else {
    throw new MkportableError('CONFIG_INVALID', `${file}: config files end in .ts, .mts, .js, .mjs or .json`, file);
  }
  const options = normalizeOptions(file, raw);
  options.baseDir = path.dirname(path.resolve(file));
  return options;
}
