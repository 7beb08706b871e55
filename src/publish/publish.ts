// `mkportable publish`: a release folder that systemd-sysupdate consumes. Per version the image (and any
// verity sidecars beside it), optionally compressed; SHA256SUMS for the whole folder, signed when a key is given;
// and the client's transfer files. Publishing adds to the folder; every file is staged under a temporary name and
// renamed into place only when all are complete, SHA256SUMS last but for its signature.
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { closeSync, constants, createReadStream, createWriteStream, openSync, promises as fs, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { createGzip } from 'node:zlib';
import { MkportableError } from '../errors.js';
import { parseSums, renderSums } from './sums.js';
import { componentDir, releaseSuffix, renderTransfer, transferName, type ReleaseKind } from './transfer.js';

export type ReleaseCompression = 'xz' | 'gz';

export interface PublishOptions {
  /** Images `<pname>_<version>.raw` (squashfs or DDI); sidecars `<pname>_<version>.{verity,roothash,roothash.p7s}` beside one go along. */
  images: string[];
  /** The release folder (created when missing). */
  to: string;
  compress?: ReleaseCompression;
  /** gpg key (id, fingerprint or user id) that signs SHA256SUMS into SHA256SUMS.gpg; GNUPGHOME applies. */
  gpgKey?: string;
  /** Where clients fetch the folder from; default file://<folder>. */
  url?: string;
  log?: (line: string) => void;
}

export interface PublishedFile {
  /** Name in the release folder. */
  name: string;
  sha256: string;
  /** 'added', or 'unchanged' when the folder already held these exact bytes. */
  status: 'added' | 'unchanged';
}

export interface PublishResult {
  dir: string;
  files: PublishedFile[];
  /** Every name SHA256SUMS lists now, sorted. */
  listed: string[];
  signed: boolean;
  /** Transfer files written, relative to the folder. */
  transfers: string[];
}

/** Sidecars portabled reads beside `<name>.raw` (dissect's verity settings), in the order they are looked for. */
const SIDECARS = ['.verity', '.roothash', '.roothash.p7s'] as const;
/** Big enough to be worth compressing; the hashes and signatures are a few bytes. */
const COMPRESSIBLE = new Set(['.raw', '.verity']);
/** sysupdate's @v: [A-Za-z0-9.,_+-]+ (sysupdate-pattern.c). */
const SYSUPDATE_VERSION = /^[A-Za-z0-9.,_+-]+$/;
const IMAGE_NAME = /^([A-Za-z0-9][A-Za-z0-9.-]*)_([^/]+)\.raw$/;

interface Input {
  pname: string;
  version: string;
  /** Host file → release name, per kind. */
  files: { source: string; kind: ReleaseKind; name: string }[];
}

function fail(message: string, subject?: string): never {
  throw new MkportableError('CONFIG_INVALID', message, subject);
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

async function inputsOf(images: string[], compress: ReleaseCompression | undefined): Promise<Input[]> {
  if (images.length === 0) fail('publish: name at least one image');
  const seen = new Set<string>();
  const inputs: Input[] = [];
  for (const image of images) {
    const file = path.resolve(image);
    const st = await fs.stat(file).catch(() => undefined);
    if (!st) throw new MkportableError('PATH_NOT_FOUND', `${image}: no such image`, image);
    if (!st.isFile()) fail(`${image}: not a file`, image);
    const m = IMAGE_NAME.exec(path.basename(file));
    if (!m) fail(`${image}: name must be <pname>_<version>.raw (as mkportable build writes it)`, image);
    const [, pname, version] = m;
    if (!SYSUPDATE_VERSION.test(version)) {
      fail(`${image}: version '${version}' has a character systemd-sysupdate's @v cannot match (only A-Z a-z 0-9 . , _ + -)`, image);
    }
    const key = `${pname}_${version}`;
    if (seen.has(key)) fail(`${image}: ${key} is named twice`, image);
    seen.add(key);
    const base = file.slice(0, -'.raw'.length);
    const files: Input['files'] = [];
    for (const suffix of ['.raw', ...SIDECARS]) {
      const source = `${base}${suffix}`;
      if (suffix !== '.raw' && !(await exists(source))) continue;
      const compressed = compress && COMPRESSIBLE.has(suffix) ? `.${compress}` : '';
      files.push({ source, kind: { suffix, compressed }, name: `${key}${releaseSuffix(suffix)}${compressed}` });
    }
    inputs.push({ pname, version, files });
  }
  return inputs;
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Copies (and compresses) one file to `tmp`; returns the sha256 of what was written. */
async function stage(source: string, tmp: string, compressed: string): Promise<string> {
  if (compressed === '.xz') {
    const { xzStreamFile } = await import('../compress/xz.js');
    const fh = await fs.open(tmp, 'wx', 0o644);
    try {
      await xzStreamFile(createReadStream(source, { highWaterMark: 1 << 20 }), async (bytes) => {
        await fh.write(bytes);
      });
    } finally {
      await fh.close();
    }
  } else if (compressed === '.gz') {
    // No name and no time in the gzip header: the same image always compresses to the same bytes.
    await pipeline(createReadStream(source), createGzip({ level: 9 }), createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
  } else {
    await fs.copyFile(source, tmp, constants.COPYFILE_EXCL);
    await fs.chmod(tmp, 0o644);
  }
  return sha256File(tmp);
}

function runGpg(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('gpg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) => {
      const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
      reject(new MkportableError('SIGNING_FAILED', missing ? 'gpg not found (apt-get install gpg)' : `gpg: ${e.message}`));
    });
    child.on('close', (code) => {
      if (code === 0) resolve();
      else {
        const why = err.trim().split('\n').filter((l) => !/^gpg: (WARNING|using)/.test(l)).pop() ?? `exit ${code}`;
        reject(new MkportableError('SIGNING_FAILED', `signing SHA256SUMS failed: ${why.replace(/^gpg: /, '')}`));
      }
    });
  });
}

/** One publisher at a time per folder: a lock file holding our pid (a dead holder's lock is taken over). */
function lockFolder(dir: string): () => void {
  const lock = path.join(dir, '.mkportable-publish.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lock);
        } catch {
          /* gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(lock, 'utf8').trim());
      let alive = false;
      try {
        process.kill(pid, 0);
        alive = pid > 0;
      } catch {
        alive = false;
      }
      if (alive) throw new MkportableError('RELEASE_CONFLICT', `${dir}: another mkportable publish (pid ${pid}) is writing this folder`, dir);
      unlinkSync(lock);
    }
  }
  throw new MkportableError('RELEASE_CONFLICT', `${dir}: could not lock the folder`, dir);
}

export async function publish(opts: PublishOptions): Promise<PublishResult> {
  const log = opts.log ?? (() => {});
  if (opts.compress !== undefined && opts.compress !== 'xz' && opts.compress !== 'gz') fail(`--compress ${String(opts.compress)}: choose xz or gz`, 'compress');
  const dir = path.resolve(opts.to);
  const url = (opts.url ?? pathToFileURL(dir).href).replace(/\/+$/, '');
  if (!/^(https?|file):\/\/./.test(url)) fail(`--url ${url}: systemd-sysupdate fetches http://, https:// or file:// URLs`, 'url');
  if (/\s/.test(url)) fail(`--url '${url}': no spaces in a transfer file's Path=`, 'url');
  const inputs = await inputsOf(opts.images, opts.compress);

  await fs.mkdir(dir, { recursive: true });
  const unlock = lockFolder(dir);
  const staged: string[] = [];
  try {
    const sumsPath = path.join(dir, 'SHA256SUMS');
    const sigPath = path.join(dir, 'SHA256SUMS.gpg');
    const oldText = await fs.readFile(sumsPath, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return '';
      throw e;
    });
    let sums;
    try {
      sums = parseSums(oldText, sumsPath);
    } catch (e) {
      throw new MkportableError('RELEASE_CONFLICT', (e as Error).message, sumsPath);
    }
    if (!opts.gpgKey && (await exists(sigPath))) {
      throw new MkportableError('RELEASE_CONFLICT', `${sigPath}: this folder is signed; pass --gpg-key to keep it signed (an old signature would not match the new SHA256SUMS)`, sigPath);
    }
    // Listed files that vanished would make sysupdate fail on that version: drop them from the list.
    for (const name of [...sums.keys()]) {
      if (!(await exists(path.join(dir, name)))) {
        log(`${name}: listed in SHA256SUMS but missing from the folder; no longer listed`);
        sums.delete(name);
      }
    }

    // 1. Stage every payload file, then compare with what the folder holds before anything is renamed.
    const tmpName = (name: string) => path.join(dir, `.${name}.${process.pid}.tmp`);
    const results: PublishedFile[] = [];
    const renames: [string, string][] = [];
    for (const input of inputs) {
      const stem = `${input.pname}_${input.version}.raw`;
      for (const f of input.files) {
        const tmp = tmpName(f.name);
        staged.push(tmp);
        const sha256 = await stage(f.source, tmp, f.kind.compressed);
        const target = path.join(dir, f.name);
        if (await exists(target)) {
          const have = sums.get(f.name) ?? (await sha256File(target));
          if (have !== sha256) {
            throw new MkportableError(
              'RELEASE_CONFLICT',
              `${target} already holds another build of ${input.pname} ${input.version}: clients may have installed it; publish a new version`,
              target,
            );
          }
          results.push({ name: f.name, sha256, status: 'unchanged' });
        } else {
          if (f.kind.suffix === '.raw') {
            const other = [...sums.keys()].find((n) => n.startsWith(stem) && n !== f.name && /^(\.xz|\.gz|\.bz2)?$/.test(n.slice(stem.length)));
            if (other) throw new MkportableError('RELEASE_CONFLICT', `${dir}: ${input.pname} ${input.version} is already published as ${other}`, path.join(dir, other));
          }
          renames.push([tmp, target]);
          results.push({ name: f.name, sha256, status: 'added' });
        }
        sums.set(f.name, sha256);
      }
    }

    // 2. SHA256SUMS and its signature, staged too.
    const sumsTmp = tmpName('SHA256SUMS');
    staged.push(sumsTmp);
    await fs.writeFile(sumsTmp, renderSums(sums), { flag: 'wx', mode: 0o644 });
    let sigTmp: string | undefined;
    if (opts.gpgKey) {
      sigTmp = tmpName('SHA256SUMS.gpg');
      staged.push(sigTmp);
      await runGpg(['--batch', '--yes', '--no-tty', '--local-user', opts.gpgKey, '--detach-sign', '--output', sigTmp, sumsTmp]);
    }

    // 3. Transfer files for every kind of file the folder now carries for these images.
    const transfers: [string, string][] = [];
    const kinds = new Map<string, { pname: string; kind: ReleaseKind }>();
    for (const input of inputs) for (const f of input.files) kinds.set(transferName(input.pname, f.kind), { pname: input.pname, kind: f.kind });
    for (const [name, { pname, kind }] of [...kinds].sort()) {
      // Laid out as on the client: <folder>/sysupdate.<pname>.d/ → /etc/sysupdate.<pname>.d/.
      const sub = path.basename(componentDir(pname));
      await fs.mkdir(path.join(dir, sub), { recursive: true });
      const text = renderTransfer({ pname, kind, url, signed: Boolean(opts.gpgKey) });
      for (const ext of ['.transfer', '.conf']) {
        const rel = `${sub}/${name}${ext}`;
        const tmp = path.join(dir, sub, `.${name}${ext}.${process.pid}.tmp`);
        staged.push(tmp);
        await fs.writeFile(tmp, text, { flag: 'wx', mode: 0o644 });
        transfers.push([tmp, rel]);
      }
    }

    // 4. Into place: payload first, then the list (and its signature right after), then the transfers.
    for (const [tmp, target] of renames) await fs.rename(tmp, target);
    await fs.rename(sumsTmp, sumsPath);
    if (sigTmp) await fs.rename(sigTmp, sigPath);
    for (const [tmp, rel] of transfers) await fs.rename(tmp, path.join(dir, rel));
    for (const r of results) log(`${r.status === 'added' ? 'added    ' : 'unchanged'} ${r.name}  sha256 ${r.sha256}`);
    log(`SHA256SUMS lists ${sums.size} file${sums.size === 1 ? '' : 's'}${opts.gpgKey ? ', signed into SHA256SUMS.gpg' : ''}`);
    return {
      dir,
      files: results,
      listed: [...sums.keys()].sort(),
      signed: Boolean(opts.gpgKey),
      transfers: transfers.map(([, rel]) => rel),
    };
  } finally {
    await Promise.all(staged.map((t) => fs.rm(t, { force: true })));
    unlock();
  }
}
