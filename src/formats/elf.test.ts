import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, existsSync, readdirSync, statSync, realpathSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { isElfMagic, readElfInfo, readGlibcLoaderConfig, readMuslLoaderConfig, type ElfInfo, type ElfRead } from './elf.js';
import { MkportableError } from '../errors.js';
import { needs } from '../../test/support/env.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const READELF = hasTool('readelf');

const memRead = (buf: Uint8Array, log?: { bytes: number; maxLen: number }): ElfRead => async (off, len) => {
  if (log) { log.bytes += len; log.maxLen = Math.max(log.maxLen, len); }
  return buf.subarray(off, off + len);
};

async function fileInfo(p: string, log?: { bytes: number; maxLen: number }): Promise<ElfInfo> {
  const fh = await fs.open(p, 'r');
  try {
    const size = (await fh.stat()).size;
    return await readElfInfo(async (off, len) => {
      if (log) { log.bytes += len; log.maxLen = Math.max(log.maxLen, len); }
      const b = Buffer.alloc(len);
      const { bytesRead } = await fh.read(b, 0, len, off);
      return b.subarray(0, bytesRead);
    }, size, p);
  } finally {
    await fh.close();
  }
}

interface Expected { needed: string[]; soname?: string; rpath?: string; runpath?: string; interpreter?: string }

/** What readelf (binutils) says about a file: the oracle; the product itself never runs it. */
function readelfView(p: string): Expected {
  const r = spawnSync('readelf', ['-dlW', p], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `readelf ${p}: ${r.stderr}`);
  const all = (re: RegExp) => [...r.stdout.matchAll(re)].map((m) => m[1]);
  return {
    needed: all(/\(NEEDED\)\s+Shared library: \[(.*)\]/g),
    soname: all(/\(SONAME\)\s+Library soname: \[(.*)\]/g)[0],
    rpath: all(/\(RPATH\)\s+Library rpath: \[(.*)\]/g)[0],
    runpath: all(/\(RUNPATH\)\s+Library runpath: \[(.*)\]/g)[0],
    interpreter: all(/\[Requesting program interpreter: (.*)\]/g)[0],
  };
}

function assertMatchesReadelf(p: string, info: ElfInfo) {
  const want = readelfView(p);
  assert.deepEqual(info.needed, want.needed, `${p}: needed`);
  assert.equal(info.soname, want.soname, `${p}: soname`);
  assert.equal(info.rpath, want.rpath, `${p}: rpath`);
  assert.equal(info.runpath, want.runpath, `${p}: runpath`);
  assert.equal(info.interpreter, want.interpreter, `${p}: interpreter`);
}

const libc = ['/usr/lib/x86_64-linux-gnu/libc.so.6', '/lib64/libc.so.6', '/usr/lib64/libc.so.6', '/lib/libc.so.6'].find(existsSync);
const named = ['/usr/bin/bash', '/usr/bin/ls', '/usr/bin/memcached', '/usr/bin/node', process.execPath, libc]
  .filter((p): p is string => !!p && existsSync(p));

test('isElfMagic', () => {
  assert.equal(isElfMagic(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1])), true);
  assert.equal(isElfMagic(new Uint8Array([0x7f, 0x45, 0x4c])), false);
  assert.equal(isElfMagic(new TextEncoder().encode('#!/bin/sh\n')), false);
});

test('named host binaries: class, type, needed, soname, rpath, runpath and interpreter match readelf', async (t) => {
  if (!needs(t, READELF, 'readelf not installed (binutils)')) return;
  assert.ok(named.length >= 3, `only ${named.length} of the named binaries exist`);
  for (const p of named) {
    const info = await fileInfo(p);
    assert.equal(info.class, os.arch().endsWith('64') ? 64 : 32);
    assert.ok(info.type === 2 || info.type === 3, `${p}: type ${info.type}`);
    assertMatchesReadelf(p, info);
  }
});

test('libc reports its soname', { skip: !libc && 'no libc found' }, async () => {
  const info = await fileInfo(libc!);
  assert.equal(info.soname, 'libc.so.6');
  assert.equal(info.type, 3);
});

test('executables have an interpreter and need libc', async () => {
  const executables = ['/usr/bin/bash', '/usr/bin/ls'].filter(existsSync);
  assert.ok(executables.length >= 1, 'neither /usr/bin/bash nor /usr/bin/ls exists');
  for (const p of executables) {
    const info = await fileInfo(p);
    assert.match(info.interpreter ?? '', /^\/.*ld.*\.so/);
    assert.ok(info.needed.includes('libc.so.6'), `${p}: ${info.needed}`);
  }
});

test('reads a large binary with a few small random-access reads', async () => {
  const big = realpathSync(process.execPath);
  const log = { bytes: 0, maxLen: 0 };
  const info = await fileInfo(big, log);
  assert.ok(info.needed.length > 0);
  assert.ok(log.bytes < 256 * 1024, `read ${log.bytes} bytes of ${statSync(big).size}`);
});

test('many host ELF files: needed, soname, rpath, runpath and interpreter match readelf', async (t) => {
  if (!needs(t, READELF, 'readelf not installed (binutils)')) return;
  const dirs = ['/usr/bin', '/usr/sbin', '/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib'];
  const files: string[] = [];
  for (const d of dirs.filter(existsSync)) {
    const before = files.length;
    for (const n of readdirSync(d).sort()) {
      if (files.length - before >= 60) break; // a sample from each directory keeps the test fast
      const p = path.join(d, n);
      try {
        if (!statSync(p).isFile()) continue;
        const fh = await fs.open(p, 'r');
        const head = Buffer.alloc(4);
        await fh.read(head, 0, 4, 0);
        await fh.close();
        if (isElfMagic(head)) files.push(p);
      } catch { /* unreadable: not our concern */ }
    }
  }
  assert.ok(files.length > 20);
  for (const p of files) assertMatchesReadelf(p, await fileInfo(p));
});

test('static and static-pie binaries built by gcc have no interpreter and no DT_NEEDED, as readelf agrees', async (t) => {
  if (!needs(t, hasTool('gcc') && READELF, 'gcc and readelf not installed (gcc, libc6-dev, binutils)')) return;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'elf-static-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const src = path.join(dir, 's.c');
  await fs.writeFile(src, 'int main(void){return 0;}\n');
  for (const [out, flags] of [['static', ['-static']], ['static-pie', ['-static-pie']]] as const) {
    const p = path.join(dir, out);
    const r = spawnSync('gcc', [...flags, '-o', p, src], { encoding: 'utf8' });
    assert.equal(r.status, 0, `gcc ${flags.join(' ')}: ${r.stderr}`);
    const info = await fileInfo(p);
    assert.equal(info.interpreter, undefined, p);
    assert.deepEqual(info.needed, [], p);
    assert.equal(info.type, out === 'static' ? 2 : 3, `${p}: ET_EXEC for -static, ET_DYN for -static-pie`);
    assertMatchesReadelf(p, info);
  }
});

// ---- synthetic files: both byte orders and both classes, plus the .dynstr fallback ----

interface Synth { is64: boolean; le: boolean; mapStrtab: boolean; needed: string[]; soname?: string; runpath?: string; interp?: string }

/** Lays out: ehdr | phdrs | interp | dynstr | dynamic | shdrs (null, .dynstr, .dynamic). */
function buildElf(o: Synth): Uint8Array {
  const w = o.is64 ? 8 : 4;
  const ehsize = o.is64 ? 64 : 52, phsize = o.is64 ? 56 : 32, shsize = o.is64 ? 64 : 40;
  const enc = new TextEncoder();
  const strs: number[] = [0];
  const strOff = (s: string) => { const at = strs.length; strs.push(...enc.encode(s), 0); return at; };
  const dyn: Array<[number, number]> = o.needed.map((n) => [1, strOff(n)]);
  if (o.soname) dyn.push([14, strOff(o.soname)]);
  if (o.runpath) dyn.push([29, strOff(o.runpath)]);
  const interp = o.interp ? [...enc.encode(o.interp), 0] : [];
  const nph = (o.interp ? 1 : 0) + 2;
  const interpOff = ehsize + nph * phsize;
  const strtabOff = interpOff + interp.length;
  const dynOff = strtabOff + strs.length + ((8 - ((strtabOff + strs.length) % 8)) % 8);
  const BASE = 0x10000; // vaddr = BASE + file offset inside the one PT_LOAD
  dyn.push([5, BASE + strtabOff], [10, strs.length], [0, 0]);
  const dynSize = dyn.length * 2 * w;
  const shOff = dynOff + dynSize;
  const size = shOff + 3 * shsize;
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  const put = (at: number, v: number, bytes: number) => {
    if (bytes === 2) dv.setUint16(at, v, o.le);
    else if (bytes === 4) dv.setUint32(at, v, o.le);
    else dv.setBigUint64(at, BigInt(v), o.le);
  };
  b.set([0x7f, 0x45, 0x4c, 0x46, o.is64 ? 2 : 1, o.le ? 1 : 2, 1, 0]);
  put(16, 3, 2); put(18, o.is64 ? 43 : 20, 2); put(20, 1, 4);
  put(o.is64 ? 32 : 28, ehsize, w); put(o.is64 ? 40 : 32, shOff, w);
  put(o.is64 ? 52 : 40, ehsize, 2); put(o.is64 ? 54 : 42, phsize, 2); put(o.is64 ? 56 : 44, nph, 2);
  put(o.is64 ? 58 : 46, shsize, 2); put(o.is64 ? 60 : 48, 3, 2);
  const phdr = (i: number, type: number, off: number, vaddr: number, filesz: number) => {
    const at = ehsize + i * phsize;
    put(at, type, 4);
    put(at + (o.is64 ? 8 : 4), off, w); put(at + (o.is64 ? 16 : 8), vaddr, w);
    put(at + (o.is64 ? 32 : 16), filesz, w); put(at + (o.is64 ? 40 : 20), filesz, w);
  };
  let i = 0;
  if (o.interp) phdr(i++, 3, interpOff, BASE + interpOff, interp.length);
  // With mapStrtab false the PT_LOAD stops short of .dynstr, forcing the section header fallback.
  phdr(i++, 1, 0, BASE, o.mapStrtab ? size : strtabOff);
  phdr(i++, 2, dynOff, BASE + dynOff, dynSize);
  b.set(interp, interpOff);
  b.set(strs, strtabOff);
  dyn.forEach(([tag, val], k) => { put(dynOff + k * 2 * w, tag, w); put(dynOff + k * 2 * w + w, val, w); });
  const shdr = (k: number, type: number, addr: number, off: number, sz: number, link: number) => {
    const at = shOff + k * shsize;
    put(at + 4, type, 4);
    put(at + (o.is64 ? 16 : 12), addr, w); put(at + (o.is64 ? 24 : 16), off, w); put(at + (o.is64 ? 32 : 20), sz, w);
    put(at + (o.is64 ? 40 : 24), link, 4);
  };
  shdr(1, 3, BASE + strtabOff, strtabOff, strs.length, 0);
  shdr(2, 6, BASE + dynOff, dynOff, dynSize, 1);
  return b;
}

test('synthetic ELF32/ELF64 in both byte orders, with and without a mapped string table', async () => {
  for (const is64 of [false, true]) {
    for (const le of [true, false]) {
      for (const mapStrtab of [true, false]) {
        const spec: Synth = { is64, le, mapStrtab, needed: ['libfoo.so.1', 'libbar.so.2'], soname: 'libme.so.3', runpath: '$ORIGIN/../lib', interp: '/lib/ld.so.1' };
        const b = buildElf(spec);
        const info = await readElfInfo(memRead(b), b.length, 'synthetic');
        assert.deepEqual(info, {
          class: is64 ? 64 : 32, endian: le ? 'le' : 'be', machine: is64 ? 43 : 20, osabi: 0, type: 3, flags: 0,
          interpreter: '/lib/ld.so.1', needed: ['libfoo.so.1', 'libbar.so.2'], soname: 'libme.so.3', runpath: '$ORIGIN/../lib',
        }, JSON.stringify({ is64, le, mapStrtab }));
      }
    }
  }
});

// ---- malformed input: always a result or ELF_INVALID, never anything else, and bounded reads ----

async function expectValidOrElfInvalid(b: Uint8Array, label: string): Promise<'ok' | 'invalid'> {
  const log = { bytes: 0, maxLen: 0 };
  try {
    await readElfInfo(memRead(b, log), b.length, label);
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof MkportableError, `${label}: threw ${(e as Error)?.stack ?? e}`);
    assert.equal(e.code, 'ELF_INVALID', label);
    assert.ok(e.message.startsWith(`${label}: `), e.message);
    return 'invalid';
  } finally {
    assert.ok(log.maxLen <= b.length, `${label}: asked for ${log.maxLen} bytes of a ${b.length}-byte file`);
  }
}

/** A small real dynamically linked file, with its interesting regions (headers, dynamic, dynstr). */
async function sample(): Promise<{ bytes: Uint8Array; hot: number[] }> {
  const p = ['/usr/bin/true', '/usr/bin/ls', '/usr/bin/bash'].find(existsSync)!;
  const bytes = new Uint8Array(await fs.readFile(p));
  const hot = new Set<number>();
  for (let k = 0; k < 64 + 14 * 56; k++) hot.add(k);
  const r = spawnSync('readelf', ['-SW', p], { encoding: 'utf8' });
  assert.equal(r.status, 0, `readelf -SW ${p}: ${r.stderr}`);
  const sections = new Set<string>();
  for (const m of r.stdout.matchAll(/\s(\.dynamic|\.dynstr|\.interp)\s+\S+\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)/g)) {
    sections.add(m[1]);
    const off = parseInt(m[2], 16), len = Math.min(parseInt(m[3], 16), 4096);
    for (let k = off; k < off + len; k++) hot.add(k);
  }
  assert.deepEqual([...sections].sort(), ['.dynamic', '.dynstr', '.interp'], `${p}: sections found by readelf -SW`);
  return { bytes, hot: [...hot].filter((k) => k < bytes.length).sort((a, b) => a - b) };
}

test('truncated real binary: every cut gives a result or ELF_INVALID', async (t) => {
  if (!needs(t, READELF, 'readelf not installed (binutils): it finds the regions to corrupt')) return;
  const { bytes, hot } = await sample();
  const cuts = new Set<number>([0, 1, 3, 4, 15, 16, 17, 51, 52, 63, 64, bytes.length - 1]);
  for (let k = 0; k < 8192 && k < bytes.length; k += 13) cuts.add(k);
  for (const k of hot) if (k % 5 === 0) cuts.add(k);
  for (let k = 0; k < bytes.length; k += Math.max(1, Math.floor(bytes.length / 200))) cuts.add(k);
  let invalid = 0;
  for (const cut of cuts) if ((await expectValidOrElfInvalid(bytes.subarray(0, cut), `cut@${cut}`)) === 'invalid') invalid++;
  assert.ok(invalid > 0);
  assert.equal(await expectValidOrElfInvalid(bytes.subarray(0, 10), 'tiny'), 'invalid');
});

test('corrupted header, program headers, dynamic section and strings: result or ELF_INVALID', async (t) => {
  if (!needs(t, READELF, 'readelf not installed (binutils): it finds the regions to corrupt')) return;
  const { bytes, hot } = await sample();
  for (const k of hot) {
    for (const v of [0x00, 0xff, bytes[k] ^ 0x80, bytes[k] ^ 0x01]) {
      const b = bytes.slice();
      b[k] = v;
      await expectValidOrElfInvalid(b, `byte@${k}=${v}`);
    }
  }
});

test('random multi-byte corruption (seeded)', async (t) => {
  if (!needs(t, READELF, 'readelf not installed (binutils): it finds the regions to corrupt')) return;
  const { bytes, hot } = await sample();
  let seed = 0x2545f491;
  const rnd = (n: number) => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) % n; };
  for (let iter = 0; iter < 1500; iter++) {
    const b = bytes.slice();
    const flips = 1 + rnd(6);
    for (let j = 0; j < flips; j++) b[hot[rnd(hot.length)]] = rnd(256);
    const cut = rnd(4) === 0 ? rnd(b.length) : b.length;
    await expectValidOrElfInvalid(b.subarray(0, cut), `fuzz#${iter}`);
  }
});

test('hostile synthetic headers are rejected without large reads', async () => {
  const base = buildElf({ is64: true, le: true, mapStrtab: true, needed: ['liba.so'] });
  const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  const cases: Array<[string, (b: Uint8Array) => void]> = [
    ['phnum 0xffff without sections', (b) => { dv(b).setUint16(56, 0xffff, true); dv(b).setBigUint64(40, 0n, true); }],
    ['phoff huge', (b) => dv(b).setBigUint64(32, 0xffffffffffffff00n, true)],
    ['phentsize odd', (b) => dv(b).setUint16(54, 7, true)],
    ['bad class', (b) => { b[4] = 9; }],
    ['bad data', (b) => { b[5] = 0; }],
    ['needed offset past strtab', (b) => {
      const dynOff = Number(dv(b).getBigUint64(64 + 56 + 8, true));
      dv(b).setBigUint64(dynOff + 8, 0x7fffffffn, true);
    }],
  ];
  for (const [label, mutate] of cases) {
    const b = base.slice();
    mutate(b);
    assert.equal(await expectValidOrElfInvalid(b, label), 'invalid', label);
  }
});

// ---- what a loader compiled in, read without running it ----

/** The oracle: the "system search path" lines `ld.so --help` prints (tests may run it; the product never does). */
function helpDirs(ldso: string): string[] | undefined {
  const r = spawnSync(ldso, ['--help'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return [...r.stdout.matchAll(/^\s+(\/\S*) \(system search path\)$/gm)].map((m) => m[1]);
}

async function loaderConfigOf(p: string) {
  const b = new Uint8Array(await fs.readFile(p));
  return readGlibcLoaderConfig(memRead(b), b.length);
}

const glibcLoaders = [
  '/lib64/ld-linux-x86-64.so.2', '/lib32/ld-linux.so.2', '/lib/ld-linux.so.2',
  '/var/cache/mkportable/trixie-portabled/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
  '/var/cache/mkportable/bookworm-portabled/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
].filter(existsSync).map((p) => realpathSync(p)).filter((p, i, all) => all.indexOf(p) === i);

test('glibc system directories read out of ld.so match `ld.so --help`', { skip: !glibcLoaders.length && 'no glibc loader' }, async () => {
  let compared = 0;
  for (const ldso of glibcLoaders) {
    const want = helpDirs(ldso);
    if (!want) continue; // e.g. a 32-bit loader on a kernel without IA32 emulation
    const got = await loaderConfigOf(ldso);
    assert.deepEqual(got.systemDirs, want, ldso);
    assert.equal(got.confirmed, true, ldso);
    assert.equal(got.cachePath, '/etc/ld.so.cache', ldso);
    compared++;
  }
  assert.ok(compared >= 1);
});

test('system directories of a synthetic loader: with a length table, without one, without section headers', { skip: !hasTool('gcc') && 'no gcc' }, async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ldso-synth-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  // The shape glibc's dl-load.c gives them: one string of NUL-separated dirs with trailing slashes, and size_t lengths.
  const src = (table: boolean) => `#include <stddef.h>
static const char system_dirs[] = "/opt/sys/lib64/\\0/usr/lib64/\\0/weird+dir_1.2/lib/";
${table ? 'static const size_t system_dirs_len[] = { 15, 11, 19 };' : ''}
static const char other[] = "/proc/self/fd/";
const char *pick(int i) { return i == 7 ? other : i == 9 ? "/etc/ld.so.cache" : system_dirs + ${table ? 'system_dirs_len[i & 1]' : 'i'}; }
`;
  for (const table of [true, false]) {
    const c = path.join(dir, `l${table}.c`), so = path.join(dir, `l${table}.so`);
    await fs.writeFile(c, src(table));
    const r = spawnSync('gcc', ['-O2', '-shared', '-fPIC', '-o', so, c], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const got = await loaderConfigOf(so);
    assert.deepEqual(got.systemDirs, ['/opt/sys/lib64', '/usr/lib64', '/weird+dir_1.2/lib'], `table=${table}`);
    assert.equal(got.confirmed, table);
    assert.equal(got.cachePath, '/etc/ld.so.cache');
    // Without section headers the whole file is searched.
    const b = new Uint8Array(await fs.readFile(so));
    new DataView(b.buffer).setBigUint64(40, 0n, true);
    const bare = await readGlibcLoaderConfig(memRead(b), b.length);
    assert.deepEqual(bare.systemDirs, got.systemDirs);
  }
  // Something that is not a loader has no system directories, and garbage is not an error.
  assert.equal((await loaderConfigOf(['/usr/bin/true', '/bin/true'].find(existsSync)!)).systemDirs, undefined);
  const junk = new Uint8Array(100).fill(0x41);
  assert.deepEqual(await readGlibcLoaderConfig(memRead(junk), junk.length), { confirmed: false });
});

const muslLibc = ['/usr/lib/x86_64-linux-musl/libc.so', '/lib/ld-musl-x86_64.so.1'].filter(existsSync).map((p) => realpathSync(p))[0];

test('musl keeps its default path and path file name as strings', { skip: !muslLibc && 'musl not installed' }, async () => {
  const b = new Uint8Array(await fs.readFile(muslLibc!));
  const got = await readMuslLoaderConfig(memRead(b), b.length);
  // The oracle: musl's own strings as binutils shows them.
  const strings = spawnSync('strings', ['-a', muslLibc!], { encoding: 'utf8' }).stdout.split('\n');
  const template = strings.find((s) => /^%\.\*s\/etc\/ld-musl-.*\.path$/.test(s));
  assert.equal(got.pathFile, template?.slice(4));
  assert.deepEqual(got.defaultPath, ['/lib', '/usr/local/lib', '/usr/lib']);
  assert.ok(strings.includes(got.defaultPath!.join(':')));
});
