// Nix store closures computed from the bytes, on synthetic stores (a temp dir seen through directorySource).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, lstatSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_CHUNK, nixClosure, scanReferences, storeCandidates, storePathOf, type ScanStats } from './nix.js';
import { addPath, createClosure, type Why } from './resolve.js';
import { SYSTEMD_DEFAULT_PATH } from '../systemd/portabled.js';
import { createTree } from '../plan/tree.js';
import { directorySource } from '../sources/host.js';
import { MkportableError, type BuildWarning } from '../errors.js';
import { portableService } from '../build.js';

const ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

/** A deterministic nix-base32 hash part. */
function hashPart(seed: string): string {
  const d = createHash('sha256').update(seed).digest();
  let out = '';
  for (let i = 0; i < 32; i++) out += ALPHABET[d[i] & 31];
  return out;
}

const temps: string[] = [];
after(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A temp root with a `/nix/store`; `sp(name)` is the store path `/nix/store/<hash of name>-<name>`. */
function makeStore() {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mkportable-nix-'));
  temps.push(root);
  mkdirSync(path.join(root, 'nix/store'), { recursive: true });
  const sp = (name: string) => `/nix/store/${hashPart(name)}-${name}`;
  const host = (p: string) => path.join(root, p);
  const file = (p: string, data: string | Uint8Array, mode = 0o644) => {
    mkdirSync(path.dirname(host(p)), { recursive: true });
    writeFileSync(host(p), data);
    chmodSync(host(p), mode);
  };
  const link = (p: string, target: string) => {
    mkdirSync(path.dirname(host(p)), { recursive: true });
    symlinkSync(target, host(p));
  };
  return { root, source: directorySource(root), sp, host, file, link };
}

const stats = (): ScanStats => ({ bytesScanned: 0 });
const strict: Why = { reason: 'test', strict: true, envPath: SYSTEMD_DEFAULT_PATH };

test('storePathOf: the /nix/store/<hash>-<name> prefix, nothing for other paths', () => {
  const h = hashPart('x');
  assert.equal(storePathOf(`/nix/store/${h}-hello-2.12/bin/hello`), `/nix/store/${h}-hello-2.12`);
  assert.equal(storePathOf(`/nix/store/${h}-hello-2.12`), `/nix/store/${h}-hello-2.12`);
  assert.equal(storePathOf(`/nix/store/${h}-a+b=c?d_e.f`), `/nix/store/${h}-a+b=c?d_e.f`);
  assert.equal(storePathOf(`//nix/./store/${h}-x/../${h}-y/z`), `/nix/store/${h}-y`);
  assert.equal(storePathOf('/nix/store'), undefined);
  assert.equal(storePathOf('/nix/store/.links/abc'), undefined);
  assert.equal(storePathOf(`/nix/store/${h}`), undefined, 'no name');
  assert.equal(storePathOf(`/nix/store/${h}-.hidden`), undefined, 'a name cannot start with a dot');
  assert.equal(storePathOf(`/nix/store/${h.slice(0, 31)}e-x`), undefined, "'e' is not nix-base32");
  assert.equal(storePathOf(`/nix/store/${h}-has space`), undefined);
  assert.equal(storePathOf(`/usr/nix/store/${h}-x`), undefined);
  assert.equal(storePathOf(`/nix/store/${h}-${'n'.repeat(212)}`), undefined, 'names are at most 211 characters');
});

test('a chain of references through file contents, symlink targets and a self-reference', async () => {
  const s = makeStore();
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(s.sp);
  s.file(`${a}/bin/a`, `#!/bin/sh\nexec ${b}/bin/b "$@"\n`, 0o755);
  s.link(`${b}/bin/b`, `${c}/libexec/c`);
  s.file(`${c}/libexec/c`, `data\0${c}/share\0more`); // self-reference
  s.file(`${d}/unrelated`, 'nothing');
  const st = stats();
  assert.deepEqual(await nixClosure(s.source, [`${a}/bin/a`], st), [a, b, c].sort());
  assert.deepEqual(await nixClosure(s.source, [d], stats()), [d]);
  assert.deepEqual([...(await scanReferences(s.source, c, await storeCandidates(s.source), stats()))], [c]);
  const expected = Buffer.byteLength(readFileSync(s.host(`${a}/bin/a`))) + readlinkSync(s.host(`${b}/bin/b`)).length
    + lstatSync(s.host(`${c}/libexec/c`)).size + ['bin', 'a', 'bin', 'b', 'libexec', 'c'].join('').length;
  assert.equal(st.bytesScanned, expected, 'contents, link targets and entry names');
});

test("a hash part counts wherever it is (Nix's reference scanning rule): bare, in an entry name, inside a relative link", async () => {
  const s = makeStore();
  const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map(s.sp);
  s.file(`${a}/f`, `binary\x01${hashPart('b')}\x02`); // no /nix/store/ prefix, no name: Nix still counts it
  s.file(`${b}/by-hash/${hashPart('c')}`, ''); // an entry name (Nix scans the NAR, names included)
  s.link(`${c}/rel`, `../${hashPart('d')}-d/x`);
  s.file(`${d}/x`, '');
  s.file(`${e}/x`, '');
  assert.deepEqual(await nixClosure(s.source, [a], stats()), [a, b, c, d].sort());
});

test('cycles close; several roots share one answer', async () => {
  const s = makeStore();
  const [a, b, c] = ['a', 'b', 'c'].map(s.sp);
  s.file(`${a}/x`, `${b}`);
  s.file(`${b}/x`, `${c}`);
  s.file(`${c}/x`, `${a}`);
  for (const r of [a, b, c]) assert.deepEqual(await nixClosure(s.source, [r], stats()), [a, b, c].sort());
  assert.deepEqual(await nixClosure(s.source, [a, `${b}/x`, c], stats()), [a, b, c].sort());
});

test('store paths that are a file or a symlink, and a lock file sharing a hash', async () => {
  const s = makeStore();
  const [a, b, c] = ['a.sh', 'b', 'c'].map(s.sp);
  s.file(a, `#!${b}/bin/sh\n`, 0o555); // a store path that is a single file (builtins.toFile)
  s.link(b, c); // a store path that is a symlink
  s.file(`${c}/bin/sh`, '');
  s.file(`${c}.lock`, ''); // Nix's lock file for c: same hash, not a store path of its own
  const cands = await storeCandidates(s.source);
  assert.equal(cands.get(hashPart('c')), c);
  assert.deepEqual(await nixClosure(s.source, [a], stats()), [a, b, c].sort());
});

test('a hash split across chunk boundaries is found at every split point', async () => {
  const s = makeStore();
  const b = s.sp('b');
  s.file(`${b}/x`, '');
  for (let cut = 1; cut < 32; cut++) {
    // With 64-byte chunks the hash starts `cut` bytes before the end of the first chunk.
    const a = s.sp(`a${cut}`);
    s.file(`${a}/f`, Buffer.concat([Buffer.alloc(64 - cut, 0), Buffer.from(hashPart('b')), Buffer.alloc(100, 0x2e)]));
    const refs = await scanReferences(s.source, a, await storeCandidates(s.source), stats(), { chunkSize: 64 });
    assert.deepEqual([...refs], [b], `split after ${cut} bytes`);
  }
  // The default chunk size: a 1 MiB + 1 KiB file with the hash across the first boundary, as a full path.
  const s2 = makeStore();
  const [c, d] = ['c', 'd'].map(s2.sp);
  s2.file(`${d}/x`, '');
  const big = Buffer.alloc(DEFAULT_CHUNK + 1024, 0x01);
  Buffer.from(`${d}/bin/d`).copy(big, DEFAULT_CHUNK - 30);
  s2.file(`${c}/big`, big);
  const st = stats();
  assert.deepEqual(await nixClosure(s2.source, [c], st), [c, d].sort());
  assert.equal(st.bytesScanned, big.length + 'big'.length + 'x'.length);
});

test('a full store path whose store path is missing is an error naming the referrer; bare hashes and .drv files are not', async () => {
  const s = makeStore();
  const [a, b, gone] = ['a', 'b', 'gone'].map(s.sp);
  s.file(`${a}/bin/a`, `#!/bin/sh\nexec ${b}/bin/b\n`, 0o755);
  s.file(`${b}/bin/b`, `#!/bin/sh\nexec ${gone}/bin/gone\n`, 0o755);
  await assert.rejects(nixClosure(s.source, [a], stats()), (e: unknown) => {
    assert.ok(e instanceof MkportableError);
    assert.equal(e.code, 'PATH_NOT_FOUND');
    assert.equal(e.subject, `${b}/bin/b`);
    assert.match(e.message, new RegExp(`^${b}/bin/b refers to ${gone}, which is not in /nix/store of dir:`));
    return true;
  });
  // Reported, not thrown, through onMissing; the closure is still computed.
  const missing: string[] = [];
  assert.deepEqual(await nixClosure(s.source, [a], stats(), { onMissing: (e) => missing.push(e.subject!) }), [a, b].sort());
  assert.deepEqual(missing, [`${b}/bin/b`]);
  // Found at every split point of a small chunk size too, and in symlink targets.
  for (let cut = 1; cut < 45; cut++) {
    const t = makeStore();
    const x = t.sp('x');
    t.file(`${x}/f`, Buffer.concat([Buffer.alloc(64 - cut, 0), Buffer.from(`${gone}/y`), Buffer.alloc(70, 0)]));
    await assert.rejects(nixClosure(t.source, [x], stats(), { chunkSize: 64 }), new RegExp(`${x}/f refers to ${gone}, which`), `cut ${cut}`);
  }
  const t = makeStore();
  const [l, drv, bare] = ['l', 'foo.drv', 'bare'].map(t.sp);
  t.link(`${l}/bin/x`, `${gone}/bin/x`);
  await assert.rejects(nixClosure(t.source, [l], stats()), new RegExp(`${l}/bin/x refers to ${gone}, which`));
  t.file(drv, `Derive([("out","${gone}","","")],[],[],"x86_64-linux","/bin/sh",[],[])`); // an output not built
  assert.deepEqual(await nixClosure(t.source, [drv], stats()), [drv]);
  t.file(`${bare}/f`, `sha: ${hashPart('gone')} / ${hashPart('gone')}-gone`); // not a full store path
  assert.deepEqual(await nixClosure(t.source, [bare], stats()), [bare]);
});

test('a root that does not exist, or is outside the store, is PATH_NOT_FOUND', async () => {
  const s = makeStore();
  await assert.rejects(nixClosure(s.source, [`${s.sp('nope')}/bin/x`], stats()), (e: unknown) =>
    e instanceof MkportableError && e.code === 'PATH_NOT_FOUND' && /does not exist in dir:/.test(e.message));
  await assert.rejects(nixClosure(s.source, ['/usr/bin/env'], stats()), /not inside a store path/);
});

/** Nix's definition, the slow way: every byte of a store path in memory, every known hash looked for. */
async function naiveClosure(root: string, roots: string[]): Promise<string[]> {
  const store = path.join(root, 'nix/store');
  const names = readdirSync(store);
  const bytesOf = (p: string): string => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return readlinkSync(p);
    if (st.isFile()) return readFileSync(p, 'latin1');
    return readdirSync(p).sort().map((n) => `${n}\0${bytesOf(path.join(p, n))}`).join('\0');
  };
  const seen = new Set(roots);
  const queue = [...roots];
  while (queue.length) {
    const text = bytesOf(path.join(root, queue.shift()!));
    for (const n of names) {
      const sp = `/nix/store/${n}`;
      if (!seen.has(sp) && text.includes(n.slice(0, 32))) {
        seen.add(sp);
        queue.push(sp);
      }
    }
  }
  return [...seen].sort();
}

/** A tiny seeded generator (mulberry32) so failures can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('random stores: the same closures as the naive definition, whatever the chunk size', async () => {
  for (const seed of [1, 2, 3]) {
    const rand = rng(seed);
    const s = makeStore();
    const n = 60;
    const paths = Array.from({ length: n }, (_, i) => s.sp(`p${seed}-${i}`));
    for (let i = 0; i < n; i++) {
      const refs = paths.filter(() => rand() < 0.04);
      const parts: Buffer[] = [];
      for (const r of refs) {
        parts.push(Buffer.from(Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256))));
        parts.push(Buffer.from(rand() < 0.5 ? r : r.slice(11, 43)));
      }
      s.file(`${paths[i]}/lib/data`, Buffer.concat(parts));
      if (rand() < 0.3) s.link(`${paths[i]}/link`, `${paths[Math.floor(rand() * n)]}/lib`);
    }
    const roots = [paths[0], paths[1]];
    const expected = await naiveClosure(s.root, roots);
    for (const chunkSize of [64, 97, 1000, DEFAULT_CHUNK]) {
      assert.deepEqual(await nixClosure(s.source, roots, stats(), { chunkSize }), expected, `seed ${seed}, chunk ${chunkSize}`);
    }
  }
});

// Speed is a benchmark's business; here only a hang (the runner's timeout) or a wrong count fails.
test('a store of 3000 paths: the closure holds all 3000 and every byte is scanned exactly once', { timeout: 10 * 60_000 }, async () => {
  const s = makeStore();
  const n = 3000;
  const paths = Array.from({ length: n }, (_, i) => s.sp(`pkg-${i}`));
  let total = 0;
  const filler = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131) % 256));
  for (let i = 0; i < n; i++) {
    // Each path refers to its successor and to a pseudo-random other path, through a file; a few through links.
    const refs = [paths[(i + 1) % n], paths[(i * 7919 + 13) % n]];
    const data = Buffer.concat([filler, Buffer.from(refs.join('\n')), filler]);
    s.file(`${paths[i]}/lib/libpkg.so`, data);
    total += data.length + 'lib'.length + 'libpkg.so'.length;
    if (i % 10 === 0) {
      s.link(`${paths[i]}/share`, `${paths[(i + 2) % n]}/lib`);
      total += `${paths[(i + 2) % n]}/lib`.length + 'share'.length;
    }
  }
  const st = stats();
  const t0 = performance.now();
  const closure = await nixClosure(s.source, [paths[0]], st);
  const ms = performance.now() - t0;
  assert.equal(closure.length, n);
  assert.equal(st.bytesScanned, total);
  console.log(`# 3000-path store: ${(st.bytesScanned / 1e6).toFixed(1)} MB scanned in ${ms.toFixed(0)} ms`);
});

test('addPath: a path into the store brings whole store paths and their closure, once', async () => {
  const s = makeStore();
  const [tool, sh, data, other] = ['tool', 'sh', 'data', 'other'].map(s.sp);
  s.link('/usr/bin/tool', `${tool}/bin/tool`); // a host path leading into the store
  s.file(`${tool}/bin/tool`, `#!${sh}/bin/sh\ncat ${data}/share/greeting\n`, 0o755);
  s.file(`${tool}/share/doc/README`, 'docs');
  s.file(`${sh}/bin/sh`, 'not elf', 0o755);
  s.file(`${data}/share/greeting`, 'hello');
  s.file(`${other}/x`, 'not referenced');
  const tree = createTree();
  const warnings: BuildWarning[] = [];
  const c = createClosure(s.source, tree, 0, warnings, { nixStore: true });
  assert.equal(await addPath(c, '/usr/bin/tool', strict), `${tool}/bin/tool`);
  assert.deepEqual([...c.nix!.done].sort(), [tool, sh, data].sort());
  for (const p of ['/usr/bin/tool', `${tool}/bin/tool`, `${tool}/share/doc/README`, `${sh}/bin/sh`, `${data}/share/greeting`]) {
    assert.ok(tree.entries.has(p), p);
  }
  assert.ok(!tree.entries.has(other));
  assert.equal(tree.entries.get(`${tool}/bin/tool`)!.reason, 'test');
  assert.equal(tree.entries.get(`${tool}/bin/tool`)!.mode, 0o755);
  assert.equal(tree.entries.get(`${data}/share/greeting`)!.reason, `Nix closure of ${tool}`);
  assert.equal(tree.entries.get(`${data}/share/greeting`)!.uid, 0);
  const scanned = c.nix!.stats.bytesScanned;
  assert.ok(scanned > 0);
  // Asking again (another path of a store path already in) scans nothing more.
  await addPath(c, `${data}/share/greeting`, strict);
  assert.equal(c.nix!.stats.bytesScanned, scanned);
  assert.deepEqual(warnings, []);

  // Without the option (inspect) only what the program needs goes in.
  const plain = createClosure(s.source, createTree(), 0, [], {});
  await addPath(plain, '/usr/bin/tool', strict);
  assert.ok(plain.tree.entries.has(`${sh}/bin/sh`));
  assert.ok(!plain.tree.entries.has(`${tool}/share/doc/README`));
  assert.equal(plain.nix, undefined);
});

test('addPath: a dangling store reference fails a strict request and warns otherwise', async () => {
  const s = makeStore();
  const [prog, gone] = ['prog', 'gone'].map(s.sp);
  s.file(`${prog}/bin/prog`, `#!/bin/interp\n${gone}/lib\n`, 0o755);
  s.file('/bin/interp', '', 0o755);
  const c = createClosure(s.source, createTree(), 0, [], { nixStore: true });
  await assert.rejects(addPath(c, `${prog}/bin/prog`, strict), new RegExp(`${prog}/bin/prog refers to ${gone}, which`));
  const warnings: BuildWarning[] = [];
  const c2 = createClosure(s.source, createTree(), 0, warnings, { nixStore: true });
  await addPath(c2, `${prog}/bin/prog`, { ...strict, strict: false });
  assert.deepEqual(warnings.map((w) => [w.rule, w.subject]), [['store-path-missing', `${prog}/bin/prog`]]);
});

test('portableService: a unit whose program is a store path gets the closure; the result lists it', async () => {
  const s = makeStore();
  const [demo, sh] = ['demo', 'sh'].map(s.sp);
  s.file(`${demo}/bin/demo`, `#!${sh}/bin/sh\necho hi\n`, 0o755);
  s.file(`${sh}/bin/sh`, 'not elf', 0o755);
  s.file(`${s.sp('unused')}/x`, '');
  const out = mkdtempSync(path.join(os.tmpdir(), 'mkportable-nix-out-'));
  temps.push(out);
  const r = await portableService(
    { pname: 'demo', version: '1', units: [{ name: 'demo.service', text: `[Service]\nExecStart=${demo}/bin/demo\n` }], outDir: out },
    { source: s.source },
  );
  assert.deepEqual(r.nixStorePaths, [demo, sh].sort());
  assert.ok(r.bytesScanned > 0);
  assert.ok(r.files.some((f) => f.path === `${sh}/bin/sh`));
  assert.ok(!r.files.some((f) => f.path.includes('-unused')));
});
