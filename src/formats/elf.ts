/**
 * Just enough of an ELF reader to learn what the dynamic loader will need for a file: its interpreter,
 * DT_NEEDED list and search paths. Reads are random-access and every offset/count is checked against the
 * file size first, so a hostile or truncated file costs at most a few small reads and ends in ELF_INVALID.
 */
import { MkportableError } from '../errors.js';

export interface ElfInfo {
  class: 32 | 64;
  endian: 'le' | 'be';
  machine: number;
  osabi: number;
  /** ET_EXEC = 2, ET_DYN = 3 (shared objects and PIE executables alike). */
  type: number;
  /** e_flags: the ABI variant on ARM (float ABI), RISC-V, MIPS; 0 on x86. */
  flags: number;
  /** PT_INTERP, e.g. "/lib64/ld-linux-x86-64.so.2"; absent for static binaries and most libraries. */
  interpreter?: string;
  /** DT_NEEDED entries in file order (which is the order ld.so loads them in). */
  needed: string[];
  rpath?: string;
  runpath?: string;
  soname?: string;
}

export type ElfRead = (offset: number, length: number) => Promise<Uint8Array>;

export const ET_EXEC = 2;
export const ET_DYN = 3;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const SHT_STRTAB = 3;
const SHT_DYNAMIC = 6;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_SONAME = 14n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;
/** e_phnum value meaning "the real count is in section 0's sh_info" (more than 65534 headers). */
const PN_XNUM = 0xffff;
/** Paths and sonames longer than this are not something ld.so would use; stops scanning a bogus table. */
const MAX_STRING = 4096;

export function isElfMagic(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
}

interface Segment { type: number; offset: number; vaddr: bigint; filesz: number }

/** Field readers for one class/byte order; `word` is 4 or 8 bytes wide, returned as bigint either way. */
class Fields {
  constructor(readonly is64: boolean, readonly le: boolean) {}
  u16(b: Uint8Array, at: number): number { return view(b).getUint16(at, this.le); }
  u32(b: Uint8Array, at: number): number { return view(b).getUint32(at, this.le); }
  word(b: Uint8Array, at: number): bigint {
    return this.is64 ? view(b).getBigUint64(at, this.le) : BigInt(view(b).getUint32(at, this.le));
  }
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

export async function readElfInfo(read: ElfRead, size: number, name: string): Promise<ElfInfo> {
  const fail = (reason: string): never => {
    throw new MkportableError('ELF_INVALID', `${name}: ${reason}`, name);
  };
  /** Reads exactly `length` bytes that the header claims are inside the file. */
  const readIn = async (offset: number, length: number, what: string): Promise<Uint8Array> => {
    if (offset < 0 || length < 0 || offset + length > size) fail(`${what} lies outside the file`);
    const b = await read(offset, length);
    if (b.length < length) fail(`${what} is truncated`);
    return b.length === length ? b : b.subarray(0, length);
  };
  /** File offsets come from 64-bit fields; anything past the file (or past 2^53) is simply invalid. */
  const toOffset = (v: bigint, what: string): number => {
    if (v > BigInt(size)) fail(`${what} lies outside the file`);
    return Number(v);
  };

  if (size < 16) fail('file too short for an ELF header');
  const ident = await readIn(0, 16, 'ELF identification');
  if (!isElfMagic(ident)) fail('not an ELF file');
  const cls = ident[4] === 1 ? 32 : ident[4] === 2 ? 64 : fail(`unknown ELF class ${ident[4]}`);
  const endian = ident[5] === 1 ? 'le' : ident[5] === 2 ? 'be' : fail(`unknown ELF data encoding ${ident[5]}`);
  const is64 = cls === 64;
  const f = new Fields(is64, endian === 'le');

  const ehsize = is64 ? 64 : 52;
  const eh = await readIn(0, ehsize, 'ELF header');
  const type = f.u16(eh, 16);
  const machine = f.u16(eh, 18);
  const phoff = toOffset(f.word(eh, is64 ? 32 : 28), 'program header table');
  const shoffRaw = f.word(eh, is64 ? 40 : 32);
  const phentsize = f.u16(eh, is64 ? 54 : 42);
  let phnum = f.u16(eh, is64 ? 56 : 44);
  const shentsize = f.u16(eh, is64 ? 58 : 46);
  const shnumRaw = f.u16(eh, is64 ? 60 : 48);

  const shSize = is64 ? 64 : 40;
  // Section headers are optional for loading (strip --strip-sections); only used for the .dynstr
  // fallback, and read lazily so a broken table does not fail an otherwise loadable file.
  const sectionHeaders = async (): Promise<Uint8Array[]> => {
    if (shoffRaw === 0n || shentsize !== shSize) return [];
    const shoff = toOffset(shoffRaw, 'section header table');
    let shnum = shnumRaw;
    if (shnum === 0) {
      // With more than 0xff00 sections the real count is stored in section 0's sh_size.
      const s0 = await readIn(shoff, shSize, 'section header 0');
      shnum = toOffset(f.word(s0, is64 ? 32 : 20), 'section count');
    }
    const table = await readIn(shoff, shnum * shSize, 'section header table');
    return Array.from({ length: shnum }, (_, i) => table.subarray(i * shSize, (i + 1) * shSize));
  };

  const phSize = is64 ? 56 : 32;
  const segments: Segment[] = [];
  if (phoff !== 0 && phnum !== 0) {
    // ld.so and the kernel refuse any other entry size, so do we.
    if (phentsize !== phSize) fail(`program header entry size ${phentsize}, expected ${phSize}`);
    if (phnum === PN_XNUM) {
      // More than 0xfffe program headers: the real count is in section 0's sh_info.
      if (shoffRaw === 0n || shentsize !== shSize) fail('PN_XNUM set but section header 0 is missing');
      const s0 = await readIn(toOffset(shoffRaw, 'section header table'), shSize, 'section header 0');
      phnum = f.u32(s0, is64 ? 44 : 28);
    }
    const table = await readIn(phoff, phnum * phSize, 'program header table');
    for (let i = 0; i < phnum; i++) {
      const p = table.subarray(i * phSize, (i + 1) * phSize);
      const ptype = f.u32(p, 0);
      if (ptype !== PT_LOAD && ptype !== PT_DYNAMIC && ptype !== PT_INTERP) continue;
      segments.push({
        type: ptype,
        offset: toOffset(f.word(p, is64 ? 8 : 4), 'segment offset'),
        vaddr: f.word(p, is64 ? 16 : 8),
        filesz: toOffset(f.word(p, is64 ? 32 : 16), 'segment size'),
      });
    }
  }

  const info: ElfInfo = { class: cls, endian, machine, osabi: ident[7], type, flags: f.u32(eh, is64 ? 48 : 36), needed: [] };

  const interp = segments.find((s) => s.type === PT_INTERP);
  if (interp) {
    if (interp.filesz > MAX_STRING) fail('PT_INTERP is implausibly long');
    const bytes = await readIn(interp.offset, interp.filesz, 'PT_INTERP');
    const nul = bytes.indexOf(0);
    info.interpreter = decode(nul >= 0 ? bytes.subarray(0, nul) : bytes);
    if (!info.interpreter) fail('empty PT_INTERP');
  }

  const dyn = segments.find((s) => s.type === PT_DYNAMIC);
  if (!dyn) return info; // statically linked (or not loadable at all): nothing to resolve

  const dynEnt = is64 ? 16 : 8;
  const dynBytes = await readIn(dyn.offset, dyn.filesz - (dyn.filesz % dynEnt), 'dynamic section');
  const entries: Array<[bigint, bigint]> = [];
  for (let at = 0; at + dynEnt <= dynBytes.length; at += dynEnt) {
    const tag = f.word(dynBytes, at);
    if (tag === DT_NULL) break;
    entries.push([tag, f.word(dynBytes, at + dynEnt / 2)]);
  }
  const last = (tag: bigint) => entries.filter(([t]) => t === tag).map(([, v]) => v).pop();
  const wantsStrings = entries.some(([t]) => t === DT_NEEDED || t === DT_SONAME || t === DT_RPATH || t === DT_RUNPATH);
  if (!wantsStrings) return info;

  const strtab = await locateStrtab(last(DT_STRTAB), last(DT_STRSZ));
  const str = async (v: bigint, what: string): Promise<string> => {
    if (v >= BigInt(strtab.size)) fail(`${what} string offset ${v} outside the string table`);
    return readCString(strtab.offset + Number(v), strtab.offset + strtab.size, what);
  };
  for (const [tag, v] of entries) {
    if (tag === DT_NEEDED) info.needed.push(await str(v, 'DT_NEEDED'));
    else if (tag === DT_SONAME) info.soname = await str(v, 'DT_SONAME');
    else if (tag === DT_RPATH) info.rpath = await str(v, 'DT_RPATH');
    else if (tag === DT_RUNPATH) info.runpath = await str(v, 'DT_RUNPATH');
  }
  return info;

  /**
   * DT_STRTAB is a virtual address; the PT_LOAD that contains it tells where those bytes sit in the file.
   * If no segment maps it (odd linkers, damaged headers) the section headers usually still say.
   */
  async function locateStrtab(addr: bigint | undefined, strsz: bigint | undefined): Promise<{ offset: number; size: number }> {
    if (addr !== undefined) {
      for (const s of segments) {
        if (s.type !== PT_LOAD || addr < s.vaddr || addr >= s.vaddr + BigInt(s.filesz)) continue;
        const offset = s.offset + Number(addr - s.vaddr);
        // DT_STRSZ may be missing or lie; never look beyond the segment or the file.
        let limit = Math.min(s.offset + s.filesz - offset, remaining(offset));
        if (strsz !== undefined && strsz < BigInt(limit)) limit = Number(strsz);
        return { offset, size: limit };
      }
    }
    const sections = await sectionHeaders();
    const strtabOf = (sh: Uint8Array) => ({
      offset: toOffset(f.word(sh, is64 ? 24 : 16), '.dynstr offset'),
      size: toOffset(f.word(sh, is64 ? 32 : 20), '.dynstr size'),
    });
    const byAddr = addr !== undefined ? sections.find((sh) => f.u32(sh, 4) === SHT_STRTAB && f.word(sh, is64 ? 16 : 12) === addr) : undefined;
    const dynamic = sections.find((sh) => f.u32(sh, 4) === SHT_DYNAMIC);
    const linked = dynamic ? sections[f.u32(dynamic, is64 ? 40 : 24)] : undefined;
    const found = byAddr ?? (linked && f.u32(linked, 4) === SHT_STRTAB ? linked : undefined);
    if (!found) return fail('cannot locate the dynamic string table');
    const t = strtabOf(found);
    return { offset: t.offset, size: Math.min(t.size, remaining(t.offset)) };
  }

  function remaining(offset: number): number {
    return Math.max(0, size - offset);
  }

  /** Reads a NUL-terminated string in growing chunks, never past `end` nor MAX_STRING bytes. */
  async function readCString(start: number, end: number, what: string): Promise<string> {
    const parts: Uint8Array[] = [];
    let at = start;
    let chunk = 128;
    while (at < end && at - start <= MAX_STRING) {
      const n = Math.min(chunk, end - at);
      const b = await readIn(at, n, what);
      const nul = b.indexOf(0);
      if (nul >= 0) {
        parts.push(b.subarray(0, nul));
        return decode(concat(parts));
      }
      parts.push(b);
      at += n;
      chunk = Math.min(chunk * 2, 2048);
    }
    return fail(`${what} string is not terminated`);
  }
}

const decode = (b: Uint8Array) => new TextDecoder('utf-8').decode(b);

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// the identification header alone

export interface ElfHeaderFacts {
  class: 32 | 64;
  endian: 'le' | 'be';
  type: number;
  machine: number;
  flags: number;
}

/**
 * What the first bytes of a file say (class, byte order, type, machine, e_flags), or undefined when they
 * are not a complete ELF header of a known class and byte order. Needs the file's first 64 bytes.
 */
export function elfHeaderFacts(head: Uint8Array): ElfHeaderFacts | undefined {
  if (!isElfMagic(head) || head.length < 52) return undefined;
  const cls = head[4] === 1 ? 32 : head[4] === 2 ? 64 : undefined;
  const endian = head[5] === 1 ? 'le' : head[5] === 2 ? 'be' : undefined;
  if (!cls || !endian || head.length < (cls === 64 ? 64 : 52)) return undefined;
  const f = new Fields(cls === 64, endian === 'le');
  return { class: cls, endian, type: f.u16(head, 16), machine: f.u16(head, 18), flags: f.u32(head, cls === 64 ? 48 : 36) };
}

// ---------------------------------------------------------------------------------------------------
// what a dynamic loader compiled in

/** Section headers by name, or [] when the file has none (stripped sections) or they do not add up. */
async function sectionsByName(read: ElfRead, size: number): Promise<Map<string, { offset: number; size: number }>> {
  const out = new Map<string, { offset: number; size: number }>();
  const eh = await read(0, 64);
  const facts = elfHeaderFacts(eh);
  if (!facts) return out;
  const is64 = facts.class === 64;
  const f = new Fields(is64, facts.endian === 'le');
  const shoff = f.word(eh, is64 ? 40 : 32);
  const shentsize = f.u16(eh, is64 ? 58 : 46);
  const shSize = is64 ? 64 : 40;
  if (shoff === 0n || shentsize !== shSize || shoff >= BigInt(size)) return out;
  const at = Number(shoff);
  let shnum = f.u16(eh, is64 ? 60 : 48);
  let shstrndx = f.u16(eh, is64 ? 62 : 50);
  const s0 = await read(at, shSize);
  if (s0.length < shSize) return out;
  if (shnum === 0) shnum = Number(f.word(s0, is64 ? 32 : 20));
  if (shstrndx === 0xffff) shstrndx = f.u32(s0, is64 ? 40 : 24);
  if (shnum > 0x10000 || at + shnum * shSize > size || shstrndx >= shnum) return out;
  const table = await read(at, shnum * shSize);
  const entry = (i: number) => {
    const sh = table.subarray(i * shSize, (i + 1) * shSize);
    return { name: f.u32(sh, 0), type: f.u32(sh, 4), offset: f.word(sh, is64 ? 24 : 16), size: f.word(sh, is64 ? 32 : 20) };
  };
  const inFile = (e: { offset: bigint; size: bigint }) => e.offset + e.size <= BigInt(size);
  const names = entry(shstrndx);
  if (!inFile(names) || names.size > 1n << 20n) return out;
  const strtab = await read(Number(names.offset), Number(names.size));
  for (let i = 1; i < shnum; i++) {
    const e = entry(i);
    const SHT_NOBITS = 8;
    if (e.type === SHT_NOBITS || !inFile(e) || e.name >= strtab.length) continue;
    const end = strtab.indexOf(0, e.name);
    const name = decode(strtab.subarray(e.name, end < 0 ? strtab.length : end));
    if (!out.has(name)) out.set(name, { offset: Number(e.offset), size: Number(e.size) });
  }
  return out;
}

/** NUL-terminated strings of a byte range, each with its offset in the range. */
function cStrings(bytes: Uint8Array): Array<{ at: number; text: string }> {
  const out: Array<{ at: number; text: string }> = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0) continue;
    if (i > start) out.push({ at: start, text: latin1(bytes.subarray(start, i)) });
    start = i + 1;
  }
  return out;
}

const latin1 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

/** A loader's read-only data: .rodata when the section headers name it, else the whole (small) file. */
async function loaderRodata(read: ElfRead, size: number): Promise<{ rodata: Uint8Array; facts: ElfHeaderFacts } | undefined> {
  const facts = elfHeaderFacts(await read(0, 64));
  if (!facts) return undefined;
  const sections = await sectionsByName(read, size).catch(() => new Map<string, { offset: number; size: number }>());
  const ro = sections.get('.rodata');
  // Loaders are a few hundred KiB; reading a bigger unsectioned file whole is not worth it.
  if (!ro && size > 16 << 20) return undefined;
  const range = ro ?? { offset: 0, size };
  return { rodata: await read(range.offset, range.size), facts };
}

export interface GlibcLoaderConfig {
  /**
   * The "system search path" glibc's ld.so searches after RPATH/RUNPATH and its cache, in order, without
   * trailing slashes, as `ld.so --help` prints it; undefined when it cannot be found in the file.
   */
  systemDirs?: string[];
  /** True when a length table beside the list confirmed it (always so for the glibc builds we know). */
  confirmed: boolean;
  /** The cache file this ld.so reads (/etc/ld.so.cache, unless the build moved it). */
  cachePath?: string;
}

const DIR_STRING = /^\/[\x21-\x7e]*\/$/;

/**
 * glibc keeps its system directories in ld.so as one constant: the directories, each with a trailing
 * slash, separated by NULs (`system_dirs`, generated from the build's slibdir/libdir and the distro's
 * extra dirs), and next to it a table of their lengths as size_t (`system_dirs_len`). We look for runs
 * of consecutive NUL-terminated "/…/" strings in .rodata and take the longest one whose length table
 * (in the file's word size and byte order) is there too; without a table (a compiler could fold it
 * away), the longest run of at least two. Only runs of lib directories count. The file is never executed.
 */
export async function readGlibcLoaderConfig(read: ElfRead, size: number): Promise<GlibcLoaderConfig> {
  const got = await loaderRodata(read, size);
  if (!got) return { confirmed: false };
  const { rodata, facts } = got;
  const strings = cStrings(rodata);
  const runs: Array<Array<{ at: number; text: string }>> = [];
  let run: Array<{ at: number; text: string }> = [];
  for (const s of strings) {
    const prev = run[run.length - 1];
    const adjacent = prev !== undefined && prev.at + prev.text.length + 1 === s.at;
    if (DIR_STRING.test(s.text) && (adjacent || run.length === 0)) run.push(s);
    else {
      if (run.length) runs.push(run);
      run = DIR_STRING.test(s.text) ? [s] : [];
    }
  }
  if (run.length) runs.push(run);

  const word = facts.class === 64 ? 8 : 4;
  const hasLengthTable = (r: Array<{ text: string }>) => {
    const table = Buffer.alloc(r.length * word);
    r.forEach((s, i) => {
      if (word === 8) facts.endian === 'le' ? table.writeBigUInt64LE(BigInt(s.text.length), i * 8) : table.writeBigUInt64BE(BigInt(s.text.length), i * 8);
      else facts.endian === 'le' ? table.writeUInt32LE(s.text.length, i * 4) : table.writeUInt32BE(s.text.length, i * 4);
    });
    const hay = Buffer.from(rodata.buffer, rodata.byteOffset, rodata.byteLength);
    // A size_t array is aligned to its word size.
    for (let at = hay.indexOf(table); at >= 0; at = hay.indexOf(table, at + 1)) if (at % word === 0) return true;
    return false;
  };
  const longest = (rs: typeof runs) => rs.reduce<(typeof runs)[number] | undefined>((best, r) => (!best || r.length > best.length ? r : best), undefined);
  // Every library directory has "lib" in its name (lib64, libx32, a store path's /lib); other "/…/" constants
  // such as "/proc/self/fd/" do not, and a short one could meet a matching length table by chance.
  const libRuns = runs.filter((r) => r.every((s) => /lib/.test(s.text)));
  const confirmed = longest(libRuns.filter(hasLengthTable));
  // Unconfirmed, a lone "/…lib…/" string is too weak a sign (coreutils has "/.libs/"); glibc always has two
  // dirs (slibdir and libdir) unless they are the same, and then the table is there in every build we know.
  const chosen = confirmed ?? longest(libRuns.filter((r) => r.length >= 2));
  const cachePath = strings.find((s) => /^\/[\x21-\x7e]*\/ld\.so\.cache$/.test(s.text))?.text;
  return {
    systemDirs: chosen?.map((s) => s.text.replace(/\/+$/, '') || '/'),
    confirmed: confirmed !== undefined,
    cachePath,
  };
}

export interface MuslLoaderConfig {
  /** The search path used when no path file exists ("/lib:/usr/local/lib:/usr/lib" in upstream musl). */
  defaultPath?: string[];
  /** The path file name after musl's prefix, e.g. "/etc/ld-musl-x86_64.path". */
  pathFile?: string;
}

/** musl keeps its default search path and the path file's printf template ("%.*s/etc/ld-musl-ARCH.path") as strings. */
export async function readMuslLoaderConfig(read: ElfRead, size: number): Promise<MuslLoaderConfig> {
  const got = await loaderRodata(read, size);
  if (!got) return {};
  const strings = cStrings(got.rodata).map((s) => s.text);
  const pathFile = strings.map((s) => /^%\.\*s(\/[\x21-\x7e]*\/ld-musl-[\x21-\x7e]+\.path)$/.exec(s)?.[1]).find(Boolean);
  const def = strings.find((s) => /^\/[\x21-\x39\x3b-\x7e]*(:\/[\x21-\x39\x3b-\x7e]*)+$/.test(s) && s.split(':').every((d) => /lib/.test(d)));
  return { defaultPath: def?.split(':'), pathFile };
}
