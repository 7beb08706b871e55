/**
 * Where glibc's dynamic loader would find a DT_NEEDED library, answered by looking at a Source instead of
 * running anything. Deliberately not modelled:
 *  - LD_LIBRARY_PATH / LD_PRELOAD: a portable service's environment is not the build host's;
 *  - glibc-hwcaps/<level>/ and legacy hwcap subdirectories (tls/, x86_64/, haswell/ ...): the choice
 *    depends on the CPU the image will run on; we take the baseline library in the directory itself;
 *  - /etc/ld.so.cache: we read the ld.so.conf it is built from instead, in file order (the cache may be
 *    stale or absent in a source tree), and DF_1_NODEFLIB, which would skip it.
 */
import path from 'node:path/posix';
import { MkportableError } from '../errors.js';
import { isElfMagic } from '../formats/elf.js';
import type { Source } from '../sources/source.js';
import { realpathIn } from '../sources/realpath.js';

// ---------------------------------------------------------------------------------------------------
// ld.so.conf

/**
 * Directories named by an ld.so.conf, in order, with `include` globs expanded (sorted, like glob(3)).
 * Modern ldconfig takes a whole line as one directory; the older "separated by whitespace, ':' or ','"
 * syntax is accepted too because no real directory list relies on those characters being in a name.
 */
export async function readLdSoConf(source: Source, file = '/etc/ld.so.conf'): Promise<string[]> {
  const dirs: string[] = [];
  // Files being read right now: an include of one of them is a cycle, which ldconfig itself would
  // recurse on forever; we skip it. Re-including a finished file is allowed (its dirs dedupe below).
  const active = new Set<string>();

  const parse = async (conf: string): Promise<void> => {
    const real = await realpathIn(source, conf);
    if (!real || active.has(real) || (await source.lstat(real))?.type !== 'file') return;
    active.add(real);
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
 * glibc's built-in "system" directories, searched after RUNPATH and the cache. A build of glibc
 * compiles in its own list (`ld.so --help` prints it): Fedora/RHEL/SUSE use /lib64 and /usr/lib64 on
 * 64-bit, Debian/Ubuntu use /lib/<multiarch>, /usr/lib/<multiarch>, /lib and /usr/lib, and get their
 * multiarch dirs into ld.so.conf as well. Returning the union of the distro-neutral entries covers both
 * families without knowing which glibc the source ships; the cost is that on Debian a library that only
 * sits in /usr/lib64 would be found here although the real loader would not look there. `machine` is
 * part of the signature so x32/multilib special cases can be added without changing callers.
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
// lookup

export interface LibraryRequester {
  class: 32 | 64;
  machine: number;
  /** When given, a candidate of the other byte order is an error, as for ld.so ("ELF file data encoding"). */
  endian?: 'le' | 'be';
  /**
   * Expanded DT_RPATH dirs of the requester, then of the object that loaded it, and so on up to the
   * main program, skipping objects that have a DT_RUNPATH (glibc ignores DT_RPATH in those).
   * Ignored when `runpath` is non-empty; a requester whose RUNPATH expanded to nothing should pass [].
   */
  rpathChain: string[];
  /** Expanded DT_RUNPATH of the requester only: unlike RPATH it does not apply to indirect needs. */
  runpath: string[];
}

export interface FindLibraryOptions {
  source: Source;
  name: string;
  requester: LibraryRequester;
  ldSoConfDirs: string[];
  /** Overrides defaultLibDirs(), e.g. with the list `ld.so --help` prints for the source's glibc. */
  defaultDirs?: string[];
}

/**
 * Path of the library ld.so would load for `name`, inside the source: the physical search directory
 * joined with `name` (so a soname symlink stays a symlink), or undefined when nothing suitable exists.
 * Order: a name with "/" is used as is; else DT_RPATH chain (only without DT_RUNPATH), DT_RUNPATH,
 * ld.so.conf directories, default directories.
 *
 * Like ld.so, candidates of the other ELF class or another machine are skipped; but a candidate that
 * exists and is not a loadable ELF file at all (a linker script, a directory, a truncated file) makes
 * the real loader fail outright, so that throws ELF_INVALID, except in ld.so.conf directories, whose
 * files ld.so only sees through the cache, which ldconfig fills with valid libraries only.
 */
export async function findLibrary(opts: FindLibraryOptions): Promise<string | undefined> {
  const { source, name, requester } = opts;
  if (name.includes('/')) {
    const abs = name.startsWith('/') ? name : '/' + name;
    const dir = await realpathIn(source, path.dirname(abs));
    return dir ? probeIn(source, dir, path.basename(abs), requester, false) : undefined;
  }
  const groups: Array<[string[], boolean]> = [
    [requester.runpath.length === 0 ? requester.rpathChain : [], false],
    [requester.runpath, false],
    [opts.ldSoConfDirs, true],
    [opts.defaultDirs ?? defaultLibDirs(requester.class, requester.machine), false],
  ];
  const seen = new Set<string>();
  for (const [dirs, fromCache] of groups) {
    for (const dir of dirs) {
      // A directory reached twice (/lib/x and /usr/lib/x under merged /usr) cannot give a new answer,
      // except that a file the cache pass skipped is fatal when a later directory pass meets it.
      const real = await realpathIn(source, dir);
      const key = `${fromCache}:${real}`;
      if (!real || seen.has(key)) continue;
      seen.add(key);
      const found = await probeIn(source, real, name, requester, fromCache);
      if (found) return found;
    }
  }
  return undefined;
}

/** Checks `realDir/name` the way ld.so's open_verify() does; `realDir` is already symlink-free. */
async function probeIn(source: Source, realDir: string, name: string, req: LibraryRequester, lenient: boolean): Promise<string | undefined> {
  const candidate = path.join(realDir, name);
  const target = await realpathIn(source, candidate);
  if (!target) return undefined;
  const bad = (reason: string): undefined => {
    if (lenient) return undefined;
    throw new MkportableError('ELF_INVALID', `${candidate}: ${reason} (ld.so would stop here instead of searching further)`, candidate);
  };
  const st = await source.lstat(target);
  if (st?.type !== 'file') return bad('not a regular file');
  const head = await source.read(target, 0, 64);
  // ld.so checks the length against its *own* Ehdr size first, so a 52-byte ELF32 stub stops a
  // 64-bit search ("file too short") instead of being skipped as the wrong class.
  if (head.length < (req.class === 64 ? 64 : 52)) return bad('file too short');
  if (!isElfMagic(head)) return bad('not an ELF file');
  const cls = head[4] === 1 ? 32 : head[4] === 2 ? 64 : 0;
  if (cls !== req.class) return undefined; // ld.so: "wrong ELF class", keeps searching
  const le = head[5] === 1;
  if (req.endian && (le ? 'le' : 'be') !== req.endian) return bad('wrong ELF data encoding');
  const machine = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint16(18, le);
  if (machine !== req.machine) return undefined;
  return candidate;
}
