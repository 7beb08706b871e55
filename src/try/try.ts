// `mkportable try`: attach an image in a throwaway systemd, start its units, show how they run, run a
// check from the host, then leave nothing behind. Exit status and report say whether attach, start and
// check all passed.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import { MkportableError } from '../errors.js';
import { locateImage } from '../inspect/verity.js';
import {
  DEFAULT_SYSTEMD,
  isSystemdVersion,
  portabledPrerequisites,
  startPortabledContainer,
  SYSTEMD_SUITES,
  SYSTEMD_VERSIONS,
  type PortabledContainer,
  type SystemdVersion,
} from './container.js';

export interface TryOptions {
  /** The portable image (.raw file) to attach. */
  image: string;
  /** Extension images attached on top of it (`portablectl attach --extension`). */
  extensions?: string[];
  /** systemd version of the throwaway system (252: Debian 12, 257: Debian 13). Default 252. */
  systemd?: SystemdVersion;
  /** portabled profile (default, nonetwork, strict, trusted). */
  profile?: string;
  /** A command run on the build host with `sh -c` until it exits 0 or checkTimeoutMs passes. */
  check?: string;
  /** How long the check may keep failing. Default 30 s. */
  checkTimeoutMs?: number;
  /** How long units may take to settle after attach. Default 30 s. */
  startTimeoutMs?: number;
  /** Journal lines shown per unit. Default 15. */
  journalLines?: number;
  /** Before detaching, wait for this promise (the CLI's --keep: until Ctrl-C). */
  keepUntil?: (c: PortabledContainer) => Promise<void>;
  /** Lines of the report, as they happen. */
  log?: (line: string) => void;
  /** Progress lines while the rootfs cache is created (first run). */
  progress?: (line: string) => void;
}

export interface UnitReport {
  unit: string;
  /** ActiveState/SubState, e.g. "active/running". */
  state: string;
  ok: boolean;
  status: string;
  journal: string;
}

export interface TryResult {
  ok: boolean;
  systemd: SystemdVersion;
  /** The container's machine name (unique per run). */
  machine: string;
  attach: { ok: boolean; output: string };
  units: UnitReport[];
  check?: { ok: boolean; attempts: number; output: string; ms: number };
  /** Detach and stop both succeeded. */
  cleanedUp: boolean;
}

const PORTABLES = '/var/lib/portables';

/** Why `try` cannot run here (one line, each missing part with how to get it), or undefined. */
export function tryPrerequisites(systemd: SystemdVersion = DEFAULT_SYSTEMD): string | undefined {
  const pre = portabledPrerequisites({ systemd });
  return pre.ok ? undefined : pre.reason;
}

function checkImageFile(file: string, what: string): void {
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new MkportableError('PATH_NOT_FOUND', `${file}: no such ${what}`, file);
  }
  if (!st.isFile()) throw new MkportableError('IMAGE_UNSUPPORTED', `${file}: ${what} must be a .raw file`, file);
  if (!file.endsWith('.raw')) throw new MkportableError('IMAGE_UNSUPPORTED', `${file}: ${what} must be named <name>.raw`, file);
}

/**
 * systemd-nspawn gives a container no device-mapper, so dm-verity cannot be set up in try's container: a signed
 * DDI (its root hash comes from its own signature partition) cannot start there, and is refused before booting;
 * sidecars (and an unsigned DDI's .roothash) stay behind, so the image is tried without verity, as said.
 */
async function checkVerity(image: string, log: (line: string) => void): Promise<void> {
  const { facts } = await locateImage(image);
  const name = path.basename(image);
  if (facts.verity === 'embedded' && facts.rootHashSource === 'signature') {
    throw new MkportableError(
      'IMAGE_UNSUPPORTED',
      `${image}: a signed DDI needs dm-verity, which try's container (systemd-nspawn, no device-mapper) cannot set up; try the same build without --verity, or attach it on a host`,
      image,
    );
  }
  if (facts.rootHashSource === 'sidecar') {
    log(`note: ${name} is tried without dm-verity (its .roothash${facts.verity === 'sidecar' ? ' and .verity stay' : ' stays'} behind): containers have no device-mapper`);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `sh -c cmd` on the host; resolves with its exit code and output (a per-attempt limit of 20 s). */
function hostCommand(cmd: string, timeoutMs = 20_000): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
      output += `\n(killed after ${timeoutMs} ms)`;
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 127, output: e.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), output });
    });
  });
}

/** Units portabled attached: the files it put in the runtime attach folder. */
async function attachedUnits(c: PortabledContainer): Promise<string[]> {
  const r = await c.exec(['sh', '-c', 'for f in /run/systemd/system.attached/*; do [ -f "$f" ] && echo "${f##*/}"; done; true']);
  return r.stdout.split('\n').filter((u) => /\.(service|socket|timer|path|target)$/.test(u)).sort();
}

interface UnitState {
  active: string;
  sub: string;
  result: string;
  type: string;
  remain: string;
}

async function unitState(c: PortabledContainer, unit: string): Promise<UnitState> {
  const r = await c.exec(['systemctl', 'show', '-p', 'ActiveState,SubState,Result,Type,RemainAfterExit', unit], { allowFail: true });
  const v = Object.fromEntries(r.stdout.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  return { active: v.ActiveState ?? '', sub: v.SubState ?? '', result: v.Result ?? '', type: v.Type ?? '', remain: v.RemainAfterExit ?? '' };
}

/** A unit runs as intended: active, or a oneshot service that finished successfully. */
function unitOk(unit: string, s: UnitState): boolean {
  if (s.active === 'active' || s.active === 'reloading') return true;
  return unit.endsWith('.service') && s.type === 'oneshot' && s.active === 'inactive' && s.result === 'success';
}

const settling = (s: UnitState) => s.active === 'activating' || s.active === 'deactivating' || s.sub === 'auto-restart';

/** Attach, start, report, check, detach, stop. Throws only for bad input or a missing prerequisite. */
export async function tryImage(opts: TryOptions): Promise<TryResult> {
  const log = opts.log ?? (() => {});
  const systemd = opts.systemd ?? DEFAULT_SYSTEMD;
  if (!isSystemdVersion(systemd)) {
    throw new MkportableError('CONFIG_INVALID', `--systemd ${String(systemd)}: choose ${SYSTEMD_VERSIONS.join(' or ')}`, 'systemd');
  }
  const missing = tryPrerequisites(systemd);
  if (missing) throw new MkportableError('PREREQUISITE_MISSING', `try needs a real systemd: ${missing}`);
  const image = path.resolve(opts.image);
  checkImageFile(image, 'image');
  const extensions = (opts.extensions ?? []).map((e) => path.resolve(e));
  for (const e of extensions) checkImageFile(e, 'extension');
  const names = [image, ...extensions].map((f) => path.basename(f));
  if (new Set(names).size !== names.length) throw new MkportableError('CONFIG_INVALID', `image and extensions need different file names (${names.join(', ')})`, image);
  if (opts.profile !== undefined && !/^[A-Za-z0-9_.-]+$/.test(opts.profile)) {
    throw new MkportableError('CONFIG_INVALID', `--profile '${opts.profile}': not a profile name`, 'profile');
  }

  await checkVerity(image, log);

  const t0 = Date.now();
  const c = await startPortabledContainer({ systemd, progress: opts.progress });
  const result: TryResult = { ok: false, systemd, machine: c.machine, attach: { ok: false, output: '' }, units: [], cleanedUp: false };
  const name = path.basename(image, '.raw');
  const inContainer = (f: string) => `${PORTABLES}/${path.basename(f)}`;
  let attached = false;
  try {
    log(`systemd ${systemd} (Debian ${SYSTEMD_SUITES[systemd]}) up in ${((Date.now() - t0) / 1000).toFixed(1)} s: container ${c.machine}, host pid ${c.pid}`);
    if (opts.profile !== undefined) {
      const p = await c.exec(['sh', '-c', 'ls /usr/lib/systemd/portable/profile/ /etc/systemd/portable/profile/ 2>/dev/null; true']);
      const known = [...new Set(p.stdout.split('\n').filter((l) => l && !l.endsWith(':')))].sort();
      if (!known.includes(opts.profile)) {
        throw new MkportableError('CONFIG_INVALID', `--profile '${opts.profile}': systemd ${systemd} has ${known.join(', ')}`, 'profile');
      }
    }
    for (const f of [image, ...extensions]) await c.copyIn(f, inContainer(f), { mode: 0o644 });

    // 1. Attach (and start: --now).
    const argv = ['portablectl', 'attach', '--now', '--runtime', '--no-ask-password'];
    if (opts.profile) argv.push('--profile', opts.profile);
    for (const e of extensions) argv.push('--extension', inContainer(e));
    argv.push(inContainer(image));
    const at = await c.exec(argv, { allowFail: true, timeoutMs: 120_000 });
    result.attach = { ok: at.code === 0, output: (at.stdout + at.stderr).trim() };
    log(`attach ${names.join(' + ')}${opts.profile ? ` (profile ${opts.profile})` : ''}: ${result.attach.ok ? 'ok' : `failed (exit ${at.code})`}`);
    if (result.attach.output) log(indent(result.attach.output));
    if (!result.attach.ok) return result;
    attached = true;

    // 2. Start: `attach --now` exits 0 even when a start fails, so read each unit's state once it settles.
    const units = await attachedUnits(c);
    const checkable = units.filter((u) => !u.includes('@.'));
    const startEnd = Date.now() + (opts.startTimeoutMs ?? 30_000);
    let states = new Map<string, UnitState>();
    for (;;) {
      states = new Map(await Promise.all(checkable.map(async (u) => [u, await unitState(c, u)] as const)));
      if (![...states.values()].some(settling) || Date.now() > startEnd) break;
      await sleep(250);
    }
    // A process that dies right after starting shows as active for a moment: look again a little later.
    await sleep(1500);
    states = new Map(await Promise.all(checkable.map(async (u) => [u, await unitState(c, u)] as const)));
    const lines = String(opts.journalLines ?? 15);
    for (const u of units) {
      const s = states.get(u);
      if (!s) {
        result.units.push({ unit: u, state: 'template', ok: true, status: '', journal: '' });
        log(`${u}: template (instances start on demand)`);
        continue;
      }
      const ok = unitOk(u, s);
      const status = await c.exec(['systemctl', 'status', '--no-pager', '--lines=0', '--full', u], { allowFail: true });
      const journal = await c.exec(['journalctl', '--no-pager', '-o', 'short', '-n', lines, '-u', u], { allowFail: true });
      const state = `${s.active}/${s.sub}`;
      result.units.push({ unit: u, state, ok, status: status.stdout.trimEnd(), journal: journal.stdout.trimEnd() });
      log(`${u}: ${state}${ok ? '' : '  FAILED'}`);
      log(indent(status.stdout.trimEnd()));
      if (journal.stdout.trim()) log(`  last journal lines:\n${indent(journal.stdout.trimEnd(), '    ')}`);
    }
    if (units.length === 0) log('no units were attached');
    const started = units.length > 0 && result.units.every((u) => u.ok);

    // 3. The check, from the host (the container shares the host's network).
    if (opts.check !== undefined && started) {
      const t = Date.now();
      const end = t + (opts.checkTimeoutMs ?? 30_000);
      let attempts = 0;
      let last = { code: 1, output: '' };
      while (Date.now() < end) {
        attempts++;
        last = await hostCommand(opts.check, Math.max(1000, Math.min(20_000, end - Date.now())));
        if (last.code === 0) break;
        await sleep(500);
      }
      result.check = { ok: last.code === 0, attempts, output: last.output.trim(), ms: Date.now() - t };
      log(`check \`${opts.check}\`: ${result.check.ok ? 'passed' : `failed (exit ${last.code})`} after ${attempts} attempt${attempts === 1 ? '' : 's'}, ${(result.check.ms / 1000).toFixed(1)} s`);
      if (result.check.output) log(indent(result.check.output));
    } else if (opts.check !== undefined) {
      log('check skipped: the units did not start');
    }
    result.ok = started && (opts.check === undefined || result.check?.ok === true);

    if (opts.keepUntil) await opts.keepUntil(c);
    return result;
  } finally {
    let detached = !attached;
    if (attached) {
      const argv = ['portablectl', 'detach', '--now', '--runtime', '--no-ask-password'];
      for (const e of extensions) argv.push('--extension', inContainer(e));
      argv.push(inContainer(image));
      const d = await c.exec(argv, { allowFail: true, timeoutMs: 120_000 }).catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
      detached = d.code === 0;
      log(`detach ${name}: ${detached ? 'ok' : `failed: ${(d.stdout + d.stderr).trim()}`}`);
    }
    await c.stop();
    result.cleanedUp = detached;
    if (!detached) result.ok = false;
    log(`container ${c.machine} stopped`);
  }
}

function indent(text: string, pad = '  '): string {
  return text.split('\n').map((l) => pad + l).join('\n');
}
