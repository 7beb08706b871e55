import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import {
  defaultLibDirs, expandOrigin, findLibrary, ldCacheEntries, loaderFor, loaderForLibrary, loaderProvides, readLdSoConf, type LdCacheModel,
} from './ldso.js';
import { lookupLdCache, parseLdCache, serializeLdCache } from '../formats/ldcache.js';
import { realpathIn } from '../sources/realpath.js';
import { readElfInfo, type ElfInfo } from '../formats/elf.js';
import { directorySource, hostSource } from '../sources/host.js';
import type { Source } from '../sources/source.js';
import { MkportableError } from '../errors.js';
import { needs } from '../../test/support/env.js';

const hasTool = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const LDD = hasTool('ldd');
const GCC = hasTool('gcc');
/** $LIB as this host's glibc expands it (Debian multiarch vs. Fedora lib64). */
const HOST_LIB = existsSync('/usr/lib/x86_64-linux-gnu') ? 'lib/x86_64-linux-gnu' : existsSync('/usr/lib64/libc.so.6') ? 'lib64' : undefined;

async function elfOf(source: Source, p: string): Promise<ElfInfo> {
  const st = await source.lstat(p);
  return readElfInfo((o, l) => source.read(p, o, l), st!.size, p);
}

interface Loaded { path: string; real: string; info: ElfInfo; origin: string; loader?: Loaded }

/**
 * The startup closure as ld.so builds it: breadth first, each object's DT_NEEDED in order, a name already
 * satisfied by a loaded object (by requested name or DT_SONAME, or the same file) is not searched again,
 * and the RPATH chain follows the object that first caused a load.
 */
async function closure(source: Source, exe: string, cache?: LdCacheModel, systemDirs?: string[], lib = HOST_LIB) {
  const mainReal = (await realpathIn(source, exe))!;
  const main: Loaded = { path: exe, real: mainReal, info: await elfOf(source, mainReal), origin: path.posix.dirname(mainReal) };
  const byName = new Map<string, Loaded>();
  const byReal = new Map<string, Loaded>([[mainReal, main]]);
  const missing = new Set<string>();
  const register = (name: string, o: Loaded) => { byName.set(name, o); if (o.info.soname) byName.set(o.info.soname, o); };
  if (main.info.interpreter) {
    // ld.so is loaded before anything else and answers to its PT_INTERP path and its soname.
    const real = await realpathIn(source, main.info.interpreter);
    if (real) {
      const interp: Loaded = { path: main.info.interpreter, real, info: await elfOf(source, real), origin: path.posix.dirname(real) };
      byReal.set(real, interp);
      register(main.info.interpreter, interp);
    }
  }
  const queue = [main];
  while (queue.length) {
    const obj = queue.shift()!;
    for (const name of obj.info.needed) {
      if (byName.has(name) || missing.has(name)) continue;
      const runpath = obj.info.runpath !== undefined ? expandOrigin(obj.info.runpath, obj.origin, lib) : [];
      const rpathChain: string[] = [];
      if (obj.info.runpath === undefined) {
        for (let l: Loaded | undefined = obj; l; l = l.loader) {
          if (l.info.rpath !== undefined && l.info.runpath === undefined) rpathChain.push(...expandOrigin(l.info.rpath, l.origin, lib));
        }
      }
      const requester = { class: main.info.class, machine: main.info.machine, endian: main.info.endian, rpathChain, runpath };
      const found = await findLibrary({ source, name, requester, cache, systemDirs });
      if (!found) { missing.add(name); continue; }
      const real = (await realpathIn(source, found))!;
      let o = byReal.get(real);
      if (!o) {
        o = { path: found, real, info: await elfOf(source, real), origin: path.posix.dirname(found), loader: obj };
        byReal.set(real, o);
        queue.push(o);
      }
      register(name, o);
    }
  }
  byReal.delete(mainReal);
  return { byName, missing, reals: new Set([...byReal.keys()]) };
}

/** ldd's answer: realpaths of everything it loads (vdso excluded) and the names it could not find. */
function lddView(file: string): { reals: Set<string>; missing: Set<string>; ok: boolean; text: string } {
  const r = spawnSync('ldd', [file], { encoding: 'utf8' });
  const reals = new Set<string>();
  const missing = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    let m = /^\s*(\S+) => not found/.exec(line);
    if (m) { missing.add(m[1]); continue; }
    m = /=> (\/\S+) \(0x/.exec(line) ?? /^\s*(\/\S+) \(0x/.exec(line);
    if (m) reals.add(realpathSync(m[1]));
  }
  return { reals, missing, ok: r.status === 0, text: r.stdout + r.stderr };
}

// ---------------------------------------------------------------------------------------------------
// pure helpers

test('defaultLibDirs', () => {
  assert.deepEqual(defaultLibDirs(64, 62), ['/lib64', '/usr/lib64', '/lib', '/usr/lib']);
  assert.deepEqual(defaultLibDirs(32, 3), ['/lib', '/usr/lib']);
});

test('expandOrigin substitutes DSTs and drops what cannot be known', () => {
  assert.deepEqual(expandOrigin('$ORIGIN/../lib:${ORIGIN}/x', '/opt/app/bin'), ['/opt/app/bin/../lib', '/opt/app/bin/x']);
  assert.deepEqual(expandOrigin('/a::/b/:', '/o'), ['/a', '/b']);
  assert.deepEqual(expandOrigin('/usr/$LIB/foo:/x', '/o', 'lib64'), ['/usr/lib64/foo', '/x']);
  assert.deepEqual(expandOrigin('/usr/${LIB}/foo:/x', '/o'), ['/x']);
  assert.deepEqual(expandOrigin('/p/$PLATFORM:/q/${PLATFORM}/r:/s', '/o'), ['/s']);
  assert.deepEqual(expandOrigin('/lit/$ORIGINAL:/lit/$FOO:/lit/${ORIGIN', '/o'), ['/lit/$ORIGINAL', '/lit/$FOO', '/lit/${ORIGIN']);
  assert.deepEqual(expandOrigin('$ORIGIN', '/'), ['/']);
  assert.deepEqual(expandOrigin('$ORIGIN/lib', '/'), ['/lib']);
  assert.deepEqual(expandOrigin('lib:/a:/a', '/o'), ['/lib', '/a']);
});

// ---------------------------------------------------------------------------------------------------
// realpathIn on a synthetic tree

test('realpathIn resolves inside the source, never on the host', async (t) => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'realpath-'));
  t.after(() => fs.rm(root, { recursive: true, force: true }));
  const src = directorySource(root);
  await fs.mkdir(path.join(root, 'usr/lib/x'), { recursive: true });
  await fs.mkdir(path.join(root, 'etc'));
  await fs.writeFile(path.join(root, 'usr/lib/x/libf.so.1.2'), 'x');
  await fs.symlink('usr/lib', path.join(root, 'lib'));
  await fs.symlink('libf.so.1.2', path.join(root, 'usr/lib/x/libf.so.1'));
  await fs.symlink('/lib/x/libf.so.1', path.join(root, 'etc/abs'));
  await fs.symlink('/etc/passwd', path.join(root, 'etc/hostonly')); // exists on the host, not in the source
  await fs.symlink('../../etc', path.join(root, 'usr/lib/up'));
  await fs.symlink('loop2', path.join(root, 'etc/loop1'));
  await fs.symlink('loop1', path.join(root, 'etc/loop2'));

  assert.equal(await realpathIn(src, '/lib/x/libf.so.1'), '/usr/lib/x/libf.so.1.2');
  assert.equal(await realpathIn(src, '/etc/abs'), '/usr/lib/x/libf.so.1.2');
  assert.equal(await realpathIn(src, '/etc/hostonly'), undefined);
  assert.equal(await realpathIn(src, '/lib/up/abs'), '/usr/lib/x/libf.so.1.2');
  // ".." after a symlink is physical: /lib/x/.. is /usr/lib, not /
  assert.equal(await realpathIn(src, '/lib/x/../x/./libf.so.1'), '/usr/lib/x/libf.so.1.2');
  assert.equal(await realpathIn(src, '/../../lib'), '/usr/lib');
  assert.equal(await realpathIn(src, '/'), '/');
  assert.equal(await realpathIn(src, '/nope/x'), undefined);
  assert.equal(await realpathIn(src, '/usr/lib/x/libf.so.1.2/more'), undefined);
  await assert.rejects(realpathIn(src, '/etc/loop1'), (e: unknown) => e instanceof MkportableError && e.code === 'SYMLINK_LOOP');
});

// ---------------------------------------------------------------------------------------------------
// ld.so.conf

test('readLdSoConf: comments, hwcap, separators, relative and absolute include globs, cycles', async (t) => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'ldsoconf-'));
  t.after(() => fs.rm(root, { recursive: true, force: true }));
  const w = async (p: string, text: string) => {
    await fs.mkdir(path.dirname(path.join(root, p)), { recursive: true });
    await fs.writeFile(path.join(root, p), text);
  };
  await w('etc/ld.so.conf', [
    '# top comment',
    '/first/dir/   # trailing comment',
    'include ld.so.conf.d/*.conf',
    'hwcap 0 nosegneg',
    '',
    '   /a:/b, /c\t/d',
    'relative/ignored',
    'include /etc/extra/?x.conf /etc/none/*.conf',
  ].join('\n'));
  await w('etc/ld.so.conf.d/20-b.conf', '/from/20\ninclude ../ld.so.conf\n'); // cycle back to the top
  await w('etc/ld.so.conf.d/10-a.conf', '/from/10\n/first/dir\n'); // duplicate is dropped
  await w('etc/ld.so.conf.d/README', '/not/a/conf\n');
  await w('etc/ld.so.conf.d/.hidden.conf', '/hidden\n');
  await w('etc/ld.so.conf.d/30-c.conf/keep', ''); // a directory matching the glob is not a file
  await w('srv/extra.d/ax.conf', '/from/extra\n');
  await w('srv/extra.d/abx.conf', '/not/matched/by/question/mark\n');
  await fs.symlink('/srv/extra.d', path.join(root, 'etc/extra')); // absolute: must resolve inside root
  const src = directorySource(root);
  const files: string[] = [];
  assert.deepEqual(await readLdSoConf(src, undefined, files), ['/first/dir', '/from/10', '/from/20', '/a', '/b', '/c', '/d', '/from/extra']);
  assert.deepEqual(files, ['/etc/ld.so.conf', '/etc/ld.so.conf.d/10-a.conf', '/etc/ld.so.conf.d/20-b.conf', '/etc/extra/ax.conf']);
  assert.deepEqual(await readLdSoConf(src, '/etc/missing.conf'), []);
  assert.deepEqual(await readLdSoConf(src, '/etc/ld.so.conf.d/10-a.conf'), ['/from/10', '/first/dir']);
});

test('readLdSoConf on the host lists the same directories as ldconfig -vNX', { skip: !existsSync('/etc/ld.so.conf') && 'no /etc/ld.so.conf' }, async (t) => {
  const ours = await readLdSoConf(hostSource());
  assert.ok(ours.length > 0);
  // ldconfig -v -N -X only prints what it scans (no cache or link updates). It drops missing dirs and
  // dirs that are the same inode as an earlier one (merged /usr), so compare after doing the same.
  const ldconfig = ['/usr/sbin/ldconfig', '/sbin/ldconfig'].find(existsSync);
  if (!needs(t, !!ldconfig, 'no ldconfig')) return;
  const run = spawnSync(ldconfig!, ['-vNX'], { encoding: 'utf8' });
  assert.equal(run.status, 0, `ldconfig -vNX: ${run.stderr}`);
  const theirs = [...run.stdout.matchAll(/^(\/\S*): \(from (\/[^:]+):\d+\)/gm)].map((m) => m[1]);
  assert.ok(theirs.length > 0, `ldconfig -vNX named no directories from ld.so.conf:\n${run.stdout}`);
  const seen = new Set<string>();
  const expected = ours.filter((d) => {
    try { if (!statSync(d).isDirectory()) return false; } catch { return false; }
    const id = realpathSync(d);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  assert.deepEqual(expected, theirs);
});

// ---------------------------------------------------------------------------------------------------
// the real closure of host binaries vs. ldd

const hostBinaries = (() => {
  const list = ['/usr/bin/bash', '/usr/bin/ls', '/usr/bin/memcached', '/usr/bin/node', process.execPath,
    '/usr/bin/ssh', '/usr/bin/git', '/usr/bin/python3', '/usr/bin/curl', '/usr/bin/gpg'];
  const libdir = '/usr/lib/x86_64-linux-gnu';
  if (existsSync(libdir)) {
    const libs = readdirSync(libdir).filter((n) => /^lib(curl|ssl|gnutls|xml2|ldap|krb5|systemd|archive)[^/]*\.so\.\d+$/.test(n));
    list.push(...libs.map((n) => path.join(libdir, n)));
  }
  return [...new Set(list.filter((p) => existsSync(p)).map((p) => realpathSync(p)))];
})();

/** The host's loader as the closure sees it, and its cache both ways: the real file, and the one we would write. */
async function hostModels(source: Source) {
  const interp = (await elfOf(source, realpathSync(process.execPath))).interpreter!;
  const loader = await loaderFor(source, interp, { class: 64, machine: X86_64, flags: 0 });
  const conf = await readLdSoConf(source);
  const models: Array<[string, LdCacheModel | undefined]> = [['ld.so.conf', { dirs: [...conf, ...loader.systemDirs] }]];
  if (existsSync('/etc/ld.so.cache')) models.push(['/etc/ld.so.cache', { file: parseLdCache(await fs.readFile('/etc/ld.so.cache'), '/etc/ld.so.cache') }]);
  return { loader, models };
}

test('closure of host binaries matches ldd', { skip: (!LDD || !hostBinaries.length) && 'no ldd' }, async () => {
  const source = hostSource();
  const { loader, models } = await hostModels(source);
  let compared = 0;
  for (const bin of hostBinaries) {
    const want = lddView(bin);
    if (!want.ok) continue; // static or not loadable here
    for (const [label, cache] of models) {
      const got = await closure(source, bin, cache, loader.systemDirs);
      assert.deepEqual([...got.reals].sort(), [...want.reals].sort(), `${bin} with ${label}\n${want.text}`);
      assert.deepEqual([...got.missing].sort(), [...want.missing].sort(), bin);
    }
    compared++;
  }
  assert.ok(compared >= 3, `compared ${compared}`);
});

test('closure of a sample of /usr/bin (every 15th name) matches ldd', { skip: (!LDD || !existsSync('/usr/bin')) && 'no ldd' }, async () => {
  const source = hostSource();
  const { loader, models } = await hostModels(source);
  const names = readdirSync('/usr/bin').sort().filter((_, i) => i % 15 === 0);
  let compared = 0;
  for (const n of names) {
    const p = path.join('/usr/bin', n);
    let real: string;
    try { real = realpathSync(p); if (!statSync(real).isFile()) continue; } catch { continue; }
    const head = Buffer.alloc(4);
    const fh = await fs.open(real, 'r');
    await fh.read(head, 0, 4, 0);
    await fh.close();
    if (head.toString('latin1') !== '\x7fELF') continue;
    const want = lddView(real);
    if (!want.ok) continue;
    for (const [label, cache] of models) {
      const got = await closure(source, real, cache, loader.systemDirs);
      assert.deepEqual([...got.reals].sort(), [...want.reals].sort(), `${real} with ${label}\n${want.text}`);
    }
    compared++;
  }
  // A few of the sampled names are scripts or links to the same file; most are dynamically linked ELF files.
  assert.ok(compared >= Math.min(10, names.length / 2), `compared ${compared} of ${names.length} sampled names`);
});

// ---------------------------------------------------------------------------------------------------
// a synthetic tree built with gcc: RPATH vs RUNPATH, $ORIGIN, wrong class/machine, ld.so.conf

let root = '';
let src: Source;
const R = (p: string) => path.join(root, p);
const X86_64 = 62;
const req64 = (over: Partial<{ rpathChain: string[]; runpath: string[] }> = {}) => ({ class: 64 as const, machine: X86_64, endian: 'le' as const, rpathChain: [], runpath: [], ...over });

function gcc(args: string[]) {
  const r = spawnSync('gcc', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc ${args.join(' ')}: ${r.stderr}`);
}

/**
 * An ELF header of the given class and machine, padded like a real file: ld.so rejects anything shorter
 * than its own Ehdr as "file too short" before it looks at the class.
 */
function fakeElf(cls: 32 | 64, machine: number, size = 4096): Uint8Array {
  const b = new Uint8Array(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, cls === 64 ? 2 : 1, 1, 1]);
  const dv = new DataView(b.buffer);
  dv.setUint16(16, 3, true);
  dv.setUint16(18, machine, true);
  dv.setUint32(20, 1, true);
  return b;
}

const canBuild = GCC && LDD && process.arch === 'x64' && process.platform === 'linux';

before(async () => {
  if (!canBuild) return;
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'ldso-tree-'));
  src = directorySource(root);
  for (const d of ['opt/app/bin', 'opt/app/lib', 'opt/app/lib32', 'opt/app/libarm', 'opt/app/junk', 'opt/link', 'usr/lib64', 'etc/ld.so.conf.d', 'c']) {
    await fs.mkdir(R(d), { recursive: true });
  }
  const c = (name: string, text: string) => fs.writeFile(R(`c/${name}`), text);
  await c('dep.c', 'int dep(void){return 7;}\n');
  await c('mid.c', 'int dep(void); int mid(void){return dep();}\n');
  await c('main.c', 'int mid(void); int main(void){return mid() == 7 ? 0 : 1;}\n');
  const lib = R('opt/app/lib');
  const shared = ['-shared', '-fPIC'];
  gcc([...shared, '-o', `${lib}/libdep.so.1.0`, '-Wl,-soname,libdep.so.1', R('c/dep.c')]);
  await fs.symlink('libdep.so.1.0', `${lib}/libdep.so.1`);
  await fs.symlink('libdep.so.1.0', `${lib}/libdep.so`);
  gcc([...shared, '-o', `${lib}/libmid.so`, '-Wl,-soname,libmid.so', R('c/mid.c'), `-L${lib}`, '-ldep']);
  // Same, but with a DT_RUNPATH of its own (pointing nowhere): this hides the executable's DT_RPATH.
  gcc([...shared, '-o', `${lib}/libmidrun.so`, '-Wl,-soname,libmidrun.so', R('c/mid.c'), `-L${lib}`, '-ldep', '-Wl,-rpath,/nonexistent', '-Wl,--enable-new-dtags']);
  // $ORIGIN in a library reached through a symlink from another directory.
  gcc([...shared, '-o', `${lib}/libmidorigin.so`, '-Wl,-soname,libmidorigin.so', R('c/mid.c'), `-L${lib}`, '-ldep', '-Wl,-rpath,$ORIGIN', '-Wl,--enable-new-dtags']);
  await fs.symlink('../app/lib/libmidorigin.so', R('opt/link/libmidorigin.so'));

  const exe = (name: string, libname: string, rpath: string, dtags: 'new' | 'old' | 'none') => gcc([
    '-o', R(`opt/app/bin/${name}`), R('c/main.c'), `-L${lib}`, `-L${R('opt/link')}`, `-l${libname}`, `-Wl,-rpath-link,${lib}`,
    ...(dtags === 'none' ? [] : [`-Wl,-rpath,${rpath}`, dtags === 'new' ? '-Wl,--enable-new-dtags' : '-Wl,--disable-new-dtags']),
  ]);
  exe('runpath-exe', 'mid', '$ORIGIN/../lib', 'new');
  exe('rpath-exe', 'mid', '$ORIGIN/../lib', 'old');
  exe('rpath-midrun-exe', 'midrun', '$ORIGIN/../lib', 'old');
  exe('skip-exe', 'mid', '$ORIGIN/../lib32:$ORIGIN/../libarm:$ORIGIN/../lib', 'new');
  exe('junk-exe', 'mid', '$ORIGIN/../junk:$ORIGIN/../lib', 'new');
  exe('origin-exe', 'midorigin', '$ORIGIN/../../link', 'new');
  exe('plain-exe', 'mid', '', 'none');

  await fs.writeFile(R('opt/app/lib32/libmid.so'), fakeElf(32, 3));
  await fs.writeFile(R('opt/app/libarm/libmid.so'), fakeElf(64, 183));
  await fs.writeFile(R('opt/app/junk/libmid.so'), '/* GNU ld script */\nINPUT(libmid.so.1)\n');
  await fs.writeFile(R('etc/ld.so.conf'), 'include ld.so.conf.d/*.conf\n');
  await fs.writeFile(R('etc/ld.so.conf.d/00-junk.conf'), '/opt/app/junk\n');
  await fs.writeFile(R('etc/ld.so.conf.d/10-app.conf'), '/opt/app/lib32\n/opt/app/lib/\n');
  await fs.writeFile(R('etc/ld.so.conf.d/notes.txt'), '/nowhere\n');
});

after(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

/** Where the tree's own libraries resolve, per ldd run on the host (libc etc. come from the host there). */
function lddTreeView(exe: string): Map<string, string> {
  const r = spawnSync('ldd', [R(exe)], { encoding: 'utf8' });
  const m = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const hit = /^\s*(lib(?:mid|dep)\S*) => (.*?)(?: \(0x.*)?$/.exec(line);
    if (hit) m.set(hit[1], hit[2] === 'not found' ? 'not found' : '/' + path.relative(root, hit[2]));
  }
  return m;
}

async function treeView(exe: string, conf: string[] = []): Promise<Map<string, string>> {
  const { byName, missing } = await closure(src, exe, { dirs: conf });
  const m = new Map<string, string>();
  for (const [name, o] of byName) if (/^lib(mid|dep)/.test(name) && !name.startsWith('/')) m.set(name, o.path);
  for (const name of missing) if (/^lib(mid|dep)/.test(name)) m.set(name, 'not found');
  return m;
}

test('RUNPATH applies to the direct needs only', { skip: !canBuild && 'needs gcc and ldd on x86_64 Linux' }, async () => {
  const got = await treeView('/opt/app/bin/runpath-exe');
  assert.deepEqual(Object.fromEntries(got), { 'libmid.so': '/opt/app/lib/libmid.so', 'libdep.so.1': 'not found' });
  assert.deepEqual(Object.fromEntries(lddTreeView('opt/app/bin/runpath-exe')), Object.fromEntries(got));
});

test('RPATH is inherited by indirect needs', { skip: !canBuild && 'needs gcc and ldd on x86_64 Linux' }, async () => {
  const got = await treeView('/opt/app/bin/rpath-exe');
  assert.deepEqual(Object.fromEntries(got), {
    'libmid.so': '/opt/app/lib/libmid.so', 'libdep.so.1': '/opt/app/lib/libdep.so.1',
  });
  assert.deepEqual(Object.fromEntries(lddTreeView('opt/app/bin/rpath-exe')), Object.fromEntries(got));
});

test('a RUNPATH in the requester hides the inherited RPATH chain', { skip: !canBuild && 'needs gcc and ldd on x86_64 Linux' }, async () => {
  const got = await treeView('/opt/app/bin/rpath-midrun-exe');
  assert.deepEqual(Object.fromEntries(got), { 'libmidrun.so': '/opt/app/lib/libmidrun.so', 'libdep.so.1': 'not found' });
  assert.deepEqual(Object.fromEntries(lddTreeView('opt/app/bin/rpath-midrun-exe')), Object.fromEntries(got));
});

test('$ORIGIN of a library is the directory it was found in, not its symlink target', { skip: !canBuild && 'needs gcc and ldd on x86_64 Linux' }, async () => {
  const got = await treeView('/opt/app/bin/origin-exe');
  assert.deepEqual(Object.fromEntries(got), { 'libmidorigin.so': '/opt/link/libmidorigin.so', 'libdep.so.1': 'not found' });
  assert.deepEqual(Object.fromEntries(lddTreeView('opt/app/bin/origin-exe')), Object.fromEntries(got));
});

test('wrong class and wrong machine earlier in the path are skipped', { skip: !canBuild && 'needs gcc and ldd on x86_64 Linux' }, async () => {
  const got = await treeView('/opt/app/bin/skip-exe');
  assert.equal(got.get('libmid.so'), '/opt/app/lib/libmid.so');
  assert.equal(lddTreeView('opt/app/bin/skip-exe').get('libmid.so'), '/opt/app/lib/libmid.so');
  // The other way round: a 32-bit requester takes the ELF32 file.
  // A bare 52-byte ELF32 header is shorter than an Elf64_Ehdr: ld.so fails on it rather than skipping.
  await fs.writeFile(R('opt/app/lib32/libstub.so'), fakeElf(32, 3, 52));
  await assert.rejects(
    findLibrary({ source: src, name: 'libstub.so', requester: req64({ runpath: ['/opt/app/lib32'] }), }),
    (e: unknown) => e instanceof MkportableError && e.code === 'ELF_INVALID' && /too short/.test(e.message),
  );
  await fs.rm(R('opt/app/lib32/libstub.so'));
  const r32 = await findLibrary({ source: src, name: 'libmid.so', requester: { class: 32, machine: 3, rpathChain: [], runpath: ['/opt/app/lib', '/opt/app/lib32'] }, });
  assert.equal(r32, '/opt/app/lib32/libmid.so');
});

test('a non-ELF file earlier in RUNPATH is fatal, as for ld.so; the cache of ld.so.conf dirs leaves it out', { skip: !canBuild && 'needs gcc and ldd on x86_64 Linux' }, async () => {
  await assert.rejects(
    findLibrary({ source: src, name: 'libmid.so', requester: req64({ runpath: ['/opt/app/junk', '/opt/app/lib'] }) }),
    (e: unknown) => e instanceof MkportableError && e.code === 'ELF_INVALID' && e.subject === '/opt/app/junk/libmid.so',
  );
  // A directory where a library is expected is also fatal for ld.so (EISDIR).
  await assert.rejects(
    findLibrary({ source: src, name: 'lib', requester: req64({ runpath: ['/opt/app'] }) }),
    (e: unknown) => e instanceof MkportableError && e.code === 'ELF_INVALID',
  );
  const junk = spawnSync('ldd', [R('opt/app/bin/junk-exe')], { encoding: 'utf8' });
  assert.match(junk.stdout + junk.stderr, /junk\/libmid\.so: (invalid ELF header|file too short)/);
  const conf = await readLdSoConf(src);
  assert.deepEqual(conf, ['/opt/app/junk', '/opt/app/lib32', '/opt/app/lib']);
  assert.equal(await findLibrary({ source: src, name: 'libmid.so', requester: req64(), cache: { dirs: conf } }), '/opt/app/lib/libmid.so');
});

test('ld.so.conf directories (via an include glob) resolve the whole closure', { skip: !canBuild && 'needs gcc and ldd on x86_64 Linux' }, async () => {
  const conf = await readLdSoConf(src);
  const got = await treeView('/opt/app/bin/plain-exe', conf);
  assert.deepEqual(Object.fromEntries(got), { 'libmid.so': '/opt/app/lib/libmid.so', 'libdep.so.1': '/opt/app/lib/libdep.so.1' });
  assert.deepEqual(Object.fromEntries(await treeView('/opt/app/bin/plain-exe')), { 'libmid.so': 'not found' });
});

test('default dirs, merged /usr, absolute links inside the source, names with a slash', { skip: !canBuild && 'needs gcc and ldd on x86_64 Linux' }, async () => {
  await fs.symlink('usr/lib64', R('lib64'));
  await fs.symlink('/opt/app/lib/libdep.so.1.0', R('usr/lib64/libdep.so.1'));
  await fs.symlink('/usr/lib/x86_64-linux-gnu/libc.so.6', R('usr/lib64/libc.so.6')); // host-only target
  const find = (name: string, over = {}) => findLibrary({ source: src, name, requester: req64(over), });
  // /lib64 comes first and is a link to usr/lib64: the answer names the physical directory.
  assert.equal(await find('libdep.so.1'), '/usr/lib64/libdep.so.1');
  assert.equal(await find('libc.so.6'), undefined);
  assert.equal(await find('/opt/app/lib/libmid.so'), '/opt/app/lib/libmid.so');
  assert.equal(await find('opt/app/lib/libmid.so'), '/opt/app/lib/libmid.so');
  assert.equal(await find('/opt/app/lib32/libmid.so'), undefined);
  assert.equal(await find('/lib64/libdep.so.1'), '/usr/lib64/libdep.so.1');
  // RPATH chain is searched before RUNPATH ... unless there is a RUNPATH, which disables it.
  assert.equal(await find('libmid.so', { rpathChain: ['/opt/app/lib'] }), '/opt/app/lib/libmid.so');
  assert.equal(await find('libmid.so', { rpathChain: ['/opt/app/lib'], runpath: ['/opt/app/lib32'] }), undefined);
  await fs.rm(R('lib64'));
  await fs.rm(R('usr/lib64/libdep.so.1'));
  await fs.rm(R('usr/lib64/libc.so.6'));
});

// ---------------------------------------------------------------------------------------------------
// the image's own loader

const LDCONFIG = ['/usr/sbin/ldconfig', '/sbin/ldconfig'].find(existsSync);
const MUSL_LIBC = ['/usr/lib/x86_64-linux-musl/libc.so', '/lib/x86_64-linux-musl/libc.so'].find(existsSync);

test('the host glibc loader: system directories as `ld.so --help` lists them, its soname, $LIB and cache', { skip: !existsSync('/lib64/ld-linux-x86-64.so.2') && 'no x86-64 glibc' }, async () => {
  const loader = await loaderFor(hostSource(), '/lib64/ld-linux-x86-64.so.2', { class: 64, machine: X86_64, flags: 0 });
  const help = spawnSync('/lib64/ld-linux-x86-64.so.2', ['--help'], { encoding: 'utf8' }).stdout;
  assert.deepEqual(loader.systemDirs, [...help.matchAll(/^\s+(\/\S*) \(system search path\)$/gm)].map((m) => m[1]));
  assert.equal(loader.kind, 'glibc');
  assert.equal(loader.soname, 'ld-linux-x86-64.so.2');
  assert.equal(loader.cachePath, '/etc/ld.so.cache');
  assert.equal(loader.cacheFlags, 0x303);
  if (HOST_LIB) assert.equal(loader.lib, HOST_LIB);
  assert.ok(loaderProvides(loader, 'ld-linux-x86-64.so.2'));
  assert.ok(!loaderProvides(loader, 'libc.so.6'));
  // A loader that is not there: the neutral guess, and the message says so.
  const missing = await loaderFor(directorySource(os.tmpdir()), '/lib64/ld-linux-x86-64.so.2', { class: 64, machine: X86_64, flags: 0 });
  assert.deepEqual(missing.systemDirs, defaultLibDirs(64, X86_64));
  assert.match(missing.systemDirsFrom, /^assumed \(\/lib64\/ld-linux-x86-64.so.2 is not in dir:/);
});

test('musl: the path file beside the loader\'s prefix, else the built-in default; libc and friends are the loader', async (t) => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'musl-rules-'));
  t.after(() => fs.rm(root, { recursive: true, force: true }));
  const w = async (p: string, data: string | Uint8Array) => {
    await fs.mkdir(path.dirname(path.join(root, p)), { recursive: true });
    await fs.writeFile(path.join(root, p), data);
  };
  const libc = MUSL_LIBC ? await fs.readFile(MUSL_LIBC) : fakeElf(64, X86_64);
  await w('lib/ld-musl-x86_64.so.1', libc);
  await w('usr/lib/ld-musl-x86_64.so.1', libc);
  const s = directorySource(root);
  const req = { class: 64 as const, machine: X86_64, flags: 0 };
  let l = await loaderFor(s, '/lib/ld-musl-x86_64.so.1', req);
  assert.equal(l.kind, 'musl');
  assert.equal(l.pathFile, '/etc/ld-musl-x86_64.path');
  assert.deepEqual(l.systemDirs, ['/lib', '/usr/local/lib', '/usr/lib']);
  assert.match(l.systemDirsFrom, /built-in default/);
  await w('etc/ld-musl-x86_64.path', '/opt/lib\n/usr/lib/:relative\n\n/opt/lib\n');
  l = await loaderFor(s, '/lib/ld-musl-x86_64.so.1', req);
  assert.deepEqual(l.systemDirs, ['/opt/lib', '/usr/lib', '/relative']);
  assert.equal(l.systemDirsFrom, '/etc/ld-musl-x86_64.path');
  // The prefix is the loader's folder's parent: /usr/lib/ld-musl-… reads /usr/etc/….
  l = await loaderFor(s, '/usr/lib/ld-musl-x86_64.so.1', req);
  assert.equal(l.pathFile, '/usr/etc/ld-musl-x86_64.path');
  assert.deepEqual(l.systemDirs, ['/lib', '/usr/local/lib', '/usr/lib']);
  // An empty path file, or one that cannot be read, leaves an empty search path.
  await w('usr/etc/ld-musl-x86_64.path/x', '');
  assert.deepEqual((await loaderFor(s, '/usr/lib/ld-musl-x86_64.so.1', req)).systemDirs, []);
  await w('etc/ld-musl-x86_64.path', '');
  assert.deepEqual((await loaderFor(s, '/lib/ld-musl-x86_64.so.1', req)).systemDirs, []);
  for (const n of ['libc.so', 'libc.musl-x86_64.so.1', 'libpthread.so.0', 'libm.so.6', 'libdl.so.2', 'librt.so.1']) assert.ok(loaderProvides(l, n), n);
  for (const n of ['libcrypto.so.3', 'libmagic.so.1', 'libz.so.1']) assert.ok(!loaderProvides(l, n), n);
  // A library with no PT_INTERP of its own that links musl's libc is loaded by musl.
  assert.equal((await loaderForLibrary(s, { ...req, needed: ['libc.so'] })).kind, 'musl');
  assert.equal((await loaderForLibrary(s, { ...req, needed: ['libc.musl-x86_64.so.1'] })).kind, 'musl');
  // With no glibc loader in the source, musl's is the one there is.
  assert.equal((await loaderForLibrary(s, { ...req, needed: ['libz.so.1'] })).kind, 'musl');
});

test('musl takes the first file of the name, where glibc skips one of another class', { skip: !canBuild && 'needs gcc on x86_64 Linux' }, async () => {
  const opts = { source: src, name: 'libmid.so', requester: req64({ rpathChain: ['/opt/app/lib32', '/opt/app/lib'] }) };
  assert.equal(await findLibrary({ ...opts, kind: 'glibc' }), '/opt/app/lib/libmid.so');
  await assert.rejects(findLibrary({ ...opts, kind: 'musl' }), (e: unknown) => e instanceof MkportableError && e.code === 'ELF_INVALID' && /musl's loader takes the first file/.test(e.message));
  assert.equal(await findLibrary({ ...opts, kind: 'musl', requester: req64({ rpathChain: ['/nowhere', '/opt/app/lib'] }) }), '/opt/app/lib/libmid.so');
  assert.equal(await findLibrary({ ...opts, kind: 'musl', requester: req64(), systemDirs: ['/opt/app/lib'] }), '/opt/app/lib/libmid.so');
});

test('the cache we write holds what ldconfig -r puts in its cache, and the search agrees with it', { skip: (!canBuild || !LDCONFIG) && 'needs gcc and ldconfig' }, async (t) => {
  const r = await fs.mkdtemp(path.join(os.tmpdir(), 'ldcache-tree-'));
  t.after(() => fs.rm(r, { recursive: true, force: true }));
  for (const d of ['etc', 'opt/app/lib', 'usr/lib/x86_64-linux-gnu', 'usr/local/lib', 'c']) await fs.mkdir(path.join(r, d), { recursive: true });
  await fs.symlink('usr/lib', path.join(r, 'lib'));
  await fs.writeFile(path.join(r, 'c/f.c'), 'int f(void){return 1;}\n');
  const so = (out: string, soname?: string) => gcc(['-shared', '-fPIC', '-o', path.join(r, out), ...(soname ? [`-Wl,-soname,${soname}`] : []), path.join(r, 'c/f.c')]);
  so('opt/app/lib/libapp.so.1.2.3', 'libapp.so.1');
  await fs.symlink('libapp.so.1.2.3', path.join(r, 'opt/app/lib/libapp.so.1'));
  await fs.symlink('libapp.so.1', path.join(r, 'opt/app/lib/libapp.so'));
  so('opt/app/lib/libdup.so.2', 'libdup.so.2');
  so('usr/lib/x86_64-linux-gnu/libdup.so.2', 'libdup.so.2'); // the ld.so.conf folder comes first
  so('usr/lib/x86_64-linux-gnu/libsys.so.4', 'libsys.so.4');
  so('usr/lib/libplain.so.5');
  await fs.writeFile(path.join(r, 'opt/app/lib/libscript.so'), 'INPUT(libapp.so.1)\n');
  await fs.writeFile(path.join(r, 'opt/app/lib/lib32.so.1'), fakeElf(32, 3));
  await fs.writeFile(path.join(r, 'etc/ld.so.conf'), 'include /etc/ld.so.conf.d/*.conf\n');
  await fs.mkdir(path.join(r, 'etc/ld.so.conf.d'));
  await fs.writeFile(path.join(r, 'etc/ld.so.conf.d/app.conf'), '/opt/app/lib\n/usr/local/lib\n');
  const source = directorySource(r);
  const loader = await loaderFor(hostSource(), '/lib64/ld-linux-x86-64.so.2', { class: 64, machine: X86_64, flags: 0 });
  const dirs = [...(await readLdSoConf(source)), ...loader.systemDirs];
  const ours = await ldCacheEntries(source, dirs, 0x303);
  const ourCache = parseLdCache(serializeLdCache({ entries: ours }), 'ours');

  const run = spawnSync(LDCONFIG!, ['-X', '-r', r, '-C', '/etc/ref.cache'], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const theirs = parseLdCache(await fs.readFile(path.join(r, 'etc/ref.cache')), 'ref');
  const inRoot = (p: string) => realpathIn(source, p);
  assert.ok(theirs.entries.length >= 5);
  for (const e of theirs.entries) {
    const mine = lookupLdCache(ourCache, e.key, e.flags);
    assert.ok(mine, `${e.key} missing from ours`);
    assert.equal(await inRoot(mine), await inRoot(lookupLdCache(theirs, e.key, e.flags)!), e.key);
  }
  assert.equal(lookupLdCache(ourCache, 'libdup.so.2', 0x303), '/opt/app/lib/libdup.so.2');
  for (const absent of ['libscript.so', 'lib32.so.1']) assert.equal(lookupLdCache(ourCache, absent, 0x303), undefined, absent);
  // The closure's view (the cache as folders) and the cache file give the same answer for every name.
  const names = new Set([...ours.map((e) => e.key), 'libscript.so', 'lib32.so.1', 'libnone.so.1']);
  for (const name of names) {
    const base = { source, name, requester: req64(), systemDirs: loader.systemDirs };
    const viaDirs = await findLibrary({ ...base, cache: { dirs } }).catch((e: Error) => `error ${e.message}`);
    const viaFile = await findLibrary({ ...base, cache: { file: ourCache } }).catch((e: Error) => `error ${e.message}`);
    assert.equal(viaDirs, viaFile, name);
  }
});
