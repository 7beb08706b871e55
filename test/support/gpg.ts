// Throwaway OpenPGP keys for signing tests: a private GNUPGHOME per test run, removed by the caller.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Gpg {
  home: string;
  /** Environment for processes that should see this GNUPGHOME (e.g. mkportable publish --gpg-key). */
  env: NodeJS.ProcessEnv;
  /** Makes a signing key without passphrase; returns its fingerprint. */
  newKey(uid: string): string;
  /** Writes the public key as a binary keyring (what systemd's import-pubring.gpg is). */
  exportKey(fpr: string, file: string): void;
  run(args: string[]): { code: number; stdout: string; stderr: string };
}

export function throwawayGpg(): Gpg {
  const home = mkdtempSync(path.join(os.tmpdir(), 'mkp-gnupg-'));
  chmodSync(home, 0o700);
  const env = { ...process.env, GNUPGHOME: home };
  const run = (args: string[]) => {
    const r = spawnSync('gpg', ['--batch', '--no-tty', ...args], { env, encoding: 'utf8' });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  return {
    home,
    env,
    run,
    newKey(uid) {
      const g = run(['--passphrase', '', '--quick-gen-key', uid, 'ed25519', 'sign', 'never']);
      if (g.code !== 0) throw new Error(`gpg --quick-gen-key: ${g.stderr}`);
      const l = run(['--with-colons', '--list-keys', uid]);
      const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(l.stdout)?.[1];
      if (!fpr) throw new Error(`no fingerprint for ${uid}: ${l.stdout}${l.stderr}`);
      return fpr;
    },
    exportKey(fpr, file) {
      const e = spawnSync('gpg', ['--batch', '--export', fpr], { env });
      if (e.status !== 0 || !e.stdout.length) throw new Error(`gpg --export ${fpr}: ${e.stderr}`);
      writeFileSync(file, e.stdout);
    },
  };
}

/** Stops the gpg-agent a key generation started, then the caller may remove the home. */
export function stopAgent(g: Gpg): void {
  spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env: g.env, stdio: 'ignore' });
}
