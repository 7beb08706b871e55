/**
 * Which distribution package a file of the source belongs to, read from the source's own package database:
 * dpkg's /var/lib/dpkg/status with info/<package>.list (Debian, Ubuntu) or apk's /lib/apk/db/installed (Alpine).
 * Paths in a database are the ones the package installed, which may differ from the path the file is reached by
 * (/lib/x86_64-linux-gnu/libc.so.6 listed, /usr/lib/... reached on a merged-/usr system): both sides are compared
 * by the real path of their folder inside the source. Nothing of the database goes into the image.
 */
import path from 'node:path';
import { realpathIn } from '../sources/realpath.js';
import type { Source } from '../sources/source.js';

export interface DistroPackage {
  /** How the package manager names it: dpkg qualifies Multi-Arch: same packages with their architecture (`libc6:amd64`). */
  id: string;
  name: string;
  version: string;
  architecture: string;
  manager: 'dpkg' | 'apk';
  /** Source package (dpkg Source:, apk o:), when it differs from the name. */
  sourcePackage?: string;
  /** Declared license, when the database records one (apk L:). */
  license?: string;
}

export interface PackageDb {
  manager: 'dpkg' | 'apk';
  packages: DistroPackage[];
  /** The package that installed the file at this path of the source, if any. */
  owner(p: string): Promise<DistroPackage | undefined>;
}

const decoder = new TextDecoder();

async function readText(source: Source, p: string): Promise<string | undefined> {
  const st = await source.lstat(p).catch(() => null);
  if (!st || st.type !== 'file') return undefined;
  return decoder.decode(await source.readFile(p));
}

/** RFC 822-style paragraphs (dpkg status): field → value, continuation lines joined. */
function paragraphs(text: string): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields: Record<string, string> = {};
    let last = '';
    for (const line of block.split('\n')) {
      if (/^[ \t]/.test(line)) {
        if (last) fields[last] += `\n${line.trim()}`;
        continue;
      }
      const i = line.indexOf(':');
      if (i <= 0) continue;
      last = line.slice(0, i);
      fields[last] = line.slice(i + 1).trim();
    }
    if (Object.keys(fields).length) out.push(fields);
  }
  return out;
}

/** Paths to candidate (package, listed path) by file name: only same-named entries need their folders resolved. */
type ByName = Map<string, { dir: string; pkg: DistroPackage }[]>;

/**
 * What a database lists, as it is read line by line: candidates by file name (only the names asked for, when
 * the caller knows which it will look up) and every folder that holds a listed path. Databases list folders too
 * (dpkg's /lib, /usr/bin); a folder is nobody's file.
 */
interface Listing {
  byName: ByName;
  dirs: Set<string>;
  add(listed: string, pkg: DistroPackage): void;
}

function createListing(names: ReadonlySet<string> | undefined): Listing {
  const byName: ByName = new Map();
  const dirs = new Set<string>();
  return {
    byName,
    dirs,
    add(listed, pkg) {
      if (!listed.startsWith('/') || listed === '/') return;
      const cut = listed.lastIndexOf('/');
      const dir = cut === 0 ? '/' : listed.slice(0, cut);
      dirs.add(dir);
      const name = listed.slice(cut + 1);
      if (names && !names.has(name)) return;
      let l = byName.get(name);
      if (!l) byName.set(name, (l = []));
      l.push({ dir, pkg });
    },
  };
}

function makeOwner(source: Source, { byName, dirs }: Listing): PackageDb['owner'] {
  for (const d of [...dirs]) {
    for (let p = path.posix.dirname(d); p !== '/' && !dirs.has(p); p = path.posix.dirname(p)) dirs.add(p);
  }
  for (const [name, list] of byName) {
    const files = list.filter((c) => !dirs.has(c.dir === '/' ? `/${name}` : `${c.dir}/${name}`));
    if (files.length) byName.set(name, files);
    else byName.delete(name);
  }
  // A folder's real path from its parent's (memoized): one lstat per folder, not one per component of each.
  const real = new Map<string, Promise<string | undefined>>([['/', Promise.resolve('/')]]);
  const realDir = (d: string): Promise<string | undefined> => {
    let r = real.get(d);
    if (!r) {
      real.set(d, (r = (async () => {
        const parent = await realDir(path.posix.dirname(d));
        if (parent === undefined) return undefined;
        const here = `${parent === '/' ? '' : parent}/${path.posix.basename(d)}`;
        const st = await source.lstat(here);
        if (st?.type === 'dir') return here;
        return st?.type === 'symlink' ? realpathIn(source, here) : undefined;
      })().catch(() => undefined)));
    }
    return r;
  };
  return async (p: string) => {
    const candidates = byName.get(path.posix.basename(p));
    if (!candidates) return undefined;
    const exact = candidates.find((c) => c.dir === path.posix.dirname(p));
    if (exact) return exact.pkg;
    const want = await realDir(path.posix.dirname(p));
    if (!want) return undefined;
    for (const c of candidates) if ((await realDir(c.dir)) === want) return c.pkg;
    return undefined;
  };
}

async function readDpkg(source: Source, status: string, names: ReadonlySet<string> | undefined): Promise<PackageDb> {
  const packages: DistroPackage[] = [];
  const listing = createListing(names);
  const installed = paragraphs(status).filter((f) => f.Package && /\binstalled$/.test(f.Status ?? '') && !/^(deinstall|purge) /.test(f.Status ?? ''));
  const lists: (string | undefined)[] = [];
  for (const f of installed) {
    const arch = f.Architecture ?? '';
    const id = f['Multi-Arch'] === 'same' ? `${f.Package}:${arch}` : f.Package;
    const src = f.Source?.replace(/\s*\(.*\)$/, '');
    packages.push({ id, name: f.Package, version: f.Version ?? '', architecture: arch, manager: 'dpkg', ...(src && src !== f.Package ? { sourcePackage: src } : {}) });
  }
  // A few hundred small files: read them a batch at a time.
  for (let i = 0; i < packages.length; i += 64) {
    lists.push(...(await Promise.all(packages.slice(i, i + 64).map(async (p) =>
      (await readText(source, `/var/lib/dpkg/info/${p.name}:${p.architecture}.list`)) ?? readText(source, `/var/lib/dpkg/info/${p.name}.list`)))));
  }
  packages.forEach((pkg, i) => {
    for (const line of lists[i]?.split('\n') ?? []) if (line) listing.add(line, pkg);
  });
  return { manager: 'dpkg', packages, owner: makeOwner(source, listing) };
}

/** apk's installed database: blocks of "X:value" lines; F: a folder (no leading '/'), R: a file in it. */
function readApk(source: Source, text: string, names: ReadonlySet<string> | undefined): PackageDb {
  const packages: DistroPackage[] = [];
  const listing = createListing(names);
  for (const block of text.split(/\n\s*\n/)) {
    let pkg: DistroPackage | undefined;
    let dir = '';
    for (const line of block.split('\n')) {
      const key = line.slice(0, 2);
      const value = line.slice(2);
      if (key === 'P:') {
        pkg = { id: value, name: value, version: '', architecture: '', manager: 'apk' };
        packages.push(pkg);
      } else if (!pkg) continue;
      else if (key === 'V:') pkg.version = value;
      else if (key === 'A:') pkg.architecture = value;
      else if (key === 'L:' && value) pkg.license = value;
      else if (key === 'o:' && value && value !== pkg.name) pkg.sourcePackage = value;
      else if (key === 'F:') dir = value;
      else if (key === 'R:') listing.add(`/${dir ? `${dir}/` : ''}${value}`, pkg);
    }
  }
  return { manager: 'apk', packages, owner: makeOwner(source, listing) };
}

/**
 * The source's package database, or undefined when it has none. With `names`, owner() answers only for paths
 * whose file name is one of them (the rest of the database is not indexed).
 */
export async function readPackageDb(source: Source, names?: ReadonlySet<string>): Promise<PackageDb | undefined> {
  const status = await readText(source, '/var/lib/dpkg/status');
  if (status !== undefined) return readDpkg(source, status, names);
  const apk = await readText(source, '/lib/apk/db/installed');
  if (apk !== undefined) return readApk(source, apk, names);
  return undefined;
}
