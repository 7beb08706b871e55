/**
 * glibc's /etc/ld.so.cache, the index ld.so consults for a library name before its system directories.
 * Read and written in the format ldconfig has produced since glibc 2.32 ("glibc-ld.so.cache1.1"):
 *
 *   header (48 bytes): magic "glibc-ld.so.cache" "1.1", nlibs, len_strings (u32), flags (u8: byte order),
 *                      3 bytes padding, extension_offset (u32), 3 × u32 unused
 *   nlibs entries (24 bytes): flags (i32), key, value (u32 string offsets from the header), osversion (u32),
 *                      hwcap (u64)
 *   the string table (NUL-terminated strings)
 *   optionally, at extension_offset (4-aligned): magic 0xeaa42174, count, count × { tag, flags, offset, size }
 *
 * The entries are sorted for the loader's binary search: descending by the loader's name order (runs of
 * digits compare as numbers), equal names by descending flags; the first entry of a name whose flags suit
 * the loader wins. The older "ld.so-1.7.0" layout (with the new one appended) is read too, never written.
 */
import { MkportableError } from '../errors.js';

const MAGIC_NEW = 'glibc-ld.so.cache1.1';
const MAGIC_OLD = 'ld.so-1.7.0';
const HEADER_SIZE = 48;
const ENTRY_SIZE = 24;
const OLD_HEADER_SIZE = 16;
const OLD_ENTRY_SIZE = 12;
const EXTENSION_MAGIC = 0xeaa42174;
const EXTENSION_TAG_GENERATOR = 0;
const ENDIAN_LITTLE = 2;
const ENDIAN_BIG = 3;
/** Bit 62 of hwcap marks an entry for a glibc-hwcaps/<level>/ subdirectory. */
const HWCAP_EXTENSION = 1n << 62n;

export interface LdCacheEntry {
  /** The library name looked up (a DT_NEEDED or dlopen name). */
  key: string;
  /** The file ld.so opens for it. */
  value: string;
  /** FLAG_ELF_LIBC6 (3) with the ABI in bits 8..15, e.g. 0x303 for x86-64 (see ldCacheFlags). */
  flags: number;
  osVersion?: number;
  /** 0 for a library in the directory itself; otherwise a hwcaps variant. */
  hwcap?: bigint;
}

export interface LdCache {
  endian: 'le' | 'be';
  entries: LdCacheEntry[];
  /** What wrote the file ("ldconfig (GNU libc) … 2.36"), from the extension section. */
  generator?: string;
}

// ---------------------------------------------------------------------------------------------------
// flags

export const FLAG_ELF = 0x0001;
export const FLAG_ELF_LIBC6 = 0x0003;

/** ABI bits ldconfig sets beside FLAG_ELF_LIBC6 (glibc's dl-cache.h and the per-arch readelflib.c). */
const ABI_FLAGS: Record<string, number> = {
  sparc64: 0x0100, ia64: 0x0200, 'x86-64': 0x0300, s390x: 0x0400, ppc64: 0x0500, 'mips64 n32': 0x0600,
  'mips64 n64': 0x0700, x32: 0x0800, 'arm hard-float': 0x0900, aarch64: 0x0a00, 'arm soft-float': 0x0b00,
  'riscv soft-float': 0x0f00, 'riscv double-float': 0x1000, 'loongarch soft-float': 0x1100, 'loongarch double-float': 0x1200,
};
const ABI_NAMES = new Map(Object.entries(ABI_FLAGS).map(([k, v]) => [v, k]));

const EM_386 = 3, EM_SPARCV9 = 43, EM_IA_64 = 50, EM_X86_64 = 62, EM_S390 = 22, EM_PPC64 = 21, EM_ARM = 40;
const EM_AARCH64 = 183, EM_RISCV = 243, EM_LOONGARCH = 258;
const EF_ARM_ABI_FLOAT_SOFT = 0x200, EF_ARM_ABI_FLOAT_HARD = 0x400;
const EF_RISCV_FLOAT_ABI = 0x6, EF_RISCV_FLOAT_ABI_DOUBLE = 0x4, EF_RISCV_FLOAT_ABI_SOFT = 0x0;
const EF_LARCH_ABI_MODIFIER = 0x7, EF_LARCH_ABI_SOFT = 0x1, EF_LARCH_ABI_DOUBLE = 0x3;

/**
 * The flags ldconfig records for a library with this ELF header, which is also the one value (besides
 * FLAG_ELF) a loader of that ABI accepts. MIPS variants are not told apart (they get the generic value).
 */
export function ldCacheFlags(elf: { class: 32 | 64; machine: number; flags: number }): number {
  const abi = (name: string) => FLAG_ELF_LIBC6 | ABI_FLAGS[name];
  switch (elf.machine) {
    case EM_X86_64: return abi(elf.class === 64 ? 'x86-64' : 'x32');
    case EM_AARCH64: return elf.class === 64 ? abi('aarch64') : FLAG_ELF_LIBC6;
    case EM_SPARCV9: return elf.class === 64 ? abi('sparc64') : FLAG_ELF_LIBC6;
    case EM_IA_64: return abi('ia64');
    case EM_S390: return elf.class === 64 ? abi('s390x') : FLAG_ELF_LIBC6;
    case EM_PPC64: return abi('ppc64');
    case EM_ARM:
      if (elf.flags & EF_ARM_ABI_FLOAT_HARD) return abi('arm hard-float');
      if (elf.flags & EF_ARM_ABI_FLOAT_SOFT) return abi('arm soft-float');
      return FLAG_ELF_LIBC6;
    case EM_RISCV:
      if ((elf.flags & EF_RISCV_FLOAT_ABI) === EF_RISCV_FLOAT_ABI_DOUBLE) return abi('riscv double-float');
      if ((elf.flags & EF_RISCV_FLOAT_ABI) === EF_RISCV_FLOAT_ABI_SOFT) return abi('riscv soft-float');
      return FLAG_ELF_LIBC6;
    case EM_LOONGARCH:
      if ((elf.flags & EF_LARCH_ABI_MODIFIER) === EF_LARCH_ABI_DOUBLE) return abi('loongarch double-float');
      if ((elf.flags & EF_LARCH_ABI_MODIFIER) === EF_LARCH_ABI_SOFT) return abi('loongarch soft-float');
      return FLAG_ELF_LIBC6;
    case EM_386:
    default:
      return FLAG_ELF_LIBC6;
  }
}

/** The flags as `ldconfig -p` prints them: "libc6,x86-64", "libc6", "ELF". */
export function describeLdCacheFlags(flags: number): string {
  const type = flags & 0xff;
  const base = type === FLAG_ELF ? 'ELF' : type === 2 ? 'libc5' : type === FLAG_ELF_LIBC6 ? 'libc6' : 'unknown';
  const abi = flags & 0xff00;
  return abi ? `${base},${ABI_NAMES.get(abi) ?? `unknown 0x${abi.toString(16)}`}` : base;
}

// ---------------------------------------------------------------------------------------------------
// order

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
/** C's `char` is signed on the architectures glibc compares this way on. */
const signed = (c: number) => (c > 127 ? c - 256 : c);

/** glibc's _dl_cache_libcmp: bytewise, except that runs of digits compare by value ("so.10" > "so.9"). */
export function libcmp(a: string | Uint8Array, b: string | Uint8Array): number {
  const p = typeof a === 'string' ? Buffer.from(a, 'latin1') : a;
  const q = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
  let i = 0, j = 0;
  while (i < p.length) {
    if (isDigit(p[i])) {
      if (j >= q.length || !isDigit(q[j])) return 1;
      let v1 = 0, v2 = 0;
      while (i < p.length && isDigit(p[i])) v1 = (v1 * 10 + p[i++] - 0x30) | 0;
      while (j < q.length && isDigit(q[j])) v2 = (v2 * 10 + q[j++] - 0x30) | 0;
      if (v1 !== v2) return v1 - v2;
    } else if (j < q.length && isDigit(q[j])) {
      return -1;
    } else if (j >= q.length || p[i] !== q[j]) {
      return signed(p[i]) - (j < q.length ? signed(q[j]) : 0);
    } else {
      i++;
      j++;
    }
  }
  return j < q.length ? -signed(q[j]) : 0;
}

/** ldconfig's order: names descending, then flags descending, hwcaps variants first; stable otherwise. */
export function sortLdCacheEntries(entries: LdCacheEntry[]): LdCacheEntry[] {
  const variant = (e: LdCacheEntry) => ((e.hwcap ?? 0n) & HWCAP_EXTENSION ? 1 : 0);
  return [...entries].sort((x, y) => libcmp(y.key, x.key) || y.flags - x.flags || variant(y) - variant(x));
}

// ---------------------------------------------------------------------------------------------------
// lookup

/**
 * The file ld.so takes from the cache for `name`: the first entry of that name (in file order) with flags
 * FLAG_ELF or `flags` and no hwcaps marking. glibc-hwcaps and legacy hwcap entries depend on the CPU the
 * image will run on; the baseline library is what every CPU gets, so that is the one followed.
 */
export function lookupLdCache(cache: LdCache, name: string, flags: number): string | undefined {
  for (const e of cache.entries) {
    if (e.key !== name || (e.hwcap ?? 0n) !== 0n) continue;
    if (e.flags === FLAG_ELF || e.flags === flags) return e.value;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// parse

export function parseLdCache(bytes: Uint8Array, name: string): LdCache {
  const fail = (reason: string): never => {
    throw new MkportableError('IMAGE_CORRUPT', `${name}: not a usable ld.so cache: ${reason}`, name);
  };
  const text = (at: number, n: number) => Buffer.from(bytes.buffer, bytes.byteOffset + at, n).toString('latin1');
  let base = 0;
  if (bytes.length >= OLD_HEADER_SIZE && text(0, MAGIC_OLD.length) === MAGIC_OLD) {
    // Old format first, the new one after its entries, aligned like struct cache_file_new (8).
    const oldCount = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
    base = OLD_HEADER_SIZE + oldCount * OLD_ENTRY_SIZE;
    base = (base + 7) & ~7;
    if (oldCount > bytes.length || base + HEADER_SIZE > bytes.length) fail('old-format cache without a new-format part');
  }
  if (bytes.length < base + HEADER_SIZE || text(base, MAGIC_NEW.length) !== MAGIC_NEW) fail(`no "${MAGIC_NEW}" header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + base, bytes.length - base);
  const endianFlag = dv.getUint8(28) & 3;
  if (endianFlag === 1) fail('byte order marked invalid');
  const le = endianFlag !== ENDIAN_BIG; // 0 (unset, written before glibc 2.33) means the writer's, i.e. ours
  const nlibs = dv.getUint32(20, le);
  const lenStrings = dv.getUint32(24, le);
  const extensionOffset = dv.getUint32(32, le);
  const size = bytes.length - base;
  if (nlibs > (size - HEADER_SIZE) / ENTRY_SIZE) fail(`${nlibs} entries do not fit in ${size} bytes`);
  if (HEADER_SIZE + nlibs * ENTRY_SIZE + lenStrings > size) fail('string table runs past the end');
  const str = (off: number, what: string): string => {
    if (off >= size) fail(`${what} offset ${off} outside the file`);
    let end = off;
    while (end < size && dv.getUint8(end) !== 0) end++;
    if (end >= size) fail(`${what} string is not terminated`);
    return text(base + off, end - off);
  };
  const entries: LdCacheEntry[] = [];
  for (let i = 0; i < nlibs; i++) {
    const at = HEADER_SIZE + i * ENTRY_SIZE;
    entries.push({
      flags: dv.getInt32(at, le),
      key: str(dv.getUint32(at + 4, le), 'key'),
      value: str(dv.getUint32(at + 8, le), 'value'),
      osVersion: dv.getUint32(at + 12, le),
      hwcap: dv.getBigUint64(at + 16, le),
    });
  }
  const cache: LdCache = { endian: le ? 'le' : 'be', entries };
  if (extensionOffset !== 0 && extensionOffset % 4 === 0 && extensionOffset + 8 <= size && dv.getUint32(extensionOffset, le) === EXTENSION_MAGIC) {
    const count = dv.getUint32(extensionOffset + 4, le);
    for (let i = 0; i < count && extensionOffset + 8 + (i + 1) * 16 <= size; i++) {
      const at = extensionOffset + 8 + i * 16;
      const [tag, off, len] = [dv.getUint32(at, le), dv.getUint32(at + 8, le), dv.getUint32(at + 12, le)];
      if (tag === EXTENSION_TAG_GENERATOR && off + len <= size) cache.generator = text(base + off, len);
    }
  }
  return cache;
}

// ---------------------------------------------------------------------------------------------------
// serialize

/**
 * The cache file for these entries, sorted as the loader expects (sortLdCacheEntries). Strings are stored
 * once; a key that is the tail of its value ("/usr/lib/libz.so.1" → "libz.so.1") points into the value, as
 * ldconfig does. The extension section names the generator, which `ldconfig -p` prints.
 */
export function serializeLdCache(cache: { entries: LdCacheEntry[]; endian?: 'le' | 'be'; generator?: string }): Uint8Array {
  const le = (cache.endian ?? 'le') === 'le';
  const entries = sortLdCacheEntries(cache.entries);
  const stringsStart = HEADER_SIZE + entries.length * ENTRY_SIZE;
  const pieces: Buffer[] = [];
  const offsets = new Map<string, number>();
  let length = 0;
  const intern = (s: string): number => {
    let at = offsets.get(s);
    if (at === undefined) {
      at = stringsStart + length;
      const b = Buffer.from(s + '\0', 'latin1');
      pieces.push(b);
      length += b.length;
      offsets.set(s, at);
    }
    return at;
  };
  const refs = entries.map((e) => {
    const value = intern(e.value);
    const tail = e.value.length - e.key.length;
    const key = offsets.get(e.key) ?? (tail > 0 && e.value.endsWith(e.key) && e.value[tail - 1] === '/' ? value + tail : intern(e.key));
    return { key, value };
  });
  const generator = cache.generator === undefined ? undefined : Buffer.from(cache.generator, 'latin1');
  const extensionAt = generator ? (stringsStart + length + 3) & ~3 : 0;
  const total = generator ? extensionAt + 8 + 16 + generator.length : stringsStart + length;

  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set(Buffer.from(MAGIC_NEW, 'latin1'), 0);
  dv.setUint32(20, entries.length, le);
  dv.setUint32(24, length, le);
  dv.setUint8(28, le ? ENDIAN_LITTLE : ENDIAN_BIG);
  dv.setUint32(32, extensionAt, le);
  entries.forEach((e, i) => {
    const at = HEADER_SIZE + i * ENTRY_SIZE;
    dv.setInt32(at, e.flags, le);
    dv.setUint32(at + 4, refs[i].key, le);
    dv.setUint32(at + 8, refs[i].value, le);
    dv.setUint32(at + 12, e.osVersion ?? 0, le);
    dv.setBigUint64(at + 16, e.hwcap ?? 0n, le);
  });
  let at = stringsStart;
  for (const p of pieces) { out.set(p, at); at += p.length; }
  if (generator) {
    dv.setUint32(extensionAt, EXTENSION_MAGIC, le);
    dv.setUint32(extensionAt + 4, 1, le);
    dv.setUint32(extensionAt + 8, EXTENSION_TAG_GENERATOR, le);
    dv.setUint32(extensionAt + 12, 0, le);
    dv.setUint32(extensionAt + 16, extensionAt + 24, le);
    dv.setUint32(extensionAt + 20, generator.length, le);
    out.set(generator, extensionAt + 24);
  }
  return out;
}
