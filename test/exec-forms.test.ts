// Build and inspect judge a unit's programs by the same rules (units/programs.ts): for every Exec*= form (every key
// of [Service] and [Socket], every combination of the prefixes @ - : + ! !!, bare names found through
// ExecSearchPath= and the default PATH, scripts found through Environment=PATH= or ExecSearchPath=, quoted and
// escaped words, several commands on a line, specifiers) the build puts the program into the image and the build's
// own check passes; and removing that one program makes the build fail and makes inspect, on the built image with
// the same file hidden, report it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { portableService, MkportableError, directorySource, type BuildResult, type Source } from '../src/index.js';
import { EXEC_KEYS, SOCKET_EXEC_KEYS } from '../src/formats/unitfile.js';
import { inspectSource, type InspectReport } from '../src/inspect/index.js';
import { openImage } from '../src/squashfs/read/index.js';
import { squashfsSource } from '../src/sources/squashfs.js';
import { normalizeImagePath } from '../src/plan/tree.js';
import { tempDir } from './support/env.js';

interface Form {
  /** What the form shows, for messages. */
  what: string;
  unit: string;
  key: string;
  /** The file whose absence must fail the build and be reported by inspect. */
  breaks: string;
  /** The inspect rule for its absence, and what the message must name. */
  rule: 'exec-missing' | 'script-interpreter-missing';
  names: string;
}

/** The source with one path (and what is under it) gone. */
function hiding(inner: Source, gone: string): Source {
  const hidden = (p: string) => {
    const n = normalizeImagePath(p);
    return n === gone || n.startsWith(`${gone}/`);
  };
  const enoent = (p: string) => Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
  return {
    name: inner.name,
    lstat: async (p) => (hidden(p) ? null : inner.lstat(p)),
    readlink: async (p) => {
      if (hidden(p)) throw enoent(p);
      return inner.readlink(p);
    },
    readdir: async (p) => {
      if (hidden(p)) throw enoent(p);
      const dir = normalizeImagePath(p);
      return (await inner.readdir(p)).filter((n) => !hidden(`${dir}/${n}`));
    },
    read: async (p, o, l) => {
      if (hidden(p)) throw enoent(p);
      return inner.read(p, o, l);
    },
    readFile: async (p) => {
      if (hidden(p)) throw enoent(p);
      return inner.readFile(p);
    },
    hostPath: (p) => (hidden(p) ? undefined : inner.hostPath(p)),
  };
}

const PREFIX_SETS: string[][] = [];
for (let m = 0; m < 8; m++) {
  const base = ['@', '-', ':'].filter((_, i) => m & (1 << i));
  for (const priv of ['', '+', '!', '!!']) PREFIX_SETS.push(priv ? [...base, priv] : base);
}

describe('build and inspect agree on every Exec*= form', () => {
  let root: string;
  let out: string;
  const forms: Form[] = [];
  const units: { name: string; text: string }[] = [];
  /** Image paths the build must add, each with the reason it must give. */
  const expected = new Map<string, string>();
  let good: BuildResult;

  const program = (p: string, body = 'not a script, not ELF\n') => {
    const file = path.join(root, p);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, body);
    chmodSync(file, 0o755);
  };

  before(async () => {
    root = tempDir('mkportable-exec-forms-');
    out = path.join(root, '..', `${path.basename(root)}-out`);
    program('/usr/bin/env');
    const service: string[] = ['[Service]', 'Type=oneshot'];
    const socket: string[] = ['[Socket]', 'ListenStream=/run/demo.sock'];
    const pairs = [...EXEC_KEYS.map((k) => ['demo.service', k] as const), ...SOCKET_EXEC_KEYS.map((k) => ['demo.socket', k] as const)];

    // Every prefix combination (in a rotating order: systemd takes them in any order), spread over every key.
    PREFIX_SETS.forEach((set, i) => {
      const prefix = [...set.slice(i % (set.length || 1)), ...set.slice(0, i % (set.length || 1))].join('');
      const [unit, key] = pairs[i % pairs.length];
      const exe = `/usr/bin/pfx-${i}`;
      program(exe);
      (unit === 'demo.service' ? service : socket).push(`${key}=${prefix}${exe} ${set.includes('@') ? 'argv0-name ' : ''}--arg`);
      forms.push({ what: `prefix '${prefix}'`, unit, key, breaks: exe, rule: 'exec-missing', names: unit });
      expected.set(exe, `${key}= of ${unit}`);
    });

    // Quoting and escapes in the executable and its arguments; several commands on one line.
    program('/usr/bin/with space');
    service.push(`ExecStart="/usr/bin/with space" "a quoted arg" 'single quoted' \\"escaped\\"`);
    forms.push({ what: 'quoted executable', unit: 'demo.service', key: 'ExecStart', breaks: '/usr/bin/with space', rule: 'exec-missing', names: 'demo.service' });
    program('/usr/bin/escApe');
    service.push('ExecStartPost="/usr/bin/esc\\x41pe" arg');
    forms.push({ what: 'C escape in the executable', unit: 'demo.service', key: 'ExecStartPost', breaks: '/usr/bin/escApe', rule: 'exec-missing', names: 'demo.service' });
    program('/usr/bin/multi-1');
    program('/usr/bin/multi-2');
    service.push('ExecStartPre=/usr/bin/multi-1 one ; /usr/bin/multi-2 two');
    for (const m of ['/usr/bin/multi-1', '/usr/bin/multi-2']) forms.push({ what: "commands split by ' ; '", unit: 'demo.service', key: 'ExecStartPre', breaks: m, rule: 'exec-missing', names: 'demo.service' });
    expected.set('/usr/bin/with space', 'ExecStart= of demo.service');
    expected.set('/usr/bin/escApe', 'ExecStartPost= of demo.service');

    // Specifiers: in an argument the program is still known; in the program itself only systemd can resolve it.
    program('/usr/bin/spec-args');
    service.push('ExecReload=/usr/bin/spec-args %n %i %%');
    forms.push({ what: 'specifiers in arguments', unit: 'demo.service', key: 'ExecReload', breaks: '/usr/bin/spec-args', rule: 'exec-missing', names: 'demo.service' });
    expected.set('/usr/bin/spec-args', 'ExecReload= of demo.service');
    program('/usr/bin/demo-spec');
    service.push('ExecStopPost=/usr/bin/%p-spec');

    // Bare names: the default PATH for a service and a socket.
    program('/usr/sbin/bare-default');
    service.push('ExecCondition=bare-default');
    forms.push({ what: 'bare name in the default PATH', unit: 'demo.service', key: 'ExecCondition', breaks: '/usr/sbin/bare-default', rule: 'exec-missing', names: 'demo.service' });
    program('/usr/local/bin/bare-sock');
    socket.push('ExecStopPost=bare-sock');
    forms.push({ what: 'bare name in the default PATH (socket)', unit: 'demo.socket', key: 'ExecStopPost', breaks: '/usr/local/bin/bare-sock', rule: 'exec-missing', names: 'demo.socket' });

    // ExecSearchPath=: searched in order, instead of the default PATH (a copy in /usr/bin must not be taken), and the
    // processes' PATH when Environment= sets none.
    program('/opt/second/only-second');
    program('/opt/first/in-both');
    program('/usr/bin/in-both');
    program('/usr/bin/search-script', '#!/usr/bin/env helper-s\n');
    program('/opt/second/helper-s');
    units.push({
      name: 'demo-search.service',
      text: ['[Service]', 'Type=oneshot', 'ExecSearchPath=/opt/first', 'ExecSearchPath=/opt/second', 'ExecStart=only-second', 'ExecStartPre=in-both', 'ExecStartPost=/usr/bin/search-script', ''].join('\n'),
    });
    forms.push({ what: 'bare name via ExecSearchPath=', unit: 'demo-search.service', key: 'ExecStart', breaks: '/opt/second/only-second', rule: 'exec-missing', names: 'demo-search.service' });
    forms.push({ what: 'ExecSearchPath= wins over the default PATH', unit: 'demo-search.service', key: 'ExecStartPre', breaks: '/opt/first/in-both', rule: 'exec-missing', names: 'demo-search.service' });
    forms.push({ what: '#!/usr/bin/env via ExecSearchPath=', unit: 'demo-search.service', key: 'ExecStartPost', breaks: '/opt/second/helper-s', rule: 'script-interpreter-missing', names: '/usr/bin/search-script' });
    expected.set('/opt/second/only-second', 'ExecStart= of demo-search.service');
    expected.set('/opt/first/in-both', 'ExecStartPre= of demo-search.service');

    program('/opt/ssearch/sock-searched');
    units.push({ name: 'demo-search.socket', text: '[Socket]\nListenStream=/run/demo-s.sock\nExecSearchPath=/opt/ssearch\nExecStartPre=sock-searched\n' });
    forms.push({ what: 'bare name via a socket\'s ExecSearchPath=', unit: 'demo-search.socket', key: 'ExecStartPre', breaks: '/opt/ssearch/sock-searched', rule: 'exec-missing', names: 'demo-search.socket' });
    expected.set('/opt/ssearch/sock-searched', 'ExecStartPre= of demo-search.socket');

    // Environment=PATH=: the PATH a script's `env` searches, never where systemd looks for the program itself (the
    // image carries /opt/envbin whole, yet without /usr/bin/only-default the program is missing).
    program('/usr/bin/env-script', '#!/usr/bin/env helper-e\n');
    program('/opt/envbin/helper-e');
    program('/opt/envbin/only-default');
    program('/usr/bin/only-default');
    units.push({ name: 'demo-env.service', text: '[Service]\nType=oneshot\nEnvironment="PATH=/opt/envbin:/usr/bin"\nExecStart=/usr/bin/env-script\nExecStartPre=only-default\n' });
    forms.push({ what: '#!/usr/bin/env via Environment=PATH=', unit: 'demo-env.service', key: 'ExecStart', breaks: '/opt/envbin/helper-e', rule: 'script-interpreter-missing', names: '/usr/bin/env-script' });
    forms.push({ what: 'Environment=PATH= is not where systemd finds programs', unit: 'demo-env.service', key: 'ExecStartPre', breaks: '/usr/bin/only-default', rule: 'exec-missing', names: 'demo-env.service' });
    expected.set('/usr/bin/only-default', 'ExecStartPre= of demo-env.service');

    units.unshift({ name: 'demo.service', text: service.join('\n') + '\n' }, { name: 'demo.socket', text: socket.join('\n') + '\n' });
    good = await build(directorySource(root));
  });
  after(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  });

  let n = 0;
  function build(source: Source): Promise<BuildResult> {
    return portableService(
      { pname: 'demo', version: String(n++), units, contents: ['/opt/envbin'], outDir: out, squashCompression: 'gzip -Xcompression-level 1' },
      { source },
    );
  }

  async function inspectImage(image: string, gone?: string): Promise<InspectReport> {
    const img = await openImage(image);
    try {
      const source = squashfsSource(img, path.basename(image));
      return await inspectSource(gone ? hiding(source, gone) : source, { name: path.basename(image), kind: 'raw' });
    } finally {
      await img.close();
    }
  }

  test('the build puts every program in and passes its own check', async () => {
    const files = new Map(good.files.map((f) => [f.path, f]));
    for (const [p, reason] of expected) {
      assert.ok(files.has(p), `${p} (${reason}) is not in the image`);
      assert.equal(files.get(p)!.reason, reason, p);
    }
    for (const f of forms) assert.ok(files.has(f.breaks), `${f.what}: ${f.breaks} is not in the image`);
    assert.ok(!files.has('/usr/bin/in-both'), 'ExecSearchPath= is searched instead of the default PATH');
    assert.ok(!files.has('/usr/bin/demo-spec'), 'a program named with a specifier is left to the author');
    assert.deepEqual(good.warnings.filter((w) => w.code === 'SPECIFIER_IN_EXEC').map((w) => w.subject), ['demo.service']);
    assert.deepEqual(good.units, ['demo.service', 'demo.socket', 'demo-search.service', 'demo-search.socket', 'demo-env.service']);
  });

  test('inspect finds the image clean, and says which program it could not check', async () => {
    const report = await inspectImage(good.image);
    assert.deepEqual(report.problems.map((p) => [p.severity, p.rule]), [['warning', 'exec-specifier']]);
    assert.match(report.problems[0].message, /demo\.service: ExecStopPost= program '\/usr\/bin\/%p-spec'/);
    assert.deepEqual(good.problems, report.problems, 'the build reports what inspect reports');
  });

  test('without any one program, the build fails and inspect reports it', async () => {
    assert.ok(forms.length >= PREFIX_SETS.length + 10);
    const keys = new Set(forms.map((f) => `${f.unit}/${f.key}`));
    for (const k of EXEC_KEYS) assert.ok(keys.has(`demo.service/${k}`), `[Service] ${k}= is covered`);
    for (const k of SOCKET_EXEC_KEYS) assert.ok(keys.has(`demo.socket/${k}`), `[Socket] ${k}= is covered`);
    for (const f of forms) {
      const where = `${f.what} (${f.unit} ${f.key}=, without ${f.breaks})`;
      await assert.rejects(build(hiding(directorySource(root), f.breaks)), (e: unknown) => {
        assert.ok(e instanceof MkportableError, `${where}: ${String(e)}`);
        assert.match(e.code, /^(EXEC_NOT_FOUND|DEPENDENCY_MISSING)$/, where);
        assert.ok(e.message.includes(f.names), `${where}: ${e.message}`);
        if (f.rule === 'exec-missing') assert.ok(e.message.includes(`${f.key}=`), `${where}: ${e.message}`);
        return true;
      }, where);
      const report = await inspectImage(good.image, f.breaks);
      const errors = report.problems.filter((p) => p.severity === 'error');
      assert.equal(errors.length, 1, `${where}: ${JSON.stringify(errors)}`);
      assert.equal(errors[0].rule, f.rule, where);
      assert.ok(errors[0].message.includes(f.names), `${where}: ${errors[0].message}`);
      if (f.rule === 'exec-missing') assert.ok(errors[0].message.includes(`${f.unit}: ${f.key}=`), `${where}: ${errors[0].message}`);
    }
  });
});
