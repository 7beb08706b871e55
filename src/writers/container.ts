/**
 * The container around the squashfs: nothing (a plain `.raw`), dm-verity sidecars beside it, or a GPT Discoverable
 * Disk Image holding it with its verity and signature partitions (plus `<name>.roothash` when unsigned). Every output is written under a temporary name
 * beside its final one and all are renamed into place only once every one is complete; a failure removes them all.
 *
 * Passes over the squashfs, streamed in 1 MiB chunks: its sha256 (the seed that salt and UUIDs derive from, and
 * the image's sha256 when it stays a plain file), then the hash tree (while copying it into the DDI).
 */
import { createHash, createHmac } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { MkportableError, isMkportableError, systemReason } from '../errors.js';
import { dpsArchitecture, dpsLabel, encodeSignaturePartition, type DpsArchitecture } from '../formats/dps.js';
import { encodeGpt, GPT_FLAG_READ_ONLY, guidFromBytes, SECTOR, type GptPartition } from '../formats/gpt.js';
import { deriveVerityIdentity, encodeVeritySuperblock, formatUuid, HashTreeBuilder, treeGeometry, uuidV4From, VERITY_BLOCK_SIZE } from '../formats/verity.js';
import type { SigningKeys } from './signing.js';

export type ImageFormat = 'squashfs' | 'ddi';

export interface ContainerOptions {
  outDir: string;
  /** `<pname>_<version>`: the image is `<name>.raw`. */
  name: string;
  format: ImageFormat;
  verity: boolean;
  signing?: SigningKeys;
  /** The DPS architecture of a DDI's partition types. */
  architecture?: string;
}

export interface WrittenImage {
  /** The image portablectl is given: `<name>.raw`. */
  image: string;
  /** Every file written (sidecars, the SBOM), the image last. */
  outputs: string[];
  format: ImageFormat;
  /** Lowercase hex, when verity is on. */
  rootHash?: string;
  size: number;
  sha256: string;
  /** The superblock UUID and salt of the hash tree, when verity is on. */
  verityUuid?: string;
  veritySalt?: string;
}

/** systemd-repart's size for the signature partition; bigger when the JSON needs it. */
export const SIGNATURE_PARTITION_SIZE = 16 * 1024;
const DDI_FIRST_PARTITION = 1 << 20;
const CHUNK = 1 << 20;
const SIDECARS = ['.verity', '.roothash', '.roothash.p7s'] as const;

const align = (n: number, to: number) => Math.ceil(n / to) * to;

/** Temporary files next to their final names, renamed together. */
class Outputs {
  readonly #files: { tmp: string; final: string }[] = [];
  readonly #stamp = `${process.pid}-${Date.now()}`;

  constructor(readonly dir: string) {}

  /** A temporary path for `finalName` in the output folder; listed for commit and cleanup. */
  add(finalName: string): string {
    return this.addPath(path.join(this.dir, finalName));
  }

  /** A temporary path beside `final`, anywhere. Not named after it: a name may already take all 255 bytes. */
  addPath(final: string): string {
    const tmp = path.join(path.dirname(final), `.mkportable-${this.#stamp}-${this.#files.length}.tmp`);
    this.#files.push({ tmp, final });
    return tmp;
  }

  /** Take over an existing temporary file (the squashfs) as the output `finalName`. */
  adopt(tmp: string, finalName: string): void {
    this.#files.push({ tmp, final: path.join(this.dir, finalName) });
  }

  /** The final paths, `last` (the image) at the end: the order they are renamed in. */
  ordered(last: string): { tmp: string; final: string }[] {
    return [...this.#files.filter((f) => f.final !== last), ...this.#files.filter((f) => f.final === last)];
  }

  /** Rename every file into place, `last` (the image) last, after `beforeLast`; on failure none stays. */
  async commit(last: string, beforeLast: () => Promise<void>): Promise<void> {
    const done: string[] = [];
    try {
      for (const f of this.ordered(last)) {
        if (f.final === last) await beforeLast();
        await fs.rename(f.tmp, f.final);
        done.push(f.final);
      }
    } catch (e) {
      await Promise.all(done.map((f) => fs.rm(f, { force: true })));
      await this.discard();
      throw e;
    }
  }

  async discard(): Promise<void> {
    await Promise.all(this.#files.map((f) => fs.rm(f.tmp, { force: true })));
  }
}

/** Zero-pad the file to a whole number of 4 KiB blocks (mksquashfs and the native writer already do). */
async function padToBlock(file: string): Promise<number> {
  const { size } = await fs.stat(file);
  const padded = align(Math.max(size, 1), VERITY_BLOCK_SIZE);
  if (padded !== size) await fs.truncate(file, padded);
  return padded;
}

/** Call `each` with consecutive chunks of `size` bytes of `fh` from `offset`; the chunk is reused after `each` returns. */
async function stream(fh: FileHandle, offset: number, size: number, each: (chunk: Uint8Array, at: number) => Promise<void> | void): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, 1)));
  for (let at = 0; at < size; ) {
    const want = Math.min(buf.length, size - at);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await fh.read(buf, got, want - got, offset + at + got);
      if (bytesRead === 0) throw new Error(`the file ended ${size - at - got} bytes early`);
      got += bytesRead;
    }
    await each(buf.subarray(0, want), at);
    at += want;
  }
}

async function writeAll(fh: FileHandle, data: Uint8Array, at: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, at + done);
    done += bytesWritten;
  }
}

async function sha256Of(fh: FileHandle, size: number): Promise<Buffer> {
  const h = createHash('sha256');
  await stream(fh, 0, size, (c) => {
    h.update(c);
  });
  return h.digest();
}

interface Tree {
  rootHash: Buffer;
  salt: Uint8Array;
  uuid: Uint8Array;
  size: number;
}

/**
 * Hash the squashfs (already open as `data`) into a tree written by `put(offset in the hash area, bytes)`;
 * `copy` sees each chunk of the data too (the DDI writes it out on the way).
 */
async function buildTree(data: FileHandle, size: number, seed: Uint8Array, put: (at: number, b: Uint8Array) => Promise<void>,
  copy?: (chunk: Uint8Array, at: number) => Promise<void>): Promise<Tree> {
  const { salt, uuid } = deriveVerityIdentity(seed);
  const dataBlocks = size / VERITY_BLOCK_SIZE;
  const builder = new HashTreeBuilder({ dataBlocks, salt, sink: put });
  await put(0, encodeVeritySuperblock({
    version: 1, hashType: 1, uuid, algorithm: 'sha256', dataBlockSize: VERITY_BLOCK_SIZE, hashBlockSize: VERITY_BLOCK_SIZE, dataBlocks, salt,
  }));
  await stream(data, 0, size, async (chunk, at) => {
    if (copy) await copy(chunk, at);
    await builder.push(chunk);
  });
  const rootHash = Buffer.from(await builder.finish());
  return { rootHash, salt, uuid, size: builder.geometry.size };
}

function hmacUuid(seed: Uint8Array, what: string): string {
  return formatUuid(uuidV4From(createHmac('sha256', seed).update(what).digest()));
}

/** PKCS#7 (and its ASN.1 library, ~50 ms to load) is loaded by the builds that sign, not by every build. */
async function signatureBytes(rootHash: Buffer, signing: SigningKeys): Promise<Buffer> {
  const { signDetached } = await import('../formats/pkcs7.js');
  return Buffer.from(signDetached(Buffer.from(rootHash.toString('hex'), 'latin1'), signing.key, signing.certificate));
}

/** Remove `<name>.verity`, `.roothash`, `.roothash.p7s` left by an earlier build that this one did not write: systemd would pair them with the new image. */
async function removeStaleSidecars(dir: string, name: string, written: string[]): Promise<void> {
  for (const suffix of SIDECARS) {
    const p = path.join(dir, `${name}${suffix}`);
    if (!written.includes(p)) await fs.rm(p, { force: true });
  }
}

async function writeSidecars(squashfs: string, size: number, o: ContainerOptions, out: Outputs): Promise<Omit<WrittenImage, 'outputs' | 'image' | 'format' | 'size'>> {
  const data = await fs.open(squashfs, 'r');
  try {
    const seed = await sha256Of(data, size);
    if (!o.verity) return { sha256: seed.toString('hex') };
    const hashFile = await fs.open(out.add(`${o.name}.verity`), 'w');
    let tree: Tree;
    try {
      tree = await buildTree(data, size, seed, (at, b) => writeAll(hashFile, b, at));
    } finally {
      await hashFile.close();
    }
    const hex = tree.rootHash.toString('hex');
    await fs.writeFile(out.add(`${o.name}.roothash`), `${hex}\n`);
    if (o.signing) await fs.writeFile(out.add(`${o.name}.roothash.p7s`), await signatureBytes(tree.rootHash, o.signing));
    return { sha256: seed.toString('hex'), rootHash: hex, verityUuid: formatUuid(tree.uuid), veritySalt: Buffer.from(tree.salt).toString('hex') };
  } finally {
    await data.close();
  }
}

async function writeDdi(squashfs: string, size: number, o: ContainerOptions, out: Outputs): Promise<Omit<WrittenImage, 'outputs' | 'image' | 'format'>> {
  const arch = dpsArchitecture(o.architecture ?? '');
  if (!arch) throw new MkportableError('ARCHITECTURE_UNKNOWN', `no DPS partition types for architecture '${o.architecture}'`, 'architecture');
  const rootStart = DDI_FIRST_PARTITION;
  const verityStart = rootStart + size;
  const veritySize = o.verity ? treeGeometry(size / VERITY_BLOCK_SIZE).size : 0;
  const tmp = out.add(`${o.name}.raw`);
  const data = await fs.open(squashfs, 'r');
  const ddi = await fs.open(tmp, 'w+');
  try {
    let seed: Buffer;
    let tree: Tree | undefined;
    const copy = (chunk: Uint8Array, at: number) => writeAll(ddi, chunk, rootStart + at);
    if (o.verity) {
      seed = await sha256Of(data, size);
      tree = await buildTree(data, size, seed, (at, b) => writeAll(ddi, b, verityStart + at), copy);
    } else {
      const h = createHash('sha256');
      await stream(data, 0, size, async (chunk, at) => {
        h.update(chunk);
        await copy(chunk, at);
      });
      seed = h.digest();
    }

    const partitions: GptPartition[] = [];
    const part = (role: 'root' | 'verity' | 'verity-sig', start: number, bytes: number, uuid: string, attributes: bigint) => {
      partitions.push({
        type: role === 'root' ? arch.root : role === 'verity' ? arch.verity : arch.veritySig,
        uuid, firstLba: BigInt(start / SECTOR), lastLba: BigInt((start + bytes) / SECTOR - 1), attributes, name: dpsLabel(arch, role),
      });
    };
    const typeUuid = (a: DpsArchitecture, role: string) => hmacUuid(seed, `partition-uuid:${role}:${a.name}`);
    part('root', rootStart, size, tree ? guidFromBytes(tree.rootHash.subarray(0, 16)) : typeUuid(arch, 'root'), GPT_FLAG_READ_ONLY);
    let end = verityStart;
    if (tree) {
      part('verity', verityStart, veritySize, guidFromBytes(tree.rootHash.subarray(16, 32)), GPT_FLAG_READ_ONLY);
      end += veritySize;
      if (o.signing) {
        const sig = encodeSignaturePartition({
          rootHash: tree.rootHash.toString('hex'),
          certificateFingerprint: o.signing.fingerprint,
          signature: (await signatureBytes(tree.rootHash, o.signing)).toString('base64'),
        }, SIGNATURE_PARTITION_SIZE);
        await writeAll(ddi, sig, end);
        part('verity-sig', end, sig.length, typeUuid(arch, 'verity-sig'), 0n);
        end += sig.length;
      }
    }
    const total = align(end + 33 * SECTOR, VERITY_BLOCK_SIZE);
    const { head, tail } = encodeGpt({ diskGuid: hmacUuid(seed, 'disk-uuid'), sectors: BigInt(total / SECTOR), partitions });
    await ddi.truncate(total);
    await writeAll(ddi, head, 0);
    await writeAll(ddi, tail, total - tail.length);
    const sha256 = (await sha256Of(ddi, total)).toString('hex');
    return {
      sha256, size: total, rootHash: tree?.rootHash.toString('hex'),
      verityUuid: tree && formatUuid(tree.uuid), veritySalt: tree && Buffer.from(tree.salt).toString('hex'),
    };
  } finally {
    await Promise.all([data.close(), ddi.close()]);
  }
}

/** A file made from the squashfs and the final image's sha256 (an SBOM), written and renamed with the rest. */
export type Companion = (squashfs: string, image: { sha256: string }) => Promise<{ data: string | Uint8Array; file: string }>;

/**
 * Turn the finished squashfs `squashfs` (a temporary file in outDir; it is consumed) into the requested outputs
 * and rename them into place together.
 */
export async function writeContainer(squashfs: string, o: ContainerOptions, companion?: Companion): Promise<WrittenImage> {
  const out = new Outputs(o.outDir);
  try {
    const size = await padToBlock(squashfs);
    let facts: Omit<WrittenImage, 'outputs' | 'image' | 'format'>;
    let roothash: string | undefined;
    if (o.format === 'ddi') {
      // An unsigned DDI does not carry its root hash: systemd takes it from `<name>.roothash` beside the image and
      // finds the root and verity partitions by their UUIDs. Without it the root partition is mounted unverified.
      roothash = o.verity && !o.signing ? out.add(`${o.name}.roothash`) : undefined;
      facts = await writeDdi(squashfs, size, o, out);
      if (roothash) await fs.writeFile(roothash, `${facts.rootHash}\n`);
    } else {
      facts = { ...(await writeSidecars(squashfs, size, o, out)), size };
    }
    if (companion) {
      const c = await companion(squashfs, { sha256: facts.sha256 });
      await fs.writeFile(out.addPath(path.resolve(c.file)), c.data, { flag: 'wx' });
    }
    if (o.format === 'ddi') await fs.rm(squashfs, { force: true });
    else out.adopt(squashfs, `${o.name}.raw`);
    const image = path.join(o.outDir, `${o.name}.raw`);
    const outputs = out.ordered(image).map((f) => f.final);
    await out.commit(image, () => removeStaleSidecars(o.outDir, o.name, outputs));
    return { image, outputs, format: o.format, ...facts };
  } catch (e) {
    await out.discard();
    if (isMkportableError(e)) throw e;
    throw new MkportableError('OUTPUT_FAILED', `${path.join(o.outDir, `${o.name}.raw`)}: cannot write: ${systemReason(e)}`, o.outDir);
  }
}
