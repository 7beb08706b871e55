/**
 * dm-verity hash trees, format ("hash type") 1 as `veritysetup format` writes them by default: sha256, 4096-byte
 * data and hash blocks, a superblock in the first hash block, then the tree with its top level first and the level
 * over the data blocks last. Each digest is sha256(salt ‖ block); a hash block holds 128 digests, zero-filled.
 *
 * The builder takes the data once, front to back, and keeps one hash block per level in memory, so a tree over an
 * image of any size costs a few KiB. The checker reads data and tree the same way.
 */
import { createHash, createHmac } from 'node:crypto';

export const VERITY_MAGIC = 'verity\0\0';
export const VERITY_SUPERBLOCK_SIZE = 512;
export const VERITY_BLOCK_SIZE = 4096;
const DIGEST_SIZE = 32;
const SALT_MAX = 256;

export interface VeritySuperblock {
  version: number;
  /** 1: salt before the block (the Chrome OS format 0 puts it after). */
  hashType: number;
  /** The 16 raw bytes of the superblock UUID. */
  uuid: Uint8Array;
  algorithm: string;
  dataBlockSize: number;
  hashBlockSize: number;
  dataBlocks: number;
  salt: Uint8Array;
}

/** The superblock padded with zeros to a whole hash block, as it sits at offset 0 of the hash file. */
export function encodeVeritySuperblock(sb: VeritySuperblock): Uint8Array {
  if (sb.salt.length > SALT_MAX) throw new RangeError(`verity salt of ${sb.salt.length} bytes: at most ${SALT_MAX}`);
  if (sb.uuid.length !== 16) throw new RangeError('verity UUID must be 16 bytes');
  const out = new Uint8Array(sb.hashBlockSize);
  const v = new DataView(out.buffer);
  out.set(Buffer.from(VERITY_MAGIC, 'latin1'), 0);
  v.setUint32(8, sb.version, true);
  v.setUint32(12, sb.hashType, true);
  out.set(sb.uuid, 16);
  out.set(Buffer.from(sb.algorithm, 'latin1').subarray(0, 31), 32);
  v.setUint32(64, sb.dataBlockSize, true);
  v.setUint32(68, sb.hashBlockSize, true);
  v.setBigUint64(72, BigInt(sb.dataBlocks), true);
  v.setUint16(80, sb.salt.length, true);
  out.set(sb.salt, 88);
  return out;
}

/** Parse a superblock; a string says what is wrong with it. */
export function parseVeritySuperblock(buf: Uint8Array): VeritySuperblock | string {
  if (buf.length < VERITY_SUPERBLOCK_SIZE) return `only ${buf.length} bytes, a superblock has ${VERITY_SUPERBLOCK_SIZE}`;
  if (Buffer.from(buf.subarray(0, 8)).toString('latin1') !== VERITY_MAGIC) return 'no "verity" superblock at offset 0';
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const version = v.getUint32(8, true);
  if (version !== 1) return `superblock version ${version}, only 1 exists`;
  const saltSize = v.getUint16(80, true);
  if (saltSize > SALT_MAX) return `salt size ${saltSize} is over ${SALT_MAX}`;
  const algEnd = buf.subarray(32, 64).indexOf(0);
  const dataBlocks = v.getBigUint64(72, true);
  if (dataBlocks > BigInt(Number.MAX_SAFE_INTEGER)) return `${dataBlocks} data blocks is not a plausible size`;
  const sb: VeritySuperblock = {
    version,
    hashType: v.getUint32(12, true),
    uuid: buf.slice(16, 32),
    algorithm: Buffer.from(buf.subarray(32, algEnd < 0 ? 64 : 32 + algEnd)).toString('latin1'),
    dataBlockSize: v.getUint32(64, true),
    hashBlockSize: v.getUint32(68, true),
    dataBlocks: Number(dataBlocks),
    salt: buf.slice(88, 88 + saltSize),
  };
  const pow2 = (n: number) => n >= 512 && n <= 1 << 20 && (n & (n - 1)) === 0;
  if (!pow2(sb.dataBlockSize) || !pow2(sb.hashBlockSize)) return `block sizes ${sb.dataBlockSize}/${sb.hashBlockSize} are not powers of two from 512 to 1 MiB`;
  return sb;
}

export interface TreeLevel {
  /** Byte offset of the level's first block in the hash file. */
  offset: number;
  blocks: number;
}

export interface TreeGeometry {
  dataBlocks: number;
  /** levels[0] hashes the data blocks; the last one is the top, whose digest is the root hash. Empty for one data block. */
  levels: TreeLevel[];
  /** Bytes of the hash file: superblock block plus every level. */
  size: number;
  digestsPerBlock: number;
}

/** Where each level goes, as cryptsetup lays it out: the superblock's block, then the top level down to level 0. */
export function treeGeometry(dataBlocks: number, hashBlockSize = VERITY_BLOCK_SIZE): TreeGeometry {
  if (!Number.isSafeInteger(dataBlocks) || dataBlocks < 1) throw new RangeError(`a verity tree needs at least one data block, got ${dataBlocks}`);
  let bits = 0;
  while ((2 << bits) * DIGEST_SIZE <= hashBlockSize) bits++;
  const perBlock = 2 ** bits;
  const counts: number[] = [];
  for (let n = dataBlocks; n > 1; ) {
    n = Math.ceil(n / perBlock);
    counts.push(n);
  }
  const levels: TreeLevel[] = new Array(counts.length);
  let pos = hashBlockSize; // the superblock's block
  for (let i = counts.length - 1; i >= 0; i--) {
    levels[i] = { offset: pos, blocks: counts[i] };
    pos += counts[i] * hashBlockSize;
  }
  return { dataBlocks, levels, size: pos, digestsPerBlock: perBlock };
}

/** Receives each finished hash block with its offset in the hash file. */
export type HashBlockSink = (offset: number, block: Uint8Array) => void | Promise<void>;

/**
 * Builds a tree from the data blocks pushed in order. Memory: one hash block per level.
 * `push` accepts any chunking; the total must be exactly dataBlocks × dataBlockSize.
 */
export class HashTreeBuilder {
  readonly geometry: TreeGeometry;
  readonly #salted: ReturnType<typeof createHash>;
  readonly #blockSize: number;
  readonly #hashBlockSize: number;
  readonly #sink: HashBlockSink;
  /** Per level: the block being filled, how many digests it holds, how many blocks were emitted. */
  readonly #open: { block: Uint8Array; fill: number; emitted: number }[];
  #partial: Uint8Array;
  #partialFill = 0;
  #blocksSeen = 0;
  #root: Uint8Array | undefined;

  constructor(opts: { dataBlocks: number; salt: Uint8Array; sink: HashBlockSink; dataBlockSize?: number; hashBlockSize?: number }) {
    this.#blockSize = opts.dataBlockSize ?? VERITY_BLOCK_SIZE;
    this.#hashBlockSize = opts.hashBlockSize ?? VERITY_BLOCK_SIZE;
    this.geometry = treeGeometry(opts.dataBlocks, this.#hashBlockSize);
    this.#salted = createHash('sha256').update(opts.salt);
    this.#sink = opts.sink;
    this.#open = this.geometry.levels.map(() => ({ block: new Uint8Array(this.#hashBlockSize), fill: 0, emitted: 0 }));
    this.#partial = new Uint8Array(this.#blockSize);
  }

  #digest(block: Uint8Array): Uint8Array {
    return this.#salted.copy().update(block).digest();
  }

  /** Put a digest into `level`; full blocks go to the sink and their digest one level up. */
  async #add(level: number, digest: Uint8Array): Promise<void> {
    if (level === this.#open.length) {
      this.#root = digest;
      return;
    }
    const o = this.#open[level];
    o.block.set(digest, o.fill * DIGEST_SIZE);
    o.fill++;
    if (o.fill === this.geometry.digestsPerBlock) await this.#emit(level);
  }

  async #emit(level: number): Promise<void> {
    const o = this.#open[level];
    const lv = this.geometry.levels[level];
    await this.#sink(lv.offset + o.emitted * this.#hashBlockSize, o.block);
    o.emitted++;
    const digest = this.#digest(o.block);
    o.block = new Uint8Array(this.#hashBlockSize);
    o.fill = 0;
    await this.#add(level + 1, digest);
  }

  async #dataBlock(block: Uint8Array): Promise<void> {
    if (this.#blocksSeen === this.geometry.dataBlocks) throw new RangeError(`more than the ${this.geometry.dataBlocks} data blocks announced`);
    this.#blocksSeen++;
    await this.#add(0, this.#digest(block));
  }

  async push(chunk: Uint8Array): Promise<void> {
    let i = 0;
    const bs = this.#blockSize;
    if (this.#partialFill > 0) {
      const take = Math.min(bs - this.#partialFill, chunk.length);
      this.#partial.set(chunk.subarray(0, take), this.#partialFill);
      this.#partialFill += take;
      i = take;
      if (this.#partialFill < bs) return;
      await this.#dataBlock(this.#partial);
      this.#partialFill = 0;
    }
    for (; i + bs <= chunk.length; i += bs) await this.#dataBlock(chunk.subarray(i, i + bs));
    if (i < chunk.length) {
      this.#partial.set(chunk.subarray(i), 0);
      this.#partialFill = chunk.length - i;
    }
  }

  /** Flush the partial blocks of every level, bottom up; returns the root hash. */
  async finish(): Promise<Uint8Array> {
    if (this.#partialFill !== 0) throw new RangeError(`data ends ${this.#partialFill} bytes into a block: pad it to ${this.#blockSize}`);
    if (this.#blocksSeen !== this.geometry.dataBlocks) throw new RangeError(`got ${this.#blocksSeen} data blocks, ${this.geometry.dataBlocks} announced`);
    for (let level = 0; level < this.#open.length; level++) {
      if (this.#open[level].fill > 0) await this.#emit(level);
    }
    return this.#root!;
  }
}

/**
 * Salt and superblock UUID from a seed (mkportable uses the sha256 of the data), so the same image always gets
 * the same tree: salt = HMAC-SHA256(seed, "verity-salt"), UUID = the first 16 bytes of HMAC-SHA256(seed,
 * "verity-uuid") with the RFC 4122 version 4 and variant bits set, as systemd-repart derives them from its seed.
 */
export function deriveVerityIdentity(seed: Uint8Array): { salt: Uint8Array; uuid: Uint8Array } {
  const salt = createHmac('sha256', seed).update('verity-salt').digest();
  const uuid = uuidV4From(createHmac('sha256', seed).update('verity-uuid').digest());
  return { salt: new Uint8Array(salt), uuid };
}

/** The first 16 bytes of `bytes` made into a version 4, RFC 4122 variant UUID (raw bytes, string order). */
export function uuidV4From(bytes: Uint8Array): Uint8Array {
  const u = new Uint8Array(bytes.subarray(0, 16));
  u[6] = (u[6] & 0x0f) | 0x40;
  u[8] = (u[8] & 0x3f) | 0x80;
  return u;
}

export function formatUuid(raw: Uint8Array): string {
  const h = Buffer.from(raw).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export type ReadAt = (offset: number, length: number) => Promise<Uint8Array>;

export interface TreeCheck {
  /** The digest of the stored top block (of data block 0 for a one-block image): what the root hash must be. */
  storedRoot: Uint8Array;
  /** Data blocks whose digest is not the one stored in the tree (the first few), and how many there are. */
  badDataBlocks: number[];
  badDataCount: number;
  /** Stored hash blocks whose digest is not the one stored one level up, as [level, index]. */
  badHashBlocks: [number, number][];
}

const MAX_LISTED = 8;

/**
 * Check every data block against the stored tree and every stored hash block against its parent, as the kernel
 * will: with no mismatch and storedRoot equal to the root hash, every read succeeds. One pass over the data. A
 * hash block that does not match its parent is blamed, not its children (nor the data under it).
 */
export async function checkTree(sb: VeritySuperblock, readData: ReadAt, readHash: ReadAt, chunkBlocks = 256): Promise<TreeCheck> {
  const geometry = treeGeometry(sb.dataBlocks, sb.hashBlockSize);
  const levels = geometry.levels;
  const hbs = sb.hashBlockSize;
  const salted = createHash('sha256').update(sb.salt);
  const digest = (b: Uint8Array) => salted.copy().update(b).digest();
  const result: TreeCheck = { storedRoot: new Uint8Array(), badDataBlocks: [], badDataCount: 0, badHashBlocks: [] };

  // Top down, so that a bad block is blamed, not the children that no longer match it.
  const bad = levels.map(() => new Set<number>());
  const perBlock = geometry.digestsPerBlock;
  const underBad = (level: number, index: number): boolean => {
    for (let l = level, i = index; l < levels.length; l++, i = Math.floor(i / perBlock)) if (bad[l].has(i)) return true;
    return false;
  };
  for (let level = levels.length - 1; level >= 0; level--) {
    const top = level === levels.length - 1;
    let parent: Uint8Array | undefined;
    let parentIndex = -1;
    for (let index = 0; index < levels[level].blocks; index++) {
      const d = digest(await readHash(levels[level].offset + index * hbs, hbs));
      if (top) {
        result.storedRoot = d;
        continue;
      }
      const pi = Math.floor(index / perBlock);
      if (underBad(level + 1, pi)) continue;
      if (pi !== parentIndex) {
        parent = await readHash(levels[level + 1].offset + pi * hbs, hbs);
        parentIndex = pi;
      }
      const at = (index % perBlock) * DIGEST_SIZE;
      if (!d.equals(parent!.subarray(at, at + DIGEST_SIZE))) {
        bad[level].add(index);
        result.badHashBlocks.push([level, index]);
      }
    }
  }
  result.badHashBlocks.sort((a, b) => b[0] - a[0] || a[1] - b[1]);

  const bs = sb.dataBlockSize;
  let level0: Uint8Array | undefined;
  let level0Index = -1;
  for (let first = 0; first < sb.dataBlocks; first += chunkBlocks) {
    const n = Math.min(chunkBlocks, sb.dataBlocks - first);
    const chunk = await readData(first * bs, n * bs);
    for (let k = 0; k < n; k++) {
      const d = digest(chunk.subarray(k * bs, (k + 1) * bs));
      if (levels.length === 0) {
        result.storedRoot = d;
        continue;
      }
      const block = first + k;
      const index = Math.floor(block / perBlock);
      if (underBad(0, index)) continue;
      if (index !== level0Index) {
        level0 = await readHash(levels[0].offset + index * hbs, hbs);
        level0Index = index;
      }
      const at = (block % perBlock) * DIGEST_SIZE;
      if (!d.equals(level0!.subarray(at, at + DIGEST_SIZE))) {
        if (result.badDataBlocks.length < MAX_LISTED) result.badDataBlocks.push(block);
        result.badDataCount++;
      }
    }
  }
  return result;
}
