import path from 'node:path/posix';
import { MkportableError, type BuildWarning, systemReason } from '../errors.js';
import type { Source, SourceStat } from '../sources/source.js';
import { type Entry, type ImageTree, normalizeImagePath, parentOf } from '../plan/tree.js';
import { sourceXattrs } from '../sources/xattrs.js';
import { addEntry, ensureDirs } from '../plan/add.js';
import { isElfMagic, readElfInfo, type ElfInfo } from '../formats/elf.js';
import {
  expandOrigin, findLibrary, ldCacheEntries, loaderFor, loaderForLibrary, loaderProvides, readLdSoConf,
  LD_SO_CACHE, type LdCacheModel, type Loader,
} from './ldso.js';
import { parseLdCache, serializeLdCache, type LdCacheEntry } from '../formats/ldcache.js';
import { treeSource } from '../plan/tree-source.js';
import { findInPath, MAX_SYMLINKS, realpathIn } from '../sources/realpath.js';
import { parseShebang, envProgram } from './shebang.js';
import { SYSTEMD_DEFAULT_PATH } from '../systemd/portabled.js';
import { createNixState, nixClosure, storePathOf, type NixState } from './nix.js';

/** Why a path is being added: shown in the BuildResult, and whether a missing dependency is fatal. */
export interface Why {
  reason: string;
  /** Fatal when a dependency is missing (unit programs); otherwise a warning (files inside contents folders). */
  strict: boolean;
  /** PATH used for `#!/usr/bin/env NAME`. */
  envPath: readonly string[];
  /** A unit's program needs it (and so everything it needs): `exclude` may not leave it out. */
  forUnit?: boolean;
}

export interface Closure {
  source: Source;
  tree: ImageTree;
  mtime: number;
  warnings: BuildWarning[];
  /** Paths (real, inside the source) already analysed, with the strictness they were analysed with. */
  analysed: Map<string, boolean>;
  visitedDirs: Set<string>;
  ldSoConf?: Promise<string[]>;
  /**
   * How glibc's cache is counted: `build`, the cache this build writes for the image (addLoaderConfig);
   * `image`, the cache file the source already has (inspect).
   */
  ldCache: 'build' | 'image';
  /** Where `image` reads the cache file: the source by default; an extension's base, whose /etc is the one in use. */
  ldCacheSource?: Source;
  /** Loaders by PT_INTERP (and by ABI for objects without one), read once. */
  loaders: Map<string, Promise<Loader>>;
  /** Loaders that load something in the image: their configuration goes in too. */
  usedLoaders: Set<Loader>;
  cacheFiles: Map<string, Promise<LdCacheModel | undefined>>;
  /**
   * Set when a path inside a Nix store path brings the whole store path and its Nix closure (builds; inspect
   * leaves it unset and follows only what programs need): the store paths added and the bytes scanned.
   */
  nix?: NixState;
  /** `exclude`: image paths left out, with what only they need. */
  exclude?: (path: string) => boolean;
  /** Paths left out by `exclude`, with why they were wanted. */
  excluded: Map<string, string>;
}

export function createClosure(
  source: Source, tree: ImageTree, mtime: number, warnings: BuildWarning[],
  opts: { nixStore?: boolean; ldCache?: 'build' | 'image'; ldCacheSource?: Source; exclude?: (path: string) => boolean } = {},
): Closure {
  const c: Closure = {
    source, tree, mtime, warnings, analysed: new Map(), visitedDirs: new Set(), excluded: new Map(), exclude: opts.exclude,
    ldCache: opts.ldCache ?? 'build', ldCacheSource: opts.ldCacheSource, loaders: new Map(), usedLoaders: new Set(), cacheFiles: new Map(),
  };
  if (opts.nixStore) c.nix = createNixState();
  return c;
}

/** What kind of dependency is missing: inspect reports these as rule names. */
export type MissingRule = 'dangling-symlink' | 'elf-interpreter-missing' | 'library-missing' | 'script-interpreter-missing' | 'store-path-missing';

function fail(c: Closure, why: Why, err: MkportableError, rule: MissingRule): void {
  if (why.strict) throw err;
  c.warnings.push({ code: 'CONTENT_DEPENDENCY_MISSING', message: err.message, subject: err.subject, rule });
}

function origin(c: Closure, p: string): string {
  return `${c.source.name}:${p}`;
}

/** Entries placed by `files` carry this reason prefix: the closure must not put something else there. */
export const FILES_REASON = 'files entry ';

/**
 * Put what the source has at `p` into the image at the same path (owners root, the build's timestamp), with its
 * extended attributes (file capabilities, user.*) when the source has any.
 */
async function addFromStat(c: Closure, p: string, st: SourceStat, why: Why, target?: string): Promise<void> {
  const placed = c.tree.entries.get(p);
  if (placed && placed.reason.startsWith(FILES_REASON) && !(placed.type === 'dir' && st.type === 'dir')) {
    throw new MkportableError('FILES_COLLISION', `files: ${p}: the ${placed.reason} is where ${why.reason} needs ${origin(c, p)}`, p);
  }
  const base = { mode: st.mode, uid: 0, gid: 0, mtime: c.mtime, reason: why.reason, origin: origin(c, p) };
  let entry: Entry;
  switch (st.type) {
    case 'dir':
      entry = { ...base, type: 'dir' };
      break;
    case 'file':
      entry = { ...base, type: 'file', size: st.size, content: { kind: 'source', source: c.source, path: p } };
      break;
    case 'symlink':
      entry = { ...base, mode: 0o777, type: 'symlink', target: target! };
      break;
    case 'char':
    case 'block':
      entry = { ...base, type: st.type, major: st.rdev?.major ?? 0, minor: st.rdev?.minor ?? 0 };
      break;
    default:
      entry = { ...base, type: st.type };
  }
  if (!addEntry(c.tree, p, entry, 'keep') || !c.source.xattrs) return;
  const xattrs = await sourceXattrs(c.source, p);
  if (xattrs) entry.xattrs = xattrs;
}

/**
 * Walk `p` component by component inside the source, the way the kernel would: every symlink met on the way is
 * put into the image as a symlink and the walk continues at its target, so `/lib64/ld-linux-x86-64.so.2` brings
 * `/lib64 -> usr/lib64` and what it points to. Returns the real path and its stat, or null when missing.
 * Nix store paths met on the way (`/nix/store/<hash>-<name>`) are added to `stores`.
 */
async function walkIn(c: Closure, p: string, why: Why, stores: Set<string>): Promise<{ real: string; stat: SourceStat } | null> {
  let done = '/';
  let rest = p.split('/').filter((s) => s !== '' && s !== '.');
  let links = 0;
  let stat: SourceStat | null = await c.source.lstat('/');
  while (rest.length > 0) {
    const comp = rest.shift()!;
    if (comp === '..') {
      done = parentOf(done);
      continue;
    }
    const cand = done === '/' ? `/${comp}` : `${done}/${comp}`;
    stat = await c.source.lstat(cand);
    if (!stat) return null;
    if (c.nix && done === '/nix/store' && storePathOf(cand) === cand) stores.add(cand);
    if (stat.type === 'symlink') {
      if (++links > MAX_SYMLINKS) throw new MkportableError('SYMLINK_LOOP', `${p}: too many levels of symbolic links in ${c.source.name}`, p);
      const target = await c.source.readlink(cand);
      await addFromStat(c, cand, stat, why, target);
      if (target.startsWith('/')) done = '/';
      rest = [...target.split('/').filter((s) => s !== '' && s !== '.'), ...rest];
      continue;
    }
    if (rest.length > 0 && stat.type !== 'dir') return null;
    if (stat.type === 'dir') await addFromStat(c, cand, stat, why);
    done = cand;
  }
  return stat ? { real: done, stat } : null;
}

/**
 * Add a path of the source to the image at the same path, with everything it needs at run time.
 * `recursive` adds a directory's whole subtree. A path inside a Nix store path (or reached through one) brings
 * that whole store path and its Nix closure. Returns the real path, or null when the path does not exist.
 */
export async function addPath(c: Closure, p: string, why: Why, recursive = false): Promise<string | null> {
  const stores = new Set<string>();
  const wanted = normalizeImagePath(p);
  if (leaveOut(c, wanted, why)) return wanted;
  const found = await walkIn(c, wanted, why, stores);
  if (found && found.real !== wanted && leaveOut(c, found.real, why)) return found.real;
  if (found) {
    const { real, stat } = found;
    if (stat.type === 'file') {
      await addFromStat(c, real, stat, why);
      await analyseFile(c, real, stat, why);
    } else if (stat.type === 'dir') {
      if (recursive) await addDirectory(c, real, why);
    } else {
      await addFromStat(c, real, stat, why);
    }
  }
  for (const sp of stores) await addStoreClosure(c, sp, why);
  return found ? found.real : null;
}

/**
 * True when `exclude` leaves the path out (it is then recorded, and the caller treats it as present but adds
 * nothing). What a unit's program needs cannot be left out: that is an error.
 */
function leaveOut(c: Closure, p: string, why: Why): boolean {
  if (!c.exclude?.(p)) return false;
  if (why.strict && why.forUnit) throw new MkportableError('EXCLUDED_NEEDED', `exclude: ${p} is needed (${why.reason}); it cannot be left out`, p);
  if (!c.excluded.has(p)) c.excluded.set(p, why.reason);
  return true;
}

/**
 * A store path goes in whole, with every store path it refers to (its Nix closure), each once; their files are
 * analysed like a `contents` folder's (strict=false). A dangling reference fails as strictly as `why` says.
 */
async function addStoreClosure(c: Closure, storePath: string, why: Why): Promise<void> {
  const nix = c.nix!;
  if (nix.done.has(storePath)) return;
  const paths = await nixClosure(c.source, [storePath], nix.stats, {
    cache: nix.cache,
    onMissing: (err) => fail(c, why, err, 'store-path-missing'),
  });
  const fresh = paths.filter((sp) => !nix.done.has(sp));
  for (const sp of fresh) nix.done.add(sp);
  for (const sp of fresh) {
    const reason = sp === storePath ? `Nix store path (${why.reason})` : `Nix closure of ${storePath}`;
    await addPath(c, sp, { ...why, strict: false, reason }, true);
  }
}

async function addDirectory(c: Closure, dir: string, why: Why): Promise<void> {
  if (c.visitedDirs.has(dir)) return;
  c.visitedDirs.add(dir);
  const inner: Why = { ...why, strict: false };
  for (const name of await c.source.readdir(dir)) {
    const child = dir === '/' ? `/${name}` : `${dir}/${name}`;
    if (leaveOut(c, child, inner)) continue;
    const st = await c.source.lstat(child);
    if (!st) continue;
    if (st.type === 'symlink') {
      const resolved = await addPath(c, child, inner, true);
      if (resolved === null) {
        fail(c, inner, new MkportableError('PATH_NOT_FOUND', `${child}: symlink to '${await c.source.readlink(child)}', which does not exist in ${c.source.name}`, child), 'dangling-symlink');
      }
    } else if (st.type === 'dir') {
      await addFromStat(c, child, st, inner);
      await addDirectory(c, child, inner);
    } else {
      await addFromStat(c, child, st, inner);
      if (st.type === 'file') await analyseFile(c, child, st, inner);
    }
  }
}

/** Look at a file's first bytes: ELF objects bring their interpreter and libraries, scripts their interpreter. */
async function analyseFile(c: Closure, real: string, st: SourceStat, why: Why): Promise<void> {
  const seen = c.analysed.get(real);
  if (seen === true || (seen === false && !why.strict)) return;
  c.analysed.set(real, why.strict);
  await addContentNeeds(c, real, (o, l) => c.source.read(real, o, l), st.size, why);
}

/**
 * What a file's content needs at run time, found in the closure's source: for a file of the source itself, or one
 * placed in the image from elsewhere (`files`). `imagePath` is where the image holds it ($ORIGIN, messages).
 */
export async function addContentNeeds(
  c: Closure, imagePath: string, read: (offset: number, length: number) => Promise<Uint8Array>, size: number, why: Why,
): Promise<void> {
  const real = imagePath;
  if (size < 4) return;
  let head: Uint8Array;
  try {
    head = await read(0, 256);
  } catch (e) {
    throw new MkportableError('SOURCE_READ', `${real}: cannot read: ${systemReason(e)}`, real);
  }
  if (isElfMagic(head)) {
    let info: ElfInfo;
    try {
      info = await readElfInfo(read, size, real);
    } catch (e) {
      if (e instanceof MkportableError && !why.strict) {
        c.warnings.push({ code: 'ELF_UNPARSED', message: e.message, subject: real });
        return;
      }
      throw e;
    }
    await addElfNeeds(c, real, info, [], undefined, why);
  } else if (head[0] === 0x23 && head[1] === 0x21) {
    await addScriptInterpreter(c, real, head, why);
  }
}

async function requirePath(c: Closure, p: string, why: Why, what: string, who: string, rule: MissingRule): Promise<string | null> {
  const real = await addPath(c, p, { ...why, reason: `${what} of ${who}` });
  if (real === null) {
    fail(c, why, new MkportableError('DEPENDENCY_MISSING', `${who} needs ${what} ${p}, which does not exist in ${c.source.name}`, who), rule);
  }
  return real;
}

/**
 * `obj` is the path the object is loaded under: ld.so takes `$ORIGIN` of a library from that path as found, and
 * of the main program from its real path (the caller passes the real path for programs). `loader` is the
 * loader of the process that loads `obj`; undefined for a program (its PT_INTERP decides) or a lone library.
 */
async function addElfNeeds(c: Closure, obj: string, info: ElfInfo, loaderRpath: string[], inherited: Loader | undefined, why: Why): Promise<void> {
  if (info.interpreter) await requirePath(c, info.interpreter, why, 'its ELF interpreter', obj, 'elf-interpreter-missing');
  if (info.needed.length === 0) return;
  const loader = inherited ?? (await loaderOf(c, info));
  c.usedLoaders.add(loader);
  const cache = await cacheModel(c, loader);
  const originDir = path.dirname(obj);
  const lib = loader.lib ?? (await libToken(c.source, info));
  const rpath = info.rpath ? expandOrigin(info.rpath, originDir, lib) : [];
  const runpath = info.runpath ? expandOrigin(info.runpath, originDir, lib) : [];
  let rpathChain: string[], ownRunpath: string[], childChain: string[];
  if (loader.kind === 'musl') {
    // musl searches each object's RUNPATH (or, without one, its RPATH) up the chain of loaders.
    rpathChain = childChain = [...(info.runpath !== undefined ? runpath : rpath), ...loaderRpath];
    ownRunpath = [];
  } else {
    // An object with RUNPATH ignores RPATHs for its own needs; its needs still inherit the loaders' RPATHs.
    const ownChain = [...rpath, ...loaderRpath];
    rpathChain = info.runpath ? [] : ownChain;
    childChain = info.runpath ? loaderRpath : ownChain;
    ownRunpath = runpath;
  }
  for (const name of info.needed) {
    if (loaderProvides(loader, name)) continue;
    let found: string | undefined;
    try {
      found = await findLibrary({
        source: c.source,
        name,
        requester: { class: info.class, machine: info.machine, flags: info.flags, endian: info.endian, rpathChain, runpath: ownRunpath },
        cache,
        systemDirs: loader.systemDirs,
        kind: loader.kind,
      });
    } catch (e) {
      if (e instanceof MkportableError) {
        fail(c, why, new MkportableError('DEPENDENCY_MISSING', `${obj} needs library ${name}: ${e.message}`, obj), 'library-missing');
        continue;
      }
      throw e;
    }
    if (!found) {
      const searched: string[] = [];
      const own = [...(ownRunpath.length ? [] : rpathChain), ...ownRunpath];
      if (own.length) searched.push(`${loader.kind === 'musl' || ownRunpath.length ? 'RUNPATH/RPATH' : 'RPATH'} ${own.join(':')}`);
      if (cache && 'file' in cache) searched.push(`the cache ${loader.cachePath}`);
      const confDirs = cache && 'dirs' in cache ? cache.dirs.slice(0, cache.dirs.length - loader.systemDirs.length) : [];
      if (confDirs.length) searched.push(`the ld.so cache of /etc/ld.so.conf's ${confDirs.join(':')}`);
      searched.push(`the system directories ${loader.systemDirs.join(':') || '(none)'} (${loader.systemDirsFrom})`);
      fail(c, why, new MkportableError('DEPENDENCY_MISSING',
        `${obj} needs library ${name}, which no search path provides in ${c.source.name} (searched ${searched.join(', ')})`, obj), 'library-missing');
      continue;
    }
    const libWhy = { ...why, reason: `library of ${obj}` };
    const real = await addPath(c, found, libWhy);
    if (!real || c.excluded.has(real)) continue;
    // A library passes the RPATH chain on; analyse it once per loader and chain it can be loaded with.
    const key = `${found}\0${loader.interpreter}\0${childChain.join(':')}`;
    if (c.analysed.get(key) === true || (c.analysed.has(key) && !why.strict)) continue;
    c.analysed.set(key, why.strict);
    const st = await c.source.lstat(real);
    if (!st) continue;
    const libInfo = await readElfInfo((o, l) => c.source.read(real, o, l), st.size, real);
    await addElfNeeds(c, found, libInfo, childChain, loader, libWhy);
  }
}

/** The loader that runs a program (its PT_INTERP) or, for a library met on its own, the source's loader for its ABI. */
function loaderOf(c: Closure, info: ElfInfo): Promise<Loader> {
  const key = info.interpreter ?? `\0${info.class}:${info.machine}:${info.flags}:${info.needed.some((n) => n === 'libc.so' || n.startsWith('libc.musl-'))}`;
  let l = c.loaders.get(key);
  if (!l) {
    l = info.interpreter ? loaderFor(c.source, info.interpreter, info) : loaderForLibrary(c.source, info);
    c.loaders.set(key, l);
  }
  return l;
}

/** glibc's cache as the image will have it: the one this build writes, or (inspect) the image's own file. */
async function cacheModel(c: Closure, loader: Loader): Promise<LdCacheModel | undefined> {
  if (loader.kind !== 'glibc' || !loader.cachePath) return undefined;
  if (c.ldCache === 'build') {
    // Only /etc/ld.so.cache is written; a loader built to read another file (Nix's glibc) gets no cache.
    if (loader.cachePath !== LD_SO_CACHE) return undefined;
    c.ldSoConf ??= readLdSoConf(c.source);
    return { dirs: [...(await c.ldSoConf), ...loader.systemDirs] };
  }
  let model = c.cacheFiles.get(loader.cachePath);
  if (!model) {
    model = readCacheFile(c, loader.cachePath);
    c.cacheFiles.set(loader.cachePath, model);
  }
  return model;
}

async function readCacheFile(c: Closure, file: string): Promise<LdCacheModel | undefined> {
  const source = c.ldCacheSource ?? c.source;
  const real = await realpathIn(source, file).catch(() => undefined);
  if (!real || (await source.lstat(real))?.type !== 'file') return undefined;
  try {
    return { file: parseLdCache(await source.readFile(real), file) };
  } catch (e) {
    if (!(e instanceof MkportableError)) throw e;
    // ld.so ignores a cache it cannot use and searches its system directories.
    c.warnings.push({ code: 'LD_CACHE_INVALID', message: `${e.message}; ld.so ignores it`, subject: file });
    return undefined;
  }
}

/** What ld.so substitutes for `$LIB` when its own list is unknown: Debian's multiarch folder when the source has it, else lib64/lib. */
async function libToken(source: Source, info: ElfInfo): Promise<string> {
  const multiarch: Record<number, string> = { 62: 'x86_64-linux-gnu', 183: 'aarch64-linux-gnu', 3: 'i386-linux-gnu' };
  const triple = multiarch[info.machine];
  if (triple && (await source.lstat(`/lib/${triple}`))) return `lib/${triple}`;
  return info.class === 64 ? 'lib64' : 'lib';
}

async function addScriptInterpreter(c: Closure, script: string, head: Uint8Array, why: Why): Promise<void> {
  const shebang = parseShebang(head);
  if (!shebang) return;
  const interp = await requirePath(c, shebang.interpreter, why, 'its interpreter', script, 'script-interpreter-missing');
  if (!interp) return;
  const program = envProgram(shebang);
  if (program === undefined) return;
  if (program.includes('/')) {
    await requirePath(c, program, why, `the program named by ${shebang.interpreter}`, script, 'script-interpreter-missing');
    return;
  }
  const found = await findInPath(c.source, program, why.envPath);
  if (!found) {
    fail(c, why, new MkportableError('DEPENDENCY_MISSING',
      `${script} needs '${program}' (via ${shebang.interpreter}), which is not in PATH=${why.envPath.join(':')} of ${c.source.name}`, script), 'script-interpreter-missing');
    return;
  }
  await addPath(c, found, { ...why, reason: `interpreter of ${script}` });
}

/**
 * What the image's loaders read at start, written for the finished tree (call it after everything else is
 * in): for glibc, /etc/ld.so.cache describing the image's own libraries (never the build host's), with
 * /etc/ld.so.conf and those ld.so.conf.d pieces that name a folder the image has something in; for musl,
 * its path file when the source has one.
 */
export async function addLoaderConfig(c: Closure): Promise<void> {
  const why: Why = { reason: 'runtime linker configuration', strict: false, envPath: SYSTEMD_DEFAULT_PATH };
  const loaders = [...c.usedLoaders];
  for (const l of loaders) if (l.kind === 'musl' && l.pathFile) await addPath(c, l.pathFile, why);
  const glibc = loaders.filter((l) => l.kind === 'glibc' && l.cachePath === LD_SO_CACHE);
  if (glibc.length === 0) return;

  const image = treeSource(c.tree);
  const files: string[] = [];
  const conf = await readLdSoConf(c.source, '/etc/ld.so.conf', files);
  const [top, ...pieces] = files;
  if (top) await addPath(c, top, why);
  for (const piece of pieces) {
    if (await someHasContent(image, await readLdSoConf(c.source, piece))) await addPath(c, piece, why);
  }

  const entries: LdCacheEntry[] = [];
  const seen = new Set<string>();
  for (const l of glibc) {
    for (const e of await ldCacheEntries(image, [...conf, ...l.systemDirs], l.cacheFlags!)) {
      const id = `${e.key}\0${e.value}\0${e.flags}`;
      if (!seen.has(id)) { seen.add(id); entries.push(e); }
    }
  }
  if (c.exclude?.(LD_SO_CACHE)) return; // asked for: the libraries in ld.so.conf folders will then not be found
  const data = serializeLdCache({ entries, generator: 'mkportable', endian: glibc[0].endian });
  ensureDirs(c.tree, '/etc', c.mtime, 'skeleton');
  // A cache the source has describes the source's files, not the image's: ours takes its place.
  c.tree.entries.set(LD_SO_CACHE, {
    type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: c.mtime, reason: 'ld.so cache of the image\'s libraries',
    origin: 'generated', size: data.length, content: { kind: 'bytes', data },
  });
}

async function someHasContent(image: Source, dirs: string[]): Promise<boolean> {
  for (const d of dirs) {
    const real = await realpathIn(image, d).catch(() => undefined);
    if (real && (await image.lstat(real))?.type === 'dir' && (await image.readdir(real)).length > 0) return true;
  }
  return false;
}
