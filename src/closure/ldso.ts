/**
 * Where the image's own dynamic loader would find a DT_NEEDED library, answered by looking at a Source
 * instead of running anything. The loader is the program's PT_INTERP as the image ships it: glibc's ld.so
 * (its system directories read out of the binary, its cache /etc/ld.so.cache) or musl's (its path file or
 * built-in default). Deliberately not modelled:
 *  - LD_LIBRARY_PATH / LD_PRELOAD: a portable service's environment is not the build host's;
 *  - glibc-hwcaps/<level>/ and legacy hwcap subdirectories (tls/, x86_64/, haswell/ ...): the choice
 *    depends on the CPU the image will run on; we take the baseline library in the directory itself;
 *  - DF_1_NODEFLIB, which would skip the cache and the system directories.
 */
import path from 'node:path/posix';
import { MkportableError } from '../errors.js';
import { elfHeaderFacts, ET_DYN, isElfMagic, readElfInfo, readGlibcLoaderConfig, readMuslLoaderConfig, type ElfRead } from '../formats/elf.js';
import { ldCacheFlags, lookupLdCache, type LdCache, type LdCacheEntry } from '../formats/ldcache.js';
import type { Source } from '../sources/source.js';
import { realpathIn } from '../sources/realpath.js';

// ---------------------------------------------------------------------------------------------------
// ld.so.conf

/**
 * Directories named by an ld.so.conf, in order, with `include` globs expanded (sorted, like glob(3)).
 * `included` collects the files read, as named (the top file first).
 * Modern ldconfig takes a whole line as one directory; the older "separated by whitespace, ':' or ','"
 * syntax is accepted too because no real directory list relies on those characters being in a name.
 */
export async function readLdSoConf(source: Source, file = '/etc/ld.so.conf', included?: string[]): Promise<string[]> {
  const dirs: string[] = [];
  // Files being read right now: an include of one of them is a cycle, which ldconfig itself would
  // recurse on forever; we skip it. Re-including a finished file is allowed (its dirs dedupe below).
  const active = new Set<string>();

  const parse = async (conf: string): Promise<void> => {
    const real = await realpathIn(source, conf);
    if (!real || active.has(real) || (await source.lstat(real))?.type !== 'file') return;
    active.add(real);
    if (included && !included.includes(conf)) included.push(conf);
    try {
      const text = new TextDecoder().decode(await source.readFile(real));
      for (const raw of text.split('\n')) {
        const line = raw.replace(/#.*/, '').trim();
        if (!line) continue;
        const words = line.split(/[ \t]+/);
        if (words[0] === 'include' && words.length > 1) {
          for (const pattern of words.slice(1)) {
            const abs = pattern.startsWith('/') ? pattern : path.join(path.dirname(conf), pattern);
            for (const match of await globIn(source, abs)) await parse(match);
          }
        } else if (words[0].toLowerCase() === 'hwcap' && words.length > 1) {
          continue; // obsolete; ldconfig ignores it with a warning
        } else {
          for (const dir of line.split(/[\s:,]+/)) {
            // ldconfig warns about relative paths; the loader could only use them relative to its cwd.
            if (dir.startsWith('/')) dirs.push(stripTrailingSlashes(dir));
          }
        }
      }
    } finally {
      active.delete(real);
    }
  };

  await parse(file);
  return [...new Set(dirs)];
}

/** glob(3) for the patterns ld.so.conf uses: `*`, `?` and `[...]` in any component, no dotfiles. */
async function globIn(source: Source, pattern: string): Promise<string[]> {
  let bases = ['/'];
  for (const part of pattern.split('/').filter((c) => c !== '')) {
    const next: string[] = [];
    for (const base of bases) {
      if (!/[*?[]/.test(part)) {
        next.push(path.join(base, part));
        continue;
      }
      const dir = await realpathIn(source, base);
      if (!dir || (await source.lstat(dir))?.type !== 'dir') continue;
      const re = globToRegExp(part);
      for (const entry of await source.readdir(dir)) {
        if (re.test(entry)) next.push(path.join(base, entry));
      }
    }
    bases = next;
  }
  // Literal components are not checked here; the caller skips names that do not resolve.
  return bases.sort();
}

function globToRegExp(glob: string): RegExp {
  let re = glob.startsWith('.') ? '' : '(?!\\.)';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close < 0) { re += '\\['; continue; }
      let body = glob.slice(i + 1, close);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      re += '[' + body.replace(/\\/g, '\\\\') + ']';
      i = close;
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp('^' + re + '$');
}

// ---------------------------------------------------------------------------------------------------
// search path pieces

/**
 * The system directories to assume when the loader's own list cannot be read (its file is missing or
 * unreadable): the union of the distro-neutral entries, covering the Fedora (/lib64, /usr/lib64) and the
 * Debian (/lib, /usr/lib) families. On Debian this may find a library in /usr/lib64 that the real loader
 * would not look for there; messages say when this guess was used.
 */
export function defaultLibDirs(elfClass: 32 | 64, machine: number): string[] {
  void machine;
  return elfClass === 64 ? ['/lib64', '/usr/lib64', '/lib', '/usr/lib'] : ['/lib', '/usr/lib'];
}

/**
 * Splits a DT_RPATH/DT_RUNPATH value and substitutes dynamic string tokens the way ld.so does.
 *
 * `originDir` is what $ORIGIN becomes. glibc takes it from the path the object was *opened as*: for the
 * main program that is /proc/self/exe (fully resolved), for a library the search directory plus the
 * DT_NEEDED name, with no symlink resolution. Callers pass dirname(realpathIn(exe)) for executables and
 * dirname(findLibrary(...)) for libraries (findLibrary already returns a physical directory).
 *
 * `lib` is $LIB: "lib64" on Fedora-style glibc, "lib/x86_64-linux-gnu" (the multiarch dir) on Debian.
 * When undefined, entries using $LIB are dropped, like entries using $PLATFORM always are: we cannot
 * know the platform string the target CPU will report. Unknown `$NAME`s stay literal, as in glibc.
 * Empty entries (glibc: the current directory) are dropped; other relative entries are taken from "/",
 * the working directory services start in.
 */
export function expandOrigin(list: string, originDir: string, lib?: string): string[] {
  const out: string[] = [];
  for (const entry of list.split(':')) {
    if (entry === '') continue;
    const expanded = substitute(entry, originDir, lib);
    if (expanded === undefined || expanded === '') continue;
    const abs = expanded.startsWith('/') ? expanded : '/' + expanded;
    out.push(stripTrailingSlashes(abs.replace(/\/{2,}/g, '/')));
  }
  return [...new Set(out)];
}

function substitute(entry: string, originDir: string, lib: string | undefined): string | undefined {
  let out = '';
  for (let i = 0; i < entry.length; i++) {
    if (entry[i] !== '$') { out += entry[i]; continue; }
    const m = /^\{([A-Za-z0-9_]+)\}|^([A-Za-z0-9_]+)/.exec(entry.slice(i + 1));
    const token = m?.[1] ?? m?.[2];
    const value = token === 'ORIGIN' ? originDir : token === 'LIB' ? lib ?? null : token === 'PLATFORM' ? null : undefined;
    if (value === undefined) { out += '$'; continue; }
    if (value === null) return undefined;
    out += value;
    i += m![0].length;
  }
  return out;
}

const stripTrailingSlashes = (p: string) => (p.length > 1 ? p.replace(/\/+$/, '') || '/' : p);


// ---------------------------------------------------------------------------------------------------
// the loader

/** Where glibc's loader looks for its cache unless its build says otherwise; the cache mkportable writes. */
export const LD_SO_CACHE = '/etc/ld.so.cache';

export interface Loader {
  kind: 'glibc' | 'musl';
  /** The interpreter as programs name it (PT_INTERP); what musl derives its path file's folder from. */
  interpreter: string;
  /** Searched after RPATH/RUNPATH (and, for glibc, the cache), in order. */
  systemDirs: string[];
  /** Where systemDirs come from, for messages: "ld.so's built-in list", a path file, an assumption. */
  systemDirsFrom: string;
  /** glibc: the loader's DT_SONAME (libc's DT_NEEDED "ld-linux-x86-64.so.2" is the loader itself). */
  soname?: string;
  /** glibc: what $LIB becomes (the first system directory, i.e. its slibdir, without the leading /). */
  lib?: string;
  /** glibc: the cache file it reads. */
  cachePath?: string;
  /** glibc: the cache entry flags this loader accepts besides FLAG_ELF (ldCacheFlags of its ABI). */
  cacheFlags?: number;
  /** glibc: the loader's byte order, which its cache file is written in. */
  endian?: 'le' | 'be';
  /** musl: the path file it reads at start, whether or not the source has one. */
  pathFile?: string;
}

const MUSL_INTERP = /^ld-musl-([^/]+)\.so\.1$/;
/** musl's built-in search path (ldso/dynlink.c), for a loader whose own copy cannot be read. */
const MUSL_DEFAULT_PATH = ['/lib', '/usr/local/lib', '/usr/lib'];

/** Reads a Source file the way the ELF readers want it. */
const reader = (source: Source, p: string): ElfRead => (o, l) => source.read(p, o, l);

/**
 * The loader a program names in PT_INTERP, as the source ships it. `requester` stands in for the loader's
 * own ELF header when the loader's file cannot be read.
 */
export async function loaderFor(
  source: Source, interpreter: string, requester: { class: 32 | 64; machine: number; flags: number; endian?: 'le' | 'be' },
): Promise<Loader> {
  const real = await realpathIn(source, interpreter).catch(() => undefined);
  const st = real ? await source.lstat(real) : null;
  const readable = real && st?.type === 'file' ? real : undefined;
  const musl = MUSL_INTERP.exec(path.basename(interpreter));
  if (musl) return muslLoader(source, interpreter, musl[1], readable, st?.size ?? 0);

  const assumed = (why: string): Loader => ({
    kind: 'glibc', interpreter, systemDirs: defaultLibDirs(requester.class, requester.machine),
    systemDirsFrom: `assumed (${why})`, cachePath: LD_SO_CACHE, cacheFlags: ldCacheFlags(requester), endian: requester.endian,
  });
  if (!readable) return assumed(`${interpreter} is not in ${source.name}`);
  const size = st!.size;
  const config = await readGlibcLoaderConfig(reader(source, readable), size).catch(() => undefined);
  if (!config?.systemDirs) return assumed(`no system directories found in ${interpreter}`);
  const facts = elfHeaderFacts(await source.read(readable, 0, 64));
  const info = await readElfInfo(reader(source, readable), size, readable).catch(() => undefined);
  return {
    kind: 'glibc', interpreter, systemDirs: config.systemDirs,
    systemDirsFrom: `${interpreter}'s built-in list${config.confirmed ? '' : ' (found without its length table)'}`,
    soname: info?.soname, lib: config.systemDirs[0].slice(1) || undefined,
    cachePath: config.cachePath ?? LD_SO_CACHE, cacheFlags: ldCacheFlags(facts ?? requester), endian: facts?.endian ?? requester.endian,
  };
}

async function muslLoader(source: Source, interpreter: string, arch: string, real: string | undefined, size: number): Promise<Loader> {
  const config = real ? await readMuslLoaderConfig(reader(source, real), size).catch(() => undefined) : undefined;
  // musl takes the folder above the loader's folder as prefix: /lib/ld-musl-x.so.1 reads /etc/ld-musl-x.path,
  // /usr/lib/ld-musl-x.so.1 reads /usr/etc/ld-musl-x.path (ldso/dynlink.c, load_library).
  const slashes = [...interpreter.matchAll(/\//g)].map((m) => m.index!);
  const prefix = slashes.length >= 2 ? interpreter.slice(0, slashes[slashes.length - 2]) : '';
  const pathFile = prefix + (config?.pathFile ?? `/etc/ld-musl-${arch}.path`);
  const base: Loader = { kind: 'musl', interpreter, pathFile, systemDirs: [], systemDirsFrom: '' };
  const file = await realpathIn(source, pathFile).catch(() => undefined);
  const st = file ? await source.lstat(file) : null;
  if (file && st) {
    // A path file that exists but cannot be read leaves musl with an empty search path.
    const text = st.type === 'file' ? Buffer.from(await source.readFile(file)).toString('latin1') : '';
    const dirs = text.split(/[:\n]/).filter((d) => d !== '').map((d) => (d.startsWith('/') ? d : '/' + d));
    return { ...base, systemDirs: [...new Set(dirs.map(stripTrailingSlashes))], systemDirsFrom: pathFile };
  }
  const defaults = config?.defaultPath ?? MUSL_DEFAULT_PATH;
  return { ...base, systemDirs: defaults, systemDirsFrom: `musl's built-in default (no ${pathFile})` };
}

/** The usual PT_INTERP of each ABI, to pick the loader for an object that names none (a library). */
function usualInterpreters(elf: { class: 32 | 64; machine: number; flags: number; endian?: 'le' | 'be' }): { glibc?: string; musl?: string } {
  const hf = (elf.flags & 0x400) !== 0;
  const le = elf.endian !== 'be';
  const table: Record<number, [string | undefined, string | undefined]> = {
    62: elf.class === 64 ? ['/lib64/ld-linux-x86-64.so.2', 'x86_64'] : ['/libx32/ld-linux-x32.so.2', 'x32'],
    3: ['/lib/ld-linux.so.2', 'i386'],
    183: ['/lib/ld-linux-aarch64.so.1', 'aarch64'],
    40: [hf ? '/lib/ld-linux-armhf.so.3' : '/lib/ld-linux.so.3', hf ? 'armhf' : 'arm'],
    21: [le ? '/lib64/ld64.so.2' : '/lib64/ld64.so.1', le ? 'powerpc64le' : 'powerpc64'],
    22: ['/lib/ld64.so.1', 's390x'],
    243: ['/lib/ld-linux-riscv64-lp64d.so.1', 'riscv64'],
  };
  const [glibc, musl] = table[elf.machine] ?? [undefined, undefined];
  return { glibc, musl: musl && `/lib/ld-musl-${musl}.so.1` };
}

/**
 * The loader for an object with no PT_INTERP of its own (a library in `contents`): musl's when it links
 * musl's libc, else the source's glibc loader for its ABI, else musl's if only that one is there.
 */
export async function loaderForLibrary(source: Source, elf: { class: 32 | 64; machine: number; flags: number; endian?: 'le' | 'be'; needed: string[] }): Promise<Loader> {
  const usual = usualInterpreters(elf);
  const exists = async (p: string | undefined) => p !== undefined && (await realpathIn(source, p).catch(() => undefined)) !== undefined;
  const linksMusl = elf.needed.some((n) => n === 'libc.so' || n.startsWith('libc.musl-'));
  if (usual.musl && (linksMusl || (!(await exists(usual.glibc)) && (await exists(usual.musl))))) return loaderFor(source, usual.musl, elf);
  return loaderFor(source, usual.glibc ?? '/lib/ld.so', elf);
}

/** True when `name` is answered by the loader itself, with no file searched. */
export function loaderProvides(loader: Loader, name: string): boolean {
  // musl is libc, libpthread, librt, libm, libdl, libutil and libxnet in one (ldso/dynlink.c, "reserved").
  if (loader.kind === 'musl') return /^lib(c|pthread|rt|m|dl|util|xnet)\./.test(name);
  return name === loader.soname;
}

// ---------------------------------------------------------------------------------------------------
// glibc's cache

/** ldconfig's idea of a library's file name (_dl_is_dso): "lib…" or "ld-…" with ".so" in it. */
export const looksLikeLibrary = (name: string) => (name.startsWith('lib') || name.startsWith('ld-')) && name.includes('.so');

/**
 * How glibc's cache is taken into account: `dirs`, the cache mkportable writes for the image (every
 * library file of these folders, see ldCacheEntries); `file`, a cache the image already carries.
 */
export type LdCacheModel = { dirs: string[] } | { file: LdCache };

/**
 * The entries of the cache mkportable writes: for each folder in order (a folder met again under another
 * name is skipped), every name that looks like a library and is an ELF shared object of the ABI `flags`
 * names, keyed by its own name and pointing at its physical folder. That is ldconfig's set plus the
 * other names a library file has (e.g. "libz.so.1.2.13"), which only makes more names resolvable,
 * exactly the ones the closure's search (findLibrary with `{ dirs }`) says are.
 */
export async function ldCacheEntries(source: Source, dirs: string[], flags: number): Promise<LdCacheEntry[]> {
  const entries: LdCacheEntry[] = [];
  const seen = new Set<string>();
  for (const dir of dirs) {
    const real = await realpathIn(source, dir).catch(() => undefined);
    if (!real || seen.has(real) || (await source.lstat(real))?.type !== 'dir') continue;
    seen.add(real);
    for (const name of (await source.readdir(real)).sort()) {
      if (!looksLikeLibrary(name)) continue;
      const candidate = path.join(real, name);
      if ((await cacheCandidate(source, candidate)) === flags) entries.push({ key: name, value: candidate, flags });
    }
  }
  return entries;
}

/** The cache flags of `candidate` when it is an ELF shared object ldconfig would list, else undefined. */
async function cacheCandidate(source: Source, candidate: string): Promise<number | undefined> {
  const target = await realpathIn(source, candidate).catch(() => undefined);
  if (!target || (await source.lstat(target))?.type !== 'file') return undefined;
  const facts = elfHeaderFacts(await source.read(target, 0, 64));
  return facts && facts.type === ET_DYN ? ldCacheFlags(facts) : undefined;
}

// ---------------------------------------------------------------------------------------------------
// lookup

export interface LibraryRequester {
  class: 32 | 64;
  machine: number;
  /** e_flags of the program: the float ABI on ARM and RISC-V, which glibc's cache entries carry. */
  flags?: number;
  /** When given, a candidate of the other byte order is an error, as for ld.so ("ELF file data encoding"). */
  endian?: 'le' | 'be';
  /**
   * glibc: expanded DT_RPATH dirs of the requester, then of the object that loaded it, and so on up to the
   * main program, skipping objects that have a DT_RUNPATH (glibc ignores DT_RPATH in those).
   * Ignored when `runpath` is non-empty; a requester whose RUNPATH expanded to nothing should pass [].
   * musl: each object's DT_RUNPATH, else its DT_RPATH, up the chain of loaders (musl treats them alike).
   */
  rpathChain: string[];
  /** glibc: expanded DT_RUNPATH of the requester only: unlike RPATH it does not apply to indirect needs. */
  runpath: string[];
}

export interface FindLibraryOptions {
  source: Source;
  name: string;
  requester: LibraryRequester;
  /** glibc's cache; none when the image has no cache for this loader. */
  cache?: LdCacheModel;
  /** The loader's system directories (Loader.systemDirs); defaultLibDirs() when not given. */
  systemDirs?: string[];
  /** musl takes the first file it finds, whatever it is; glibc skips files of another class or machine. */
  kind?: 'glibc' | 'musl';
}

/**
 * Path of the library the loader would load for `name`, inside the source: the physical search directory
 * joined with `name` (so a soname symlink stays a symlink), or undefined when nothing suitable exists.
 * glibc's order: a name with "/" is used as is; else DT_RPATH chain (only without DT_RUNPATH), DT_RUNPATH,
 * the cache, the system directories. musl's: the RPATH/RUNPATH chain, then its system directories.
 *
 * Like ld.so, candidates of the other ELF class or another machine are skipped; but a candidate that
 * exists and is not a loadable ELF file at all (a linker script, a directory, a truncated file) makes
 * the real loader fail outright, so that throws ELF_INVALID. Files that are not what a cache entry
 * would list are simply not in the cache mkportable writes, so that pass skips them. musl stops at the
 * first file of the name in any directory: anything unsuitable there is ELF_INVALID.
 */
export async function findLibrary(opts: FindLibraryOptions): Promise<string | undefined> {
  const { source, name, requester } = opts;
  const musl = opts.kind === 'musl';
  const strictness: Strictness = musl ? 'first-wins' : 'skip-other-abi';
  if (name.includes('/')) {
    const abs = name.startsWith('/') ? name : '/' + name;
    const dir = await realpathIn(source, path.dirname(abs));
    return dir ? probeIn(source, dir, path.basename(abs), requester, strictness) : undefined;
  }
  const systemDirs = opts.systemDirs ?? defaultLibDirs(requester.class, requester.machine);
  const seen = new Set<string>();
  const searchDirs = async (dirs: string[], how: Strictness): Promise<string | undefined> => {
    for (const dir of dirs) {
      // A directory reached twice (/lib/x and /usr/lib/x under merged /usr) cannot give a new answer,
      // except that a file the cache pass skipped is fatal when a later directory pass meets it.
      const real = await realpathIn(source, dir);
      const key = `${how}:${real}`;
      if (!real || seen.has(key)) continue;
      seen.add(key);
      const found = await probeIn(source, real, name, requester, how);
      if (found) return found;
    }
    return undefined;
  };
  if (musl) return (await searchDirs(requester.rpathChain, strictness)) ?? searchDirs(systemDirs, strictness);

  const found = (await searchDirs(requester.runpath.length === 0 ? requester.rpathChain : [], strictness))
    ?? (await searchDirs(requester.runpath, strictness));
  if (found) return found;
  if (opts.cache && 'dirs' in opts.cache) {
    const hit = looksLikeLibrary(name) ? await searchDirs(opts.cache.dirs, 'cache-entry') : undefined;
    if (hit) return hit;
  } else if (opts.cache) {
    const value = lookupLdCache(opts.cache.file, name, ldCacheFlags({ class: requester.class, machine: requester.machine, flags: requester.flags ?? 0 }));
    // ld.so opens what the cache names like any candidate; when that fails it goes on to the system dirs.
    const hit = value && value.startsWith('/') ? await findLibrary({ ...opts, name: value }) : undefined;
    if (hit) return hit;
  }
  return searchDirs(systemDirs, strictness);
}

/**
 * skip-other-abi: glibc's open_verify (other class/machine skipped, anything else unloadable is fatal);
 * cache-entry: only what the written cache would list counts; first-wins: musl's path_open.
 */
type Strictness = 'skip-other-abi' | 'cache-entry' | 'first-wins';

/** Checks `realDir/name` the way the loader does; `realDir` is already symlink-free. */
async function probeIn(source: Source, realDir: string, name: string, req: LibraryRequester, how: Strictness): Promise<string | undefined> {
  const candidate = path.join(realDir, name);
  if (how === 'cache-entry') {
    const flags = await cacheCandidate(source, candidate);
    return flags === ldCacheFlags({ class: req.class, machine: req.machine, flags: req.flags ?? 0 }) ? candidate : undefined;
  }
  const target = await realpathIn(source, candidate);
  if (!target) return undefined;
  const bad = (reason: string): never => {
    const who = how === 'first-wins' ? "musl's loader takes the first file of that name" : 'ld.so would stop here instead of searching further';
    throw new MkportableError('ELF_INVALID', `${candidate}: ${reason} (${who})`, candidate);
  };
  const st = await source.lstat(target);
  if (st?.type !== 'file') return bad('not a regular file');
  const head = await source.read(target, 0, 64);
  // ld.so checks the length against its *own* Ehdr size first, so a 52-byte ELF32 stub stops a
  // 64-bit search ("file too short") instead of being skipped as the wrong class.
  if (head.length < (req.class === 64 ? 64 : 52)) return bad('file too short');
  if (!isElfMagic(head)) return bad('not an ELF file');
  const cls = head[4] === 1 ? 32 : head[4] === 2 ? 64 : 0;
  const le = head[5] === 1;
  const machine = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint16(18, le);
  if (how === 'first-wins' && (cls !== req.class || machine !== req.machine)) return bad(`ELF class ${cls || 'unknown'}, machine ${machine}: not the program's`);
  if (cls !== req.class) return undefined; // ld.so: "wrong ELF class", keeps searching
  if (req.endian && (le ? 'le' : 'be') !== req.endian) return bad('wrong ELF data encoding');
  if (machine !== req.machine) return undefined;
  return candidate;
}
