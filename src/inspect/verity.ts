/**
 * What an image file is (a plain squashfs or a GPT DDI), where its root file system lies, and whether systemd will
 * find it verifiable: dm-verity sidecars beside a plain image, root-verity and root-verity-sig partitions in a DDI.
 * The hash tree is checked block by block against the data, as the kernel would on read, and the signature, when a
 * certificate is given, as systemd's userspace check would.
 */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { MkportableError } from '../errors.js';
import { dpsArchitecture, dpsLabel, dpsPartitionType, hostArchitecture, parseSignaturePartition, secondaryArchitecture, type DpsRole } from '../formats/dps.js';
import { GPT_FLAG_GROWFS, GPT_FLAG_NO_AUTO, GPT_FLAG_READ_ONLY, SECTOR, guidFromBytes, looksLikeGpt, parseGpt, type GptPartition } from '../formats/gpt.js';
import { checkTree, formatUuid, parseVeritySuperblock } from '../formats/verity.js';
import type { Problem, Severity } from './inspect.js';

export interface VerityFacts {
  format: 'squashfs' | 'ddi';
  /** none: systemd sets up no verity; sidecar: `.verity` + `.roothash` beside the image; embedded: DDI partitions. */
  verity: 'none' | 'sidecar' | 'embedded';
  signed: boolean;
  /** true: the signature verified against --certificate; false: it did not; undefined: not checked. */
  signatureValid?: boolean;
  rootHash?: string;
  /** Where systemd takes the root hash from: the `.roothash` file, a DDI's signature partition; a DDI with neither has it only in its partition UUIDs, and runs unverified. */
  rootHashSource?: 'sidecar' | 'signature' | 'partition-uuids';
  /** The hash tree matched the data and the root hash, block by block. */
  treeValid?: boolean;
  verityUuid?: string;
  veritySalt?: string;
  /** A DDI's architecture whose root partition was read. */
  architecture?: string;
}

export interface LocatedImage {
  facts: VerityFacts;
  /** Where the squashfs lies in the file. */
  root: { offset: number; size: number };
  problems: Problem[];
}

export interface VerityInspectOptions {
  /** DDI: read the root partition of this architecture (default: the host's, as systemd picks it). */
  architecture?: string;
  /** Check the signature against this certificate, as systemd does against /etc/verity.d. */
  certificate?: X509Certificate;
}

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

const exists = (p: string) => fs.stat(p).then((s) => s.isFile(), () => false);

/** `foo.raw` → `foo<suffix>`, as systemd builds sidecar names. */
function sidecar(image: string, suffix: string): string {
  return image.endsWith('.raw') ? image.slice(0, -4) + suffix : image + suffix;
}

class Problems {
  readonly list: Problem[] = [];
  add(severity: Severity, rule: string, message: string, p?: string): void {
    this.list.push({ severity, rule, message, path: p });
  }
}

/**
 * Check a tree over `data` (at dataOffset in its file) against `rootHash`: every mismatch is an error naming where
 * it is. Returns whether everything matched.
 */
async function checkHashTree(o: {
  data: FileHandle; dataOffset: number; dataSize: number; hash: FileHandle; hashOffset: number; hashSize: number;
  rootHash: string; facts: VerityFacts; problems: Problems; where: string;
}): Promise<void> {
  const { problems, where } = o;
  const sbBytes = await readAt(o.hash, o.hashOffset, Math.min(4096, o.hashSize));
  const sb = parseVeritySuperblock(sbBytes);
  if (typeof sb === 'string') {
    problems.add('error', 'verity-superblock-invalid', `${where}: ${sb}: systemd cannot set up verity`);
    return;
  }
  o.facts.verityUuid = formatUuid(sb.uuid);
  o.facts.veritySalt = Buffer.from(sb.salt).toString('hex');
  if (sb.hashType !== 1 || sb.algorithm !== 'sha256') {
    problems.add('warning', 'verity-unsupported', `${where}: hash type ${sb.hashType} with ${sb.algorithm}: not checked (mkportable checks format 1 with sha256)`);
    return;
  }
  if (sb.dataBlocks * sb.dataBlockSize > o.dataSize) {
    problems.add('error', 'verity-data-short', `${where}: the tree covers ${sb.dataBlocks} blocks of ${sb.dataBlockSize} bytes, the data has only ${o.dataSize} bytes`);
    return;
  }
  const hashBytes = (at: number, n: number) => readAt(o.hash, o.hashOffset + at, n).then((b) => {
    if (b.length < n || at + n > o.hashSize) throw new MkportableError('IMAGE_CORRUPT', `${where}: the hash tree ends at ${o.hashSize} bytes, the superblock needs more`, where);
    return b;
  });
  let check;
  try {
    check = await checkTree(sb, (at, n) => readAt(o.data, o.dataOffset + at, n), hashBytes);
  } catch (e) {
    if (e instanceof MkportableError) {
      problems.add('error', 'verity-tree-corrupt', e.message);
      return;
    }
    throw e;
  }
  const stored = Buffer.from(check.storedRoot).toString('hex');
  let ok = true;
  if (check.badDataCount > 0) {
    ok = false;
    const first = check.badDataBlocks.map((b) => `${b} (bytes ${b * sb.dataBlockSize}–${(b + 1) * sb.dataBlockSize - 1})`).join(', ');
    problems.add('error', 'verity-data-corrupt', `${where}: ${check.badDataCount} data block(s) do not match the hash tree: ${first}${check.badDataCount > check.badDataBlocks.length ? ', …' : ''}; the kernel refuses to read them (I/O error)`);
  }
  if (check.badHashBlocks.length > 0) {
    ok = false;
    const list = check.badHashBlocks.slice(0, 8).map(([l, i]) => `level ${l} block ${i}`).join(', ');
    problems.add('error', 'verity-tree-corrupt', `${where}: ${check.badHashBlocks.length} hash block(s) do not match the level above: ${list}`);
  }
  if (stored !== o.rootHash) {
    ok = false;
    problems.add('error', 'verity-root-hash-mismatch', `${where}: the tree's root hash is ${stored}, the image says ${o.rootHash}: systemd fails to set up verity`);
  }
  o.facts.treeValid = ok;
}

/** PKCS#7 and its ASN.1 library are loaded only to check a signature against a certificate. */
async function checkSignature(der: Uint8Array, rootHash: string, opts: VerityInspectOptions, facts: VerityFacts, problems: Problems, where: string): Promise<void> {
  if (!opts.certificate) return;
  const { verifyDetached } = await import('../formats/pkcs7.js');
  const r = verifyDetached(der, Buffer.from(rootHash, 'latin1'), opts.certificate);
  facts.signatureValid = r === true;
  if (r !== true) problems.add('error', 'signature-invalid', `${where}: ${r}: systemd refuses to start the service`);
}

async function inspectPlain(file: string, fh: FileHandle, size: number, opts: VerityInspectOptions, problems: Problems): Promise<LocatedImage> {
  const facts: VerityFacts = { format: 'squashfs', verity: 'none', signed: false };
  const [rhPath, verityPath, sigPath] = ['.roothash', '.verity', '.roothash.p7s'].map((s) => sidecar(file, s));
  const [hasRh, hasVerity, hasSig] = await Promise.all([exists(rhPath), exists(verityPath), exists(sigPath)]);
  const name = path.basename;
  if (hasRh !== hasVerity) {
    problems.add('warning', 'verity-sidecar-incomplete', hasRh
      ? `${name(rhPath)} but no ${name(verityPath)}: systemd runs the image without verity`
      : `${name(verityPath)} but no ${name(rhPath)}: systemd runs the image without verity`);
  }
  if (hasSig && !hasRh) problems.add('warning', 'verity-sidecar-incomplete', `${name(sigPath)} but no ${name(rhPath)}: systemd never reads the signature`);
  const root = { offset: 0, size };
  if (!hasRh || !hasVerity) return { facts, root, problems: problems.list };

  facts.verity = 'sidecar';
  facts.signed = hasSig;
  const line = (await fs.readFile(rhPath, 'utf8')).split('\n')[0].trim();
  if (!/^([0-9a-fA-F]{2}){16,}$/.test(line)) {
    problems.add('error', 'verity-roothash-invalid', `${name(rhPath)}: '${line.slice(0, 80)}' is not a hex root hash: systemd refuses the image`);
    return { facts, root, problems: problems.list };
  }
  facts.rootHash = line.toLowerCase();
  facts.rootHashSource = 'sidecar';
  const hash = await fs.open(verityPath, 'r');
  try {
    await checkHashTree({
      data: fh, dataOffset: 0, dataSize: size, hash, hashOffset: 0, hashSize: (await hash.stat()).size,
      rootHash: facts.rootHash, facts, problems, where: name(verityPath),
    });
  } finally {
    await hash.close();
  }
  if (hasSig) {
    const der = await fs.readFile(sigPath);
    if (der.length === 0) problems.add('error', 'signature-invalid', `${name(sigPath)} is empty: systemd refuses the image`);
    else await checkSignature(der, facts.rootHash, opts, facts, problems, name(sigPath));
  }
  return { facts, root, problems: problems.list };
}

interface DpsPart extends GptPartition {
  index: number;
  arch: string;
  role: DpsRole;
}

function pickArchitecture(roots: DpsPart[], wanted: string | undefined): string | undefined {
  const archs = new Set(roots.map((r) => r.arch));
  if (wanted) return archs.has(wanted) ? wanted : undefined;
  const host = hostArchitecture();
  if (host && archs.has(host)) return host;
  const second = host && secondaryArchitecture(host);
  if (second && archs.has(second)) return second;
  return roots[0]?.arch;
}

async function inspectDdi(file: string, fh: FileHandle, size: number, opts: VerityInspectOptions, problems: Problems): Promise<LocatedImage> {
  const facts: VerityFacts = { format: 'ddi', verity: 'none', signed: false };
  const base = path.basename(file);
  const gpt = await parseGpt((o, n) => readAt(fh, o, n), size);
  for (const p of gpt.problems) problems.add('error', 'gpt-invalid', `${base}: ${p}`);
  if (await exists(sidecar(file, '.verity'))) {
    problems.add('error', 'ddi-sidecar-verity', `${path.basename(sidecar(file, '.verity'))} beside a partitioned image: systemd refuses it ("external verity data only for single file systems")`);
  }
  const parts = dpsParts(gpt.partitions);
  const roots = parts.filter((p) => p.role === 'root');
  const arch = pickArchitecture(roots, opts.architecture);
  if (!arch) {
    const have = roots.length ? `it has root partitions for ${[...new Set(roots.map((r) => r.arch))].join(', ')}` : 'it has no DPS root partition';
    throw new MkportableError('IMAGE_UNSUPPORTED', `${base}: no root partition for ${opts.architecture ?? hostArchitecture() ?? process.arch}: ${have}`, file);
  }
  facts.architecture = arch;
  const label = (role: DpsRole) => dpsLabel(dpsArchitecture(arch)!, role);
  const of = (role: DpsRole) => parts.filter((p) => p.arch === arch && p.role === role);
  const [root, verity, sig] = [of('root'), of('verity'), of('verity-sig')];
  for (const [role, list] of [['root', root], ['verity', verity], ['verity-sig', sig]] as const) {
    if (list.length > 1) problems.add('error', 'ddi-duplicate-partition', `${base}: ${list.length} ${label(role)} partitions (${list.map((p) => p.index).join(', ')}): systemd refuses the image`);
  }
  const bytes = (p: GptPartition) => ({ offset: Number(p.firstLba) * SECTOR, size: Number(p.lastLba - p.firstLba + 1n) * SECTOR });
  const r = root[0];
  const rootRange = bytes(r);
  if (rootRange.offset + rootRange.size > size) throw new MkportableError('IMAGE_CORRUPT', `${base}: the root partition ends past the end of the file`, file);
  if (r.attributes & GPT_FLAG_NO_AUTO) problems.add('error', 'ddi-partition-flags', `${base}: the root partition has the no-auto flag (bit 63): systemd ignores it`);
  if (r.attributes & GPT_FLAG_GROWFS) problems.add('warning', 'ddi-partition-flags', `${base}: the root partition has the grow-fs flag (bit 59): newer systemd refuses it on a read-only file system`);
  if (!(r.attributes & GPT_FLAG_READ_ONLY)) problems.add('warning', 'ddi-partition-flags', `${base}: the root partition lacks the read-only flag (bit 60)`);

  if (sig.length && !verity.length) {
    problems.add('error', 'ddi-verity-missing', `${base}: a ${label('verity-sig')} partition but no ${label('verity')} partition: systemd refuses the image`);
  }
  if (!verity.length) return { facts, root: rootRange, problems: problems.list };

  facts.verity = 'embedded';
  const v = verity[0];
  if (!(v.attributes & GPT_FLAG_READ_ONLY)) problems.add('warning', 'ddi-partition-flags', `${base}: the verity partition lacks the read-only flag (bit 60)`);
  // The root hash that selects the partitions: from the signature partition, else from `<name>.roothash`; with
  // neither it is only in the two partition UUIDs, and systemd mounts the root partition without verity.
  let rootHash = (r.uuid + v.uuid).replace(/-/g, '');
  facts.rootHashSource = 'partition-uuids';
  const rhPath = sidecar(file, '.roothash');
  const sidecarHash = (await exists(rhPath)) ? (await fs.readFile(rhPath, 'utf8')).split('\n')[0].trim().toLowerCase() : undefined;
  if (sidecarHash !== undefined) {
    if (!/^([0-9a-f]{2}){16,}$/.test(sidecarHash)) {
      problems.add('error', 'verity-roothash-invalid', `${path.basename(rhPath)}: '${sidecarHash.slice(0, 80)}' is not a hex root hash: systemd refuses the image`);
    } else {
      rootHash = sidecarHash;
      facts.rootHashSource = 'sidecar';
    }
  }
  if (sig.length) {
    facts.signed = true;
    const range = bytes(sig[0]);
    const parsed = range.offset + range.size <= size ? parseSignaturePartition(await readAt(fh, range.offset, range.size)) : 'it ends past the end of the file';
    if (typeof parsed === 'string') {
      problems.add('error', 'ddi-signature-invalid', `${base}: the verity-sig partition: ${parsed}: systemd refuses the image`);
    } else {
      const uuids = (r.uuid + v.uuid).replace(/-/g, '');
      if (parsed.rootHash !== uuids) {
        problems.add('error', 'ddi-signature-root-hash', `${base}: the verity-sig partition's rootHash ${parsed.rootHash} is not the one the partition UUIDs carry (${uuids})`);
      }
      if (sidecarHash !== undefined && facts.rootHashSource === 'sidecar' && parsed.rootHash !== sidecarHash) {
        problems.add('error', 'ddi-signature-root-hash', `${base}: the verity-sig partition's rootHash ${parsed.rootHash} is not the one in ${path.basename(rhPath)} (${sidecarHash}): systemd refuses the image`);
      }
      rootHash = parsed.rootHash;
      facts.rootHashSource = 'signature';
      if (opts.certificate && parsed.certificateFingerprint && parsed.certificateFingerprint !== opts.certificate.fingerprint256.replace(/:/g, '').toLowerCase()) {
        problems.add('warning', 'signature-fingerprint-mismatch', `${base}: certificateFingerprint ${parsed.certificateFingerprint} is not that of the given certificate`);
      }
      await checkSignature(Buffer.from(parsed.signature, 'base64'), rootHash, opts, facts, problems, `${base}: the verity-sig partition`);
    }
  }
  if (facts.rootHashSource === 'partition-uuids') {
    problems.add('warning', 'ddi-root-hash-missing', `${base}: unsigned and no ${path.basename(rhPath)} beside it: systemd does not know the root hash and mounts the root partition without verity`);
  }
  facts.rootHash = rootHash;
  const hr = bytes(v);
  if (rootHash.length >= 64) {
    const want = Buffer.from(rootHash, 'hex');
    const wantRoot = guidFromBytes(want.subarray(0, 16));
    const wantVerity = guidFromBytes(want.subarray(want.length - 16));
    if (r.uuid !== wantRoot) problems.add('error', 'ddi-partition-uuid', `${base}: root partition UUID ${r.uuid} is not the first 128 bits of the root hash (${wantRoot}): systemd does not find it`);
    if (v.uuid !== wantVerity) problems.add('error', 'ddi-partition-uuid', `${base}: verity partition UUID ${v.uuid} is not the last 128 bits of the root hash (${wantVerity}): systemd does not find it`);
  }
  await checkHashTree({
    data: fh, dataOffset: rootRange.offset, dataSize: rootRange.size, hash: fh, hashOffset: hr.offset, hashSize: Math.min(hr.size, size - hr.offset),
    rootHash, facts, problems, where: `${base}: verity partition ${v.index}`,
  });
  return { facts, root: rootRange, problems: problems.list };
}

/**
 * Where the squashfs of `file` is: the root partition systemd would pick in a DDI (host architecture, else its
 * secondary, else the only one; or `architecture`), undefined for a plain image. No checks: for ls and cat.
 */
export async function rootFileSystem(file: string, architecture?: string): Promise<{ offset: number; size: number } | undefined> {
  const fh = await fs.open(file, 'r').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') throw new MkportableError('PATH_NOT_FOUND', `${file}: no such file`, file);
    throw new MkportableError('SOURCE_READ', `${file}: cannot open (${e.code ?? e.message})`, file);
  });
  try {
    const size = (await fh.stat()).size;
    if (!looksLikeGpt(await readAt(fh, 0, 1024))) return undefined;
    const gpt = await parseGpt((o, n) => readAt(fh, o, n), size);
    const roots = dpsParts(gpt.partitions).filter((p) => p.role === 'root');
    const arch = pickArchitecture(roots, architecture);
    const root = roots.find((r) => r.arch === arch);
    if (!root) throw new MkportableError('IMAGE_UNSUPPORTED', `${path.basename(file)}: a partitioned image without a root partition${architecture ? ` for ${architecture}` : ''}`, file);
    return { offset: Number(root.firstLba) * SECTOR, size: Number(root.lastLba - root.firstLba + 1n) * SECTOR };
  } finally {
    await fh.close();
  }
}

function dpsParts(partitions: (GptPartition & { index: number })[]): DpsPart[] {
  const parts: DpsPart[] = [];
  for (const p of partitions) {
    const t = dpsPartitionType(p.type);
    if (t) parts.push({ ...p, arch: t.arch.name, role: t.role });
  }
  return parts;
}

/** Find the root file system of `file` and judge its verity. Throws IMAGE_UNSUPPORTED for files that are neither squashfs nor GPT. */
export async function locateImage(file: string, opts: VerityInspectOptions = {}): Promise<LocatedImage> {
  let fh: FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (e) {
    throw new MkportableError('SOURCE_READ', `${file}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, file);
  }
  try {
    const size = (await fh.stat()).size;
    const head = await readAt(fh, 0, 1024);
    const problems = new Problems();
    if (looksLikeGpt(head)) return await inspectDdi(file, fh, size, opts, problems);
    if (opts.architecture) problems.add('warning', 'architecture-ignored', `${path.basename(file)} is not a partitioned image: --architecture does not apply`);
    // Anything else is taken for a squashfs: its reader names what is wrong with it.
    return await inspectPlain(file, fh, size, opts, problems);
  } finally {
    await fh.close();
  }
}
