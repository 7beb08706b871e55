// Helpers for the dm-verity tests: signing keys made with openssl, image content that lives outside the build
// host's file system, and byte flips in finished images.
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { directorySource } from '../../src/sources/host.js';
import type { Source } from '../../src/sources/source.js';

export interface SigningPair {
  key: string;
  certificate: string;
}

/** A self-signed RSA key and certificate, as `openssl req -x509` makes them. */
export function makeSigningPair(dir: string, name: string, bits = 2048): SigningPair {
  const key = path.join(dir, `${name}.key`);
  const certificate = path.join(dir, `${name}.crt`);
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', `rsa:${bits}`, '-nodes', '-keyout', key, '-out', certificate,
    '-days', '3650', '-subj', `/CN=${name}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { key, certificate };
}

/**
 * `base` with the host folder `dir` mounted at `at` (whose parent must exist in `base`): the image gets files
 * that are not on the build host, at a path the portable profile leaves visible (not /tmp, not /home).
 */
export function withFolderAt(base: Source, at: string, dir: string): Source {
  const inner = directorySource(dir);
  const map = (p: string) => (p === at ? '/' : p.startsWith(`${at}/`) ? p.slice(at.length) : undefined);
  const parent = path.posix.dirname(at);
  return {
    name: base.name,
    lstat: (p) => (map(p) !== undefined ? inner.lstat(map(p)!) : base.lstat(p)),
    readlink: (p) => (map(p) !== undefined ? inner.readlink(map(p)!) : base.readlink(p)),
    readdir: async (p) => {
      if (map(p) !== undefined) return inner.readdir(map(p)!);
      const names = await base.readdir(p);
      return p === parent && !names.includes(path.posix.basename(at)) ? [...names, path.posix.basename(at)].sort() : names;
    },
    read: (p, o, l) => (map(p) !== undefined ? inner.read(map(p)!, o, l) : base.read(p, o, l)),
    readFile: (p) => (map(p) !== undefined ? inner.readFile(map(p)!) : base.readFile(p)),
    hostPath: (p) => (map(p) !== undefined ? inner.hostPath(map(p)!) : base.hostPath(p)),
  };
}

/** Flip every bit of the byte at `offset` of `file`. */
export async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await fs.open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b[0] ^= 0xff;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

/** Where `needle` first occurs in `file` (read whole: test images are small). */
export async function findBytes(file: string, needle: Uint8Array): Promise<number> {
  const at = (await fs.readFile(file)).indexOf(needle);
  if (at < 0) throw new Error(`${file}: the ${needle.length} bytes looked for are not in it`);
  return at;
}
