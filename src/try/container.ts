// Boots a throwaway Debian system with systemd-nspawn and runs commands in it, so portable images
// meet a real systemd-portabled: bookworm for systemd 252, trixie for systemd 257 (which also has
// systemd-sysupdate). `mkportable try` and the tests use this same code.
//
//   const c = await startPortabledContainer({ systemd: 257 });
//   try {
//     await c.copyIn('/tmp/x/hello_1.0.raw', '/var/lib/portables/hello_1.0.raw');
//     await c.exec(['portablectl', 'attach', '--now', '--runtime', 'hello_1.0']);
//   } finally {
//     await c.stop();
//   }
//
// Design notes (see the pitfalls listed in the comments below):
// - The rootfs is built once per suite by scripts/portabled-rootfs.sh and cached; it is never
//   written to. Each run boots it with `--volatile=overlay` (a tmpfs-backed overlay that lives in
//   nspawn's own mount namespace and vanishes with it), or, as a fallback, on a
//   `cp -a --reflink=auto` copy.
// - There is no systemd on the host side to register with, hence --register=no --keep-unit. nspawn
//   then puts the payload into "<its own cgroup>/payload", so two containers started from the same
//   cgroup would share cgroups; each container therefore gets its own cgroup first.
// - Commands run through `nsenter -t <container PID 1> -a`, in their own process group so that a
//   timeout can kill the command inside the container as well.
// - A tiny detached watchdog process holds a pipe to this process; if we die without stop() (even
//   by SIGKILL) it shuts the container down.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { packageRoot } from '../package-root.js';

export interface ExecOptions {
  /** Do not throw when the command exits non-zero. Timeouts always throw. */
  allowFail?: boolean;
  /** Kill the command (inside the container too) after this long. Default 60 s. */
  timeoutMs?: number;
  /** Data for the command's stdin (default: empty stdin). */
  input?: string | Buffer;
  /** Extra environment variables (the base environment is a clean PATH/LANG). */
  env?: Record<string, string>;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface PortabledContainer {
  /** The systemd version the container runs (its Debian suite's). */
  readonly systemd: SystemdVersion;
  /** Host pid of the container's PID 1 (its systemd). */
  readonly pid: number;
  /** Host pid of the systemd-nspawn process. */
  readonly nspawnPid: number;
  /** Machine name passed to nspawn (unique per run). */
  readonly machine: string;
  /**
   * Host path of the container's writable root as the container sees it (`/proc/<pid>/root`).
   * Reading is fine; note that absolute symlinks inside it resolve against the *host* root, so
   * prefer copyIn()/exec() to write.
   */
  readonly rootfs: string;
  /** The cached, read-only rootfs this container was started from. */
  readonly baseRootfs: string;
  /** File receiving nspawn's stdout/stderr (the container's console). Deleted by stop(). */
  readonly logFile: string;
  /** Runs argv inside the container (all namespaces, root "/", clean environment). */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Copies a host file to an absolute path in the container (parents are created, mode is kept). */
  copyIn(hostFile: string, containerPath: string, opts?: { mode?: number }): Promise<void>;
  /** Last lines of the container console log. */
  logTail(lines?: number): string;
  /** Shuts the container down (poweroff, then SIGKILL after a timeout) and removes all run state. Idempotent. */
  stop(): Promise<void>;
}

/** The systemd versions a container can run, and the Debian suite that ships each. */
export const SYSTEMD_SUITES = { 252: 'bookworm', 257: 'trixie' } as const;
export type SystemdVersion = keyof typeof SYSTEMD_SUITES;
export const SYSTEMD_VERSIONS = Object.keys(SYSTEMD_SUITES).map(Number) as SystemdVersion[];
export const DEFAULT_SYSTEMD: SystemdVersion = 252;

export function isSystemdVersion(v: unknown): v is SystemdVersion {
  return typeof v === 'number' && Object.hasOwn(SYSTEMD_SUITES, v);
}

export interface RootfsOptions {
  /** Which systemd the rootfs runs (default 252). */
  systemd?: SystemdVersion;
  /** Called with each progress line while the cache is being created (first run only). */
  progress?: (line: string) => void;
  /** Time allowed for creating the cache. Default 15 min. */
  timeoutMs?: number;
}

export interface StartOptions {
  /** Which systemd to boot (default 252): the cached bookworm (252) or trixie (257) rootfs. */
  systemd?: SystemdVersion;
  /** Use this rootfs instead of the cached one built by scripts/portabled-rootfs.sh. */
  rootfs?: string;
  /** Progress lines while the rootfs cache is created (first run only). */
  progress?: (line: string) => void;
  /** How each run gets a writable root. Default: MKPORTABLE_PORTABLED_WRITABLE, else 'overlay' if the kernel has overlayfs, else 'copy'. */
  writable?: 'overlay' | 'copy';
  /** Time allowed for the boot (until `systemctl is-system-running` settles). Default 60 s. */
  bootTimeoutMs?: number;
  /** Time allowed for an orderly poweroff in stop() before SIGKILL. Default 10 s. */
  stopTimeoutMs?: number;
  /** Extra systemd-nspawn arguments (e.g. '--bind-ro=/some/dir'). */
  nspawnArgs?: string[];
}

export const ROOTFS_SCRIPT = join(packageRoot(), 'scripts/portabled-rootfs.sh');
/** Where the cached rootfs trees live (MKPORTABLE_ROOTFS_DIR overrides). */
export const DEFAULT_ROOTFS_DIR = '/var/cache/mkportable';
const STAMP_FILE = '.mkportable-rootfs-stamp';
const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const LOG_TAIL_LINES = 60;

// ---------------------------------------------------------------------------------------------
// Prerequisites

function which(cmd: string): string | undefined {
  const dirs = `${process.env.PATH ?? ''}:${SAFE_PATH}`.split(':').filter(Boolean);
  for (const d of dirs) {
    const p = join(d, cmd);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** The cached rootfs of a systemd version: MKPORTABLE_ROOTFS_DIR (default /var/cache/mkportable)/<suite>-portabled. */
export function rootfsCachePath(systemd: SystemdVersion = DEFAULT_SYSTEMD): string {
  const dir = process.env.MKPORTABLE_ROOTFS_DIR?.replace(/\/+$/, '') || DEFAULT_ROOTFS_DIR;
  return join(dir, `${SYSTEMD_SUITES[systemd]}-portabled`);
}

function rootfsCached(systemd: SystemdVersion): boolean {
  return existsSync(join(rootfsCachePath(systemd), STAMP_FILE));
}

/**
 * Can this machine run startPortabledContainer()? `reason` lists everything that is missing, each
 * with how to get it.
 */
export function portabledPrerequisites(opts: { systemd?: SystemdVersion } = {}): { ok: boolean; reason?: string } {
  const systemd = opts.systemd ?? DEFAULT_SYSTEMD;
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push(`needs Linux (this is ${process.platform})`);
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) missing.push('needs root (run it with sudo)');
  if (!which('systemd-nspawn')) missing.push('systemd-nspawn not found (apt-get install systemd-container)');
  if (!which('nsenter')) missing.push('nsenter not found (apt-get install util-linux)');
  // debootstrap is only needed while the rootfs cache has not been built yet.
  if (!rootfsCached(systemd) && !which('debootstrap')) {
    missing.push(`debootstrap not found and no cached ${SYSTEMD_SUITES[systemd]} rootfs (apt-get install debootstrap)`);
  }
  if (!existsSync('/dev/loop-control')) missing.push('/dev/loop-control does not exist (modprobe loop)');
  if (!existsSync(ROOTFS_SCRIPT)) missing.push(`${ROOTFS_SCRIPT} missing (reinstall mkportable)`);
  return missing.length ? { ok: false, reason: missing.join('; ') } : { ok: true };
}

// ---------------------------------------------------------------------------------------------
// Small process helpers

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Spawns argv in its own process group; on timeout the whole group gets SIGKILL. */
function run(
  argv: string[],
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; input?: string | Buffer; stdinFile?: string; onStderrLine?: (line: string) => void },
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const [cmd, ...args] = argv;
    if (!cmd) {
      reject(new Error('empty argv'));
      return;
    }
    const child = spawn(cmd, args, {
      env: opts.env ?? { PATH: SAFE_PATH, LANG: 'C.UTF-8' },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    let partial = '';
    child.stderr!.on('data', (b: Buffer) => {
      err.push(b);
      if (!opts.onStderrLine) return;
      const lines = (partial + b.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) opts.onStderrLine(l);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, opts.timeoutMs);
    child.stdin!.on('error', () => {
      /* EPIPE when the command does not read its input */
    });
    if (opts.stdinFile) {
      const rs = createReadStream(opts.stdinFile);
      rs.on('error', (e) => {
        killGroup(child, 'SIGKILL');
        reject(e);
      });
      rs.pipe(child.stdin!);
    } else {
      child.stdin!.end(opts.input ?? '');
    }
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({
        code: code ?? 128 + signalNumber(signal),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* gone */
    }
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  if (!signal) return 0;
  const n = (
    { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 } as Record<
      string,
      number
    >
  )[signal];
  return n ?? 0;
}

/** True while pid exists and is not a zombie. */
function running(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    return !/^State:\s*[ZX]/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
/** Synchronous poll (for exit handlers): true if cond() became true within ms. */
function waitSync(cond: () => boolean, ms: number): boolean {
  const end = Date.now() + ms;
  for (;;) {
    if (cond()) return true;
    if (Date.now() >= end) return false;
    Atomics.wait(sleepCell, 0, 0, 50);
  }
}

function procComm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function tailOf(file: string, lines: number): string {
  try {
    const text = readFileSync(file, 'utf8');
    // Strip ANSI colour sequences the container console may contain.
    const clean = text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    return clean.split('\n').slice(-lines - 1).join('\n').trimEnd();
  } catch {
    return '(no container log)';
  }
}

function quote(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

// ---------------------------------------------------------------------------------------------
// Rootfs

/** Builds (first time, ~1 min) or reuses the cached rootfs of a systemd version; returns its path. */
export async function ensurePortabledRootfs(opts: RootfsOptions = {}): Promise<string> {
  const systemd = opts.systemd ?? DEFAULT_SYSTEMD;
  const timeoutMs = opts.timeoutMs ?? 15 * 60_000;
  const cache = rootfsCachePath(systemd);
  const progress = opts.progress;
  const r = await run(['bash', ROOTFS_SCRIPT, ...(progress ? ['--progress'] : []), SYSTEMD_SUITES[systemd]], {
    timeoutMs,
    onStderrLine: progress,
    env: {
      PATH: SAFE_PATH,
      LANG: 'C.UTF-8',
      MKPORTABLE_ROOTFS_CACHE: cache,
      ...(process.env.MKPORTABLE_DEBIAN_MIRROR ? { MKPORTABLE_DEBIAN_MIRROR: process.env.MKPORTABLE_DEBIAN_MIRROR } : {}),
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
    },
  });
  const path = r.stdout.trim().split('\n').pop() ?? '';
  if (r.timedOut || r.code !== 0 || !path) {
    throw new Error(
      `${ROOTFS_SCRIPT} ${r.timedOut ? `timed out after ${timeoutMs} ms` : `failed (exit ${r.code})`}\n` +
        `--- stderr ---\n${r.stderr.trimEnd()}\n--- stdout ---\n${r.stdout.trimEnd()}`,
    );
  }
  return path;
}

// ---------------------------------------------------------------------------------------------
// cgroups: give every container its own cgroup (nspawn --keep-unit uses the caller's cgroup)

function cgroupRoots(): string[] {
  // /proc/self/mountinfo: "... mountpoint opts ... - fstype source superopts"
  const roots: string[] = [];
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return roots;
  }
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const mountPoint = pre.split(' ')[4];
    const [fstype, , superOpts = ''] = post.split(' ');
    if (!mountPoint) continue;
    const mp = mountPoint.replace(/\\040/g, ' ');
    if (fstype === 'cgroup2' || (fstype === 'cgroup' && superOpts.split(',').includes('name=systemd'))) {
      if (!roots.includes(mp)) roots.push(mp);
    }
  }
  return roots;
}

function createCgroups(name: string): string[] {
  const made: string[] = [];
  for (const root of cgroupRoots()) {
    const dir = join(root, name);
    try {
      mkdirSync(dir);
      made.push(dir);
    } catch {
      // read-only cgroupfs (unprivileged container): fall back to the shared cgroup
      removeCgroups(made);
      return [];
    }
  }
  return made;
}

function removeCgroups(dirs: string[]): void {
  for (const dir of dirs) {
    const walk = (d: string): void => {
      let entries: string[] = [];
      try {
        entries = readdirSync(d, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name);
      } catch {
        return;
      }
      for (const e of entries) walk(join(d, e));
      try {
        rmdirSync(d);
      } catch {
        /* still populated (should not happen after the container is gone) or already gone */
      }
    };
    walk(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Cleanup registry

interface Active {
  machine: string;
  stopSync(): void;
  stop(): Promise<void>;
}
const active = new Set<Active>();
let cleanupRegistered = false;
let signalsToCaller = false;

/**
 * While on, SIGINT/SIGTERM/SIGHUP are left to the caller (who then stops its containers itself, e.g. `try --keep`
 * detaching on Ctrl-C); the exit handler and the watchdogs still clean up.
 */
export function leaveSignalsToCaller(on: boolean): void {
  signalsToCaller = on;
}

/**
 * Makes sure containers are stopped when the process exits (normally, via an uncaught error, or
 * on SIGINT/SIGTERM/SIGHUP). Called automatically by startPortabledContainer(); idempotent.
 * (A SIGKILL of this process is covered by each container's watchdog.)
 */
export function registerPortabledCleanup(): void {
  if (cleanupRegistered) return;
  cleanupRegistered = true;
  process.on('exit', () => {
    for (const c of [...active]) c.stopSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      if (signalsToCaller) return;
      void stopAllPortabledContainers().finally(() => {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      });
    };
    process.on(sig, handler);
  }
}

/** Stops every container started by this process. */
export async function stopAllPortabledContainers(): Promise<void> {
  await Promise.allSettled([...active].map((c) => c.stop()));
}

// Runs detached, reads its stdin (a pipe from us) until EOF, i.e. until this process is gone,
// then powers the container off (if stop() never ran) and removes the run state.
// $1 nspawn pid, $2 init pid, $3 seconds to wait, $4... paths to remove (cgroups first, depth-first).
const WATCHDOG = `
cat >/dev/null 2>&1
n=$1; i=$2; t=$3; shift 3
is() { [ "$(cat /proc/$1/comm 2>/dev/null)" = "$2" ] && ! grep -q '^State:[[:space:]]*[ZX]' /proc/$1/status 2>/dev/null; }
if is "$n" systemd-nspawn; then
  kill -TERM "$n" 2>/dev/null
  k=0; while is "$n" systemd-nspawn && [ $k -lt $((t * 10)) ]; do sleep 0.1; k=$((k + 1)); done
  is "$i" systemd && kill -KILL "$i" 2>/dev/null
  sleep 0.5
  is "$n" systemd-nspawn && kill -KILL "$n" 2>/dev/null
  sleep 0.2
fi
for p in "$@"; do
  case "$p" in
    /sys/fs/cgroup/*) find "$p" -depth -type d -exec rmdir {} + 2>/dev/null ;;
    *) rm -rf --one-file-system "$p" ;;
  esac
done
`;

// ---------------------------------------------------------------------------------------------
// The container

function overlayAvailable(): boolean {
  const has = (): boolean => {
    try {
      return /\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8'));
    } catch {
      return false;
    }
  };
  if (has()) return true;
  spawnSync('modprobe', ['-q', 'overlay'], { stdio: 'ignore', env: { PATH: SAFE_PATH } });
  return has();
}

function findContainerInit(nspawnPid: number): number | undefined {
  // The container's PID 1 is a descendant of nspawn whose innermost pid is 1.
  const queue = [nspawnPid];
  while (queue.length) {
    const pid = queue.shift()!;
    let children: number[] = [];
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        children.push(
          ...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8')
            .trim()
            .split(/\s+/)
            .filter(Boolean)
            .map(Number),
        );
      }
    } catch {
      children = [];
    }
    for (const c of children) {
      try {
        const m = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${c}/status`, 'utf8'));
        const ns = m?.[1]?.trim().split(/\s+/) ?? [];
        if (ns.length >= 2 && ns[ns.length - 1] === '1') return c;
      } catch {
        /* exited */
      }
      queue.push(c);
    }
  }
  return undefined;
}

function hostLoopCount(): number {
  // Nodes for every loop device the host has (plus spare), at least 64.
  let max = -1;
  try {
    for (const name of readdirSync('/sys/block')) {
      const m = /^loop(\d+)$/.exec(name);
      if (m) max = Math.max(max, Number(m[1]));
    }
  } catch {
    /* ignore */
  }
  return Math.max(64, max + 33);
}

/**
 * Boots a fresh container from the cached rootfs (building the cache first if needed) and
 * returns once its systemd reports "running" or "degraded" and loop device nodes exist.
 */
export async function startPortabledContainer(opts: StartOptions = {}): Promise<PortabledContainer> {
  const systemd = opts.systemd ?? DEFAULT_SYSTEMD;
  if (!isSystemdVersion(systemd)) throw new Error(`systemd ${String(systemd)}: choose one of ${SYSTEMD_VERSIONS.join(', ')}`);
  const pre = portabledPrerequisites({ systemd });
  if (!pre.ok) throw new Error(`cannot start a portabled container: ${pre.reason}`);
  registerPortabledCleanup();

  const baseRootfs = resolve(opts.rootfs ?? (await ensurePortabledRootfs({ systemd, progress: opts.progress })));
  if (!existsSync(join(baseRootfs, 'usr/lib/systemd/systemd')) && !existsSync(join(baseRootfs, 'lib/systemd/systemd'))) {
    throw new Error(`${baseRootfs} does not look like a rootfs with systemd`);
  }
  const envMode = process.env.MKPORTABLE_PORTABLED_WRITABLE;
  const writable =
    opts.writable ?? (envMode === 'copy' || envMode === 'overlay' ? envMode : overlayAvailable() ? 'overlay' : 'copy');
  const bootTimeoutMs = opts.bootTimeoutMs ?? 60_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;

  const stateDir = mkdtempSync(join(tmpdir(), 'mkportable-portabled-'));
  const machine = `mkp-${process.pid}-${stateDir.slice(-6).replace(/[^A-Za-z0-9]/g, 'x')}`;
  const logFile = join(stateDir, 'nspawn.log');

  // Writable root for this run.
  let runRoot = baseRootfs;
  let copyDir: string | undefined;
  if (writable === 'copy') {
    // Copies of runs whose process died before its watchdog existed.
    for (const name of readdirSync(dirname(baseRootfs))) {
      const m = /^\.run-mkp-(\d+)-/.exec(name);
      if (m && Number(m[1]) !== process.pid && !running(Number(m[1]))) {
        rmSync(join(dirname(baseRootfs), name), { recursive: true, force: true });
      }
    }
    // Next to the cache so that --reflink=auto can share extents on btrfs/xfs.
    copyDir = join(dirname(baseRootfs), `.run-${machine}`);
    const cp = await run(['cp', '-a', '--reflink=auto', '--one-file-system', baseRootfs, copyDir], { timeoutMs: 300_000 });
    if (cp.code !== 0) {
      rmSync(copyDir, { recursive: true, force: true });
      rmSync(stateDir, { recursive: true, force: true });
      throw new Error(`copying ${baseRootfs} failed: ${cp.stderr}`);
    }
    runRoot = copyDir;
  }

  const cgroups = process.env.MKPORTABLE_PORTABLED_CGROUP === '0' ? [] : createCgroups(`mkportable.${machine}`);

  const nspawnArgs = [
    '-D', runRoot,
    `--machine=${machine}`,
    '--boot',
    '--register=no',
    '--keep-unit',
    '-q',
    '--console=read-only',
    '--link-journal=no',
    '--resolv-conf=off',
    '--timezone=off',
    '--kill-signal=SIGRTMIN+4', // what nspawn sends PID 1 on SIGTERM: poweroff
    '--bind=/dev/loop-control',
    // A DDI's partitions (loopNpM) are added by the kernel to the host's devtmpfs only; the container reaches them
    // through this read-only view (symlinks made in step 4).
    '--bind-ro=/dev:/run/host-dev',
    '--setenv=SYSTEMD_LOG_COLOR=0',
    ...(writable === 'overlay' ? ['--volatile=overlay'] : []),
    ...(opts.nspawnArgs ?? []),
  ];
  // Move ourselves into the per-container cgroups, then become nspawn.
  const launcher = 'for f in $MKP_CGROUP_PROCS; do echo $$ >"$f" || exit 97; done; unset MKP_CGROUP_PROCS; exec "$@"';
  const logFd = openSync(logFile, 'a');
  let nspawn: ChildProcess;
  try {
    nspawn = spawn('sh', ['-c', launcher, 'sh', 'systemd-nspawn', ...nspawnArgs], {
      env: {
        PATH: SAFE_PATH,
        LANG: 'C.UTF-8',
        MKP_CGROUP_PROCS: cgroups.map((d) => join(d, 'cgroup.procs')).join(' '),
      },
      stdio: ['ignore', logFd, logFd],
      detached: true, // own process group: a Ctrl-C for the test runner does not hit it directly
    });
  } finally {
    closeSync(logFd);
  }
  nspawn.unref(); // a forgotten stop() must not keep the test process alive; exit cleanup handles it
  let exitInfo: string | undefined;
  const exited = new Promise<void>((r) => {
    nspawn.on('exit', (code, signal) => {
      exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
      r();
    });
    nspawn.on('error', (e) => {
      exitInfo = `failed to spawn: ${e.message}`;
      r();
    });
  });
  const nspawnPid = nspawn.pid ?? -1;

  let initPid = -1;
  let watchdog: ChildProcess | undefined;
  let stopping: Promise<void> | undefined;
  let keepState = false;

  const describe = (): string => {
    const status = exitInfo ? `systemd-nspawn ${exitInfo}` : `systemd-nspawn pid ${nspawnPid} running`;
    return `container ${machine} (${status}); last lines of ${logFile}:\n${tailOf(logFile, LOG_TAIL_LINES)}`;
  };

  const cleanupFiles = (): void => {
    removeCgroups(cgroups);
    if (copyDir) rmSync(copyDir, { recursive: true, force: true });
    if (!keepState && !process.env.MKPORTABLE_KEEP_CONTAINER_LOG) rmSync(stateDir, { recursive: true, force: true });
  };

  const stopSync = (): void => {
    // Runs from process.on('exit'): no event loop, so nspawn is never reaped here and turns into
    // a zombie once it exits; running() treats zombies as gone.
    active.delete(handle);
    if (watchdog?.pid) {
      try {
        process.kill(watchdog.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (!exitInfo && running(nspawnPid)) {
      try {
        process.kill(nspawnPid, 'SIGTERM');
      } catch {
        /* gone */
      }
      if (!waitSync(() => !running(nspawnPid), stopTimeoutMs)) {
        if (initPid > 0 && procComm(initPid) === 'systemd') {
          try {
            process.kill(initPid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        if (!waitSync(() => !running(nspawnPid), 3_000) && procComm(nspawnPid) === 'systemd-nspawn') {
          try {
            process.kill(nspawnPid, 'SIGKILL');
          } catch {
            /* gone */
          }
          waitSync(() => !running(nspawnPid), 3_000);
        }
      }
    }
    waitSync(() => {
      removeCgroups(cgroups);
      return cgroups.every((d) => !existsSync(d));
    }, 1_000);
    cleanupFiles();
  };

  const waitExit = (ms: number): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), ms);
    });
    return Promise.race([exited.then(() => true), timeout]).finally(() => clearTimeout(timer));
  };

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      active.delete(handle);
      if (watchdog?.pid) {
        try {
          process.kill(watchdog.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      if (!exitInfo) {
        try {
          process.kill(nspawnPid, 'SIGTERM'); // nspawn forwards --kill-signal (poweroff) to PID 1
        } catch {
          /* gone */
        }
        if (!(await waitExit(stopTimeoutMs))) {
          // Killing PID 1 kills the whole pid namespace; nspawn then exits.
          if (initPid > 0 && procComm(initPid) === 'systemd') {
            try {
              process.kill(initPid, 'SIGKILL');
            } catch {
              /* gone */
            }
          }
          if (!(await waitExit(3_000))) {
            try {
              process.kill(nspawnPid, 'SIGKILL');
            } catch {
              /* gone */
            }
            await waitExit(3_000);
          }
        }
      }
      // cgroups can take a moment to become removable after the last process is reaped
      for (let i = 0; i < 20; i++) {
        removeCgroups(cgroups);
        if (cgroups.every((d) => !existsSync(d))) break;
        await sleep(50);
      }
      cleanupFiles();
    })();
    return stopping;
  };

  const exec = async (argv: string[], eo: ExecOptions = {}): Promise<ExecResult> => {
    if (initPid <= 0) throw new Error(`exec(${quote(argv)}) before the container is up`);
    if (stopping) throw new Error(`exec(${quote(argv)}): container ${machine} was stopped`);
    if (exitInfo) throw new Error(`exec(${quote(argv)}): ${describe()}`);
    const timeoutMs = eo.timeoutMs ?? 60_000;
    const r = await run(['nsenter', '-t', String(initPid), '-a', '-r', '-w', '--', ...argv], {
      timeoutMs,
      input: eo.input,
      env: {
        PATH: SAFE_PATH,
        LANG: 'C.UTF-8',
        HOME: '/root',
        TERM: 'dumb',
        SYSTEMD_COLORS: '0',
        SYSTEMD_PAGER: '',
        SYSTEMD_LESS: '',
        ...eo.env,
      },
    });
    if (r.timedOut) {
      throw new Error(
        `in ${machine}: ${quote(argv)} timed out after ${timeoutMs} ms\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}\n${describe()}`,
      );
    }
    if (r.code !== 0 && !eo.allowFail) {
      throw new Error(
        `in ${machine}: ${quote(argv)} exited with ${r.code}\n--- stdout ---\n${r.stdout.trimEnd()}\n--- stderr ---\n${r.stderr.trimEnd()}\n${describe()}`,
      );
    }
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  };

  const copyIn = async (hostFile: string, containerPath: string, co: { mode?: number } = {}): Promise<void> => {
    if (!containerPath.startsWith('/')) throw new Error(`copyIn: container path must be absolute: ${containerPath}`);
    const st = statSync(hostFile);
    if (!st.isFile()) throw new Error(`copyIn: ${hostFile} is not a regular file`);
    const mode = ((co.mode ?? st.mode) & 0o7777).toString(8);
    // Stream through stdin: works for any container root (overlay or copy) and never follows
    // container symlinks out to the host.
    const script = 'set -e; d=$(dirname -- "$1"); mkdir -p -- "$d"; t="$1.copyin.$$"; cat >"$t"; chmod "$2" "$t"; mv -f -- "$t" "$1"';
    if (stopping) throw new Error(`copyIn(${hostFile}): container ${machine} was stopped`);
    if (initPid <= 0 || exitInfo) throw new Error(`copyIn(${hostFile}): ${describe()}`);
    const r = await run(['nsenter', '-t', String(initPid), '-a', '-r', '-w', '--', 'sh', '-c', script, 'sh', containerPath, mode], {
      timeoutMs: 120_000,
      stdinFile: hostFile,
    });
    if (r.code !== 0 || r.timedOut) {
      throw new Error(`copyIn(${hostFile} -> ${containerPath}) failed (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr}\n${describe()}`);
    }
  };

  const handle: Active & PortabledContainer = {
    get pid() {
      return initPid;
    },
    systemd,
    nspawnPid,
    machine,
    get rootfs() {
      return `/proc/${initPid}/root`;
    },
    baseRootfs,
    logFile,
    exec,
    copyIn,
    logTail: (lines = LOG_TAIL_LINES) => tailOf(logFile, lines),
    stop,
    stopSync,
  };
  active.add(handle);

  const fail = async (msg: string): Promise<never> => {
    const detail = describe();
    keepState = true; // keep the log for post-mortem; its path is in the message
    await stop();
    throw new Error(`${msg}\n${detail}`);
  };

  // 1. Find the container's PID 1.
  const deadline = Date.now() + bootTimeoutMs;
  while (initPid <= 0) {
    if (exitInfo) return fail('systemd-nspawn exited during startup');
    const found = findContainerInit(nspawnPid);
    if (found) initPid = found;
    else if (Date.now() > deadline) return fail(`container PID 1 did not appear within ${bootTimeoutMs} ms`);
    else await sleep(25);
  }

  // 2. Watchdog: powers the container off if this process dies without calling stop().
  watchdog = spawn(
    'sh',
    ['-c', WATCHDOG, 'mkportable-watchdog', String(nspawnPid), String(initPid), String(Math.ceil(stopTimeoutMs / 1000)), ...cgroups, ...(copyDir ? [copyDir] : []), stateDir],
    { stdio: ['pipe', 'ignore', 'ignore'], detached: true, env: { PATH: SAFE_PATH } },
  );
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  watchdog.stdin?.on('error', () => {
    /* ignore */
  });

  // 3. Wait for the boot to settle. Until PID 1 has set up its private bus socket systemctl fails
  //    quickly ("Failed to connect to bus"), so retry.
  let state = '';
  for (;;) {
    if (exitInfo) return fail('systemd-nspawn exited during boot');
    const left = deadline - Date.now();
    if (left <= 0) return fail(`boot did not finish within ${bootTimeoutMs} ms (last state: ${state || 'unknown'})`);
    let r: ExecResult;
    try {
      r = await exec(['systemctl', 'is-system-running', '--wait'], { allowFail: true, timeoutMs: left });
    } catch (e) {
      return fail(`waiting for boot: ${(e as Error).message.split('\n')[0]}`);
    }
    state = r.stdout.trim() || r.stderr.trim();
    if (state === 'running' || state === 'degraded') break;
    // "offline" (or a bus error) just means PID 1 is not listening yet: retry.
    if (/^(maintenance|stopping)$/.test(state)) {
      const failed = await exec(['systemctl', '--failed', '--no-legend'], { allowFail: true, timeoutMs: 10_000 }).catch(() => undefined);
      return fail(`container boot ended in state "${state}"\nfailed units:\n${failed?.stdout ?? '?'}`);
    }
    await sleep(50);
  }

  // 4. Loop device nodes. nspawn gives the container a minimal private /dev; portabled allocates a
  //    loop device through /dev/loop-control (bind-mounted) and then opens /dev/loopN by name, and a DDI's
  //    partitions as /dev/loopNpM, which point into the host's /dev.
  const loops = hostLoopCount();
  await exec(
    [
      'sh',
      '-c',
      'i=0; while [ $i -lt "$1" ]; do [ -e /dev/loop$i ] || mknod -m 0660 /dev/loop$i b 7 $i;' +
        ' for m in 1 2 3 4; do ln -sfn /run/host-dev/loop${i}p$m /dev/loop${i}p$m; done; i=$((i+1)); done',
      'sh',
      String(loops),
    ],
    { timeoutMs: 30_000 },
  ).catch((e: Error) => fail(`creating loop device nodes: ${e.message}`));

  return handle;
}
