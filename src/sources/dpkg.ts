/**
 * The files a Debian package installed, read from the source's own dpkg database (info/<package>.list, or
 * info/<package>:<arch>.list for Multi-Arch: same packages). Nothing is executed and nothing of the database goes
 * into the image.
 */
import { MkportableError } from '../errors.js';
import type { Source } from './source.js';

const INFO_DIR = '/var/lib/dpkg/info';
/** Debian policy 5.6.1 names, optionally qualified by an architecture. */
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$/;

/** The list file of `name` in the source, or undefined when no such package is installed. */
async function listFile(source: Source, name: string): Promise<string | undefined> {
  const isFile = async (p: string) => (await source.lstat(p).catch(() => null))?.type === 'file';
  if (await isFile(`${INFO_DIR}/${name}.list`)) return `${INFO_DIR}/${name}.list`;
  if (name.includes(':')) return undefined;
  const names = await source.readdir(INFO_DIR).catch(() => [] as string[]);
  const qualified = names.filter((n) => n.startsWith(`${name}:`) && n.endsWith('.list')).sort();
  return qualified.length ? `${INFO_DIR}/${qualified[0]}` : undefined;
}

/**
 * The paths dpkg lists for the package that are not folders of other listed paths, in list order: its files and
 * links (and folders it alone brings, which stay empty). Listed paths may be absent in the source (diversions,
 * files removed since); the caller skips those.
 */
export async function dpkgPackageFiles(source: Source, name: string): Promise<string[]> {
  if (!PACKAGE_NAME.test(name)) {
    throw new MkportableError('CONFIG_INVALID', `packages: '${name}' is not a Debian package name`, name);
  }
  const list = await listFile(source, name);
  if (!list) {
    throw new MkportableError('PACKAGE_NOT_FOUND', `packages: '${name}' is not installed in ${source.name} (no ${INFO_DIR}/${name}.list)`, name);
  }
  const listed = new TextDecoder().decode(await source.readFile(list)).split('\n').filter((p) => p.startsWith('/') && p !== '/' && p !== '/.');
  const parents = new Set<string>();
  for (const p of listed) {
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) parents.add(p.slice(0, i));
  }
  return listed.filter((p) => !parents.has(p));
}
