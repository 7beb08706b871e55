// Test harness: boots a Debian 12 QEMU virtual machine (TCG: this machine's /dev/kvm is of no use to Debian's
// kernel) that runs one shell script with real systemd-portabled and the real kernel's dm-verity, then powers off.
//
//   const r = await runInVm({ files: [{ path: 'images/x.raw', from: '/tmp/x.raw' }], script: 'portablectl attach ...' });
//   r.output  // what the script printed (second serial port)
//
// - The VM (root file system image, kernel, initrd) is built once by scripts/vm-rootfs.sh and cached under
//   /var/cache/mkportable/bookworm-vm; QEMU opens it with snapshot=on, so it is never written to.
// - The script and its files go on a second virtio disk, an ext4 image made with `mkfs.ext4 -d` (no mounting);
//   the VM mounts it read-only at /run/mkportable-test, runs run.sh with cwd there, and powers off.
// - QEMU runs under `timeout -s KILL`, so even if this process dies without cleaning up the VM cannot outlive
//   its time; the temporary folder is removed after every run (MKPORTABLE_KEEP_VM=1 keeps it).
// Batch everything into one run: a boot costs 10–40 s under TCG, each attach/start/detach a few seconds.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO } from './env.js';

export const VM_SCRIPT = path.join(REPO, 'scripts/vm-rootfs.sh');
export const VM_CACHE = process.env.MKPORTABLE_VM_CACHE?.replace(/\/+$/, '') || '/var/cache/mkportable/bookworm-vm';
const QEMU = 'qemu-system-x86_64';
const DONE = 'MKPORTABLE-VM: exit';

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function hostKernel(): string | undefined {
  if (!existsSync('/boot')) return undefined;
  return readdirSync('/boot').filter((f) => /^vmlinuz-.*-amd64$/.test(f)).map((f) => f.slice('vmlinuz-'.length))
    .find((k) => existsSync(`/lib/modules/${k}/kernel`));
}

/** Can runInVm() work here? `reason` names everything missing. */
export function vmPrerequisites(): { ok: boolean; reason?: string } {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (debootstrap, mkfs.ext4 -d with owners)');
  if (os.arch() !== 'x64') missing.push('an x86-64 host');
  if (!which(QEMU)) missing.push(`${QEMU} (apt-get install qemu-system-x86)`);
  if (!which('mkfs.ext4')) missing.push('mkfs.ext4 (e2fsprogs)');
  if (!which('timeout')) missing.push('timeout (coreutils)');
  const cached = existsSync(path.join(VM_CACHE, 'stamp'));
  if (!cached) {
    if (!which('debootstrap')) missing.push('debootstrap');
    if (!which('mkinitramfs')) missing.push('mkinitramfs (initramfs-tools)');
    if (!hostKernel()) missing.push('a Debian kernel in /boot (apt-get install linux-image-amd64)');
  }
  return missing.length ? { ok: false, reason: `missing: ${missing.join(', ')}` } : { ok: true };
}

export interface VmImage {
  dir: string;
  kernel: string;
  initrd: string;
  rootfs: string;
}

/** Build the cached VM if needed (a few minutes, once). */
export function ensureVm(): VmImage {
  const r = spawnSync('bash', [VM_SCRIPT], { encoding: 'utf8', timeout: 20 * 60_000, env: { ...process.env, MKPORTABLE_VM_CACHE: VM_CACHE } });
  if (r.status !== 0) throw new Error(`scripts/vm-rootfs.sh failed (${r.status ?? r.signal}):\n${r.stderr}`);
  const dir = r.stdout.trim().split('\n').pop()!;
  return { dir, kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd.img'), rootfs: path.join(dir, 'rootfs.img') };
}

export interface VmFile {
  /** Path on the test disk, relative (the script runs in its root). */
  path: string;
  /** A host file to copy, or the content. */
  from?: string;
  data?: string | Uint8Array;
  mode?: number;
}

export interface VmRun {
  /** What run.sh printed, \r\n made \n. */
  output: string;
  /** The VM's console (kernel and systemd messages). */
  console: string;
  seconds: number;
}

export interface VmOptions {
  files?: VmFile[];
  /** run.sh: runs under /bin/sh in the VM, as root, cwd the test disk. */
  script: string;
  /** Whole run, boot included; QEMU is killed after it. Default 10 min. */
  timeoutMs?: number;
  memoryMb?: number;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

export async function runInVm(opts: VmOptions): Promise<VmRun> {
  const vm = ensureVm();
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'mkportable-vm-'));
  const keep = process.env.MKPORTABLE_KEEP_VM === '1';
  try {
    const stage = path.join(work, 'disk');
    await fs.mkdir(stage);
    let bytes = 0;
    for (const f of [...(opts.files ?? []), { path: 'run.sh', data: `cd /run/mkportable-test\n${opts.script}`, mode: 0o755 }]) {
      const dest = path.join(stage, f.path);
      if (!dest.startsWith(stage + path.sep)) throw new Error(`VM file path escapes the disk: ${f.path}`);
      await fs.mkdir(path.dirname(dest), { recursive: true });
      if (f.from) await fs.copyFile(f.from, dest);
      else await fs.writeFile(dest, f.data ?? '');
      if (f.mode !== undefined) await fs.chmod(dest, f.mode);
      bytes += statSync(dest).size;
    }
    const disk = path.join(work, 'test.img');
    const mb = Math.ceil((bytes * 1.3) / 1048576) + 16;
    const mkfs = spawnSync('mkfs.ext4', ['-q', '-F', '-L', 'mkptest', '-d', stage, disk, `${mb}M`], { encoding: 'utf8' });
    if (mkfs.status !== 0) throw new Error(`mkfs.ext4 -d failed: ${mkfs.stderr}`);

    const consoleLog = path.join(work, 'console.log');
    const outputLog = path.join(work, 'output.log');
    const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
    const args = [
      '-s', 'KILL', String(Math.ceil(timeoutMs / 1000)), QEMU,
      '-accel', 'tcg,thread=multi', '-smp', '2', '-m', String(opts.memoryMb ?? 1024),
      '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      '-kernel', vm.kernel, '-initrd', vm.initrd,
      '-append', 'root=/dev/vda rw console=ttyS0 quiet systemd.show_status=false panic=-1 mitigations=off',
      '-drive', `file=${vm.rootfs},if=virtio,format=raw,snapshot=on`,
      '-drive', `file=${disk},if=virtio,format=raw,readonly=on`,
      '-serial', `file:${consoleLog}`, '-serial', `file:${outputLog}`,
      '-device', 'virtio-rng-pci',
    ];
    const started = Date.now();
    const child = spawn('timeout', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: work } });
    running.add(child);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const code = await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
    });
    running.delete(child);
    const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').replace(/\r\n/g, '\n') : '');
    const result: VmRun = { output: read(outputLog), console: read(consoleLog), seconds: (Date.now() - started) / 1000 };
    if (!result.output.includes(DONE)) {
      const tail = result.console.split('\n').slice(-40).join('\n');
      throw new Error(`the VM did not finish its script (qemu exit ${code}${code === 137 ? ', killed after the timeout' : ''}) ${stderr.trim()}\n--- output ---\n${result.output}\n--- console tail ---\n${tail}`);
    }
    return result;
  } finally {
    if (!keep) await fs.rm(work, { recursive: true, force: true });
  }
}
