import { spawnSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { IN_CI } from '../../scripts/testing/ci.mjs';

export { IN_CI };

export const REPO = path.resolve(new URL('../..', import.meta.url).pathname);

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export const isRoot = () => process.getuid?.() === 0;

/**
 * Real-part tests need root, the kernel or external tools. On a developer machine without them they skip with
 * the reason; in CI a missing prerequisite fails the test.
 */
export function needs(t: TestContext, ok: boolean, reason: string): boolean {
  if (ok) return true;
  if (IN_CI) throw new Error(`prerequisite missing in CI: ${reason}`);
  t.skip(reason);
  return false;
}

/**
 * A fresh folder in the temporary directory. Given the test (or suite context) `t`, it is removed when that ends;
 * otherwise the caller removes it (npm test fails when anything is left in the temporary directory).
 */
export function tempDir(t?: Cleanup): string;
export function tempDir(prefix: string, t?: Cleanup): string;
export function tempDir(a?: string | Cleanup, b?: Cleanup): string {
  const [prefix, t] = typeof a === 'string' ? [a, b] : ['mkportable-test-', a];
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t?.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A test's or a suite's context, or anything else that runs a function at its end. */
type Cleanup = Pick<TestContext, 'after'>;

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Run as this user and group (needs root). */
  uid?: number;
  gid?: number;
  /** Kill the command (SIGKILL) after this many milliseconds; it then ends with code -1. */
  timeout?: number;
  /** Close the read end of stdout at once, as `| head -c 0` would: the command's writes get EPIPE. */
  closeStdout?: boolean;
}

/** Run the CLI as users do (bin/mkportable.js). */
export function runCli(args: string[], opts: RunOptions = {}): Promise<Run> {
  return runCommand(process.execPath, [path.join(REPO, 'bin/mkportable.js'), ...args], opts);
}

export function runCommand(cmd: string, args: string[], opts: RunOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? REPO, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'],
      uid: opts.uid, gid: opts.gid, timeout: opts.timeout, killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    if (opts.closeStdout) child.stdout.destroy();
    else child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
