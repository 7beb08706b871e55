/**
 * GUID partition tables (UEFI 2.x, chapter 5) with 512-byte sectors: a protective MBR in LBA 0, the header in LBA 1,
 * 128 entries of 128 bytes from LBA 2, and the backup entries and header at the end of the disk. The serializer
 * makes both copies from a list of partitions; the parser reads the primary copy back and says what is wrong.
 */

export const SECTOR = 512;
export const GPT_ENTRIES = 128;
export const GPT_ENTRY_SIZE = 128;
const HEADER_SIZE = 92;
const ENTRIES_SECTORS = (GPT_ENTRIES * GPT_ENTRY_SIZE) / SECTOR; // 32
const SIGNATURE = 'EFI PART';
const REVISION = 0x00010000;

/** GPT partition attribute bits (UEFI: 0–2; the DPS spec adds 59–63 for its partition types). */
export const GPT_FLAG_REQUIRED = 1n << 0n;
export const GPT_FLAG_GROWFS = 1n << 59n;
export const GPT_FLAG_READ_ONLY = 1n << 60n;
export const GPT_FLAG_NO_AUTO = 1n << 63n;

// CRC-32 (IEEE 802.3, reflected, as zlib and UEFI use it): Node 20's zlib has no crc32.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** A GUID as a lowercase string "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
export type Guid = string;

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** On disk the first three fields are little-endian, the last two big-endian ("mixed-endian"). */
export function encodeGuid(guid: Guid): Uint8Array {
  if (!GUID_RE.test(guid)) throw new RangeError(`not a GUID: ${guid}`);
  const h = Buffer.from(guid.replace(/-/g, ''), 'hex');
  const out = new Uint8Array(16);
  out.set([h[3], h[2], h[1], h[0], h[5], h[4], h[7], h[6]], 0);
  out.set(h.subarray(8), 8);
  return out;
}

export function decodeGuid(b: Uint8Array): Guid {
  const s = Buffer.from([b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], ...b.subarray(8, 16)]).toString('hex');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

/** 16 raw bytes in string order (e.g. half a root hash) as a GUID string. */
export function guidFromBytes(b: Uint8Array): Guid {
  const s = Buffer.from(b.subarray(0, 16)).toString('hex');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

export interface GptPartition {
  type: Guid;
  uuid: Guid;
  firstLba: bigint;
  /** Inclusive. */
  lastLba: bigint;
  attributes: bigint;
  /** At most 36 UTF-16 code units. */
  name: string;
}

export interface GptDisk {
  diskGuid: Guid;
  /** Disk size in sectors. */
  sectors: bigint;
  partitions: GptPartition[];
}

/** First LBA a partition may use, and the last, on a disk of `sectors` sectors. */
export function usableRange(sectors: bigint): { first: bigint; last: bigint } {
  return { first: 2n + BigInt(ENTRIES_SECTORS), last: sectors - 2n - BigInt(ENTRIES_SECTORS) };
}

function encodeEntries(partitions: GptPartition[]): Uint8Array {
  if (partitions.length > GPT_ENTRIES) throw new RangeError(`${partitions.length} partitions: a GPT holds ${GPT_ENTRIES}`);
  const out = new Uint8Array(GPT_ENTRIES * GPT_ENTRY_SIZE);
  const v = new DataView(out.buffer);
  partitions.forEach((p, i) => {
    const at = i * GPT_ENTRY_SIZE;
    out.set(encodeGuid(p.type), at);
    out.set(encodeGuid(p.uuid), at + 16);
    v.setBigUint64(at + 32, p.firstLba, true);
    v.setBigUint64(at + 40, p.lastLba, true);
    v.setBigUint64(at + 48, p.attributes, true);
    if (p.name.length > 36) throw new RangeError(`partition name '${p.name}' is longer than 36 characters`);
    for (let k = 0; k < p.name.length; k++) v.setUint16(at + 56 + 2 * k, p.name.charCodeAt(k), true);
  });
  return out;
}

function encodeHeader(disk: GptDisk, entriesCrc: number, backup: boolean): Uint8Array {
  const h = new Uint8Array(SECTOR);
  const v = new DataView(h.buffer);
  const last = disk.sectors - 1n;
  const { first, last: lastUsable } = usableRange(disk.sectors);
  h.set(Buffer.from(SIGNATURE, 'latin1'), 0);
  v.setUint32(8, REVISION, true);
  v.setUint32(12, HEADER_SIZE, true);
  v.setBigUint64(24, backup ? last : 1n, true);
  v.setBigUint64(32, backup ? 1n : last, true);
  v.setBigUint64(40, first, true);
  v.setBigUint64(48, lastUsable, true);
  h.set(encodeGuid(disk.diskGuid), 56);
  v.setBigUint64(72, backup ? last - BigInt(ENTRIES_SECTORS) : 2n, true);
  v.setUint32(80, GPT_ENTRIES, true);
  v.setUint32(84, GPT_ENTRY_SIZE, true);
  v.setUint32(88, entriesCrc, true);
  v.setUint32(16, crc32(h.subarray(0, HEADER_SIZE)), true);
  return h;
}

/** The protective MBR: one partition of type 0xEE covering the disk from LBA 1 (capped at 2^32 − 1 sectors). */
function encodeProtectiveMbr(sectors: bigint): Uint8Array {
  const m = new Uint8Array(SECTOR);
  const v = new DataView(m.buffer);
  const at = 446;
  m.set([0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff], at);
  v.setUint32(at + 8, 1, true);
  const size = sectors - 1n;
  v.setUint32(at + 12, size > 0xffffffffn ? 0xffffffff : Number(size), true);
  m[510] = 0x55;
  m[511] = 0xaa;
  return m;
}

/** Bytes 0 … 34 × 512 of the disk (MBR, header, entries) and the last 33 sectors (entries, backup header). */
export function encodeGpt(disk: GptDisk): { head: Uint8Array; tail: Uint8Array } {
  const { first, last } = usableRange(disk.sectors);
  const sorted = [...disk.partitions].sort((a, b) => (a.firstLba < b.firstLba ? -1 : 1));
  for (let i = 0; i < sorted.length; i++) {
    const p = sorted[i];
    if (p.firstLba < first || p.lastLba > last || p.lastLba < p.firstLba) throw new RangeError(`partition '${p.name}' (${p.firstLba}–${p.lastLba}) is outside the usable sectors ${first}–${last}`);
    if (i > 0 && p.firstLba <= sorted[i - 1].lastLba) throw new RangeError(`partitions '${sorted[i - 1].name}' and '${p.name}' overlap`);
  }
  const entries = encodeEntries(disk.partitions);
  const crc = crc32(entries);
  const head = new Uint8Array(Number(first) * SECTOR);
  head.set(encodeProtectiveMbr(disk.sectors), 0);
  head.set(encodeHeader(disk, crc, false), SECTOR);
  head.set(entries, 2 * SECTOR);
  const tail = new Uint8Array((ENTRIES_SECTORS + 1) * SECTOR);
  tail.set(entries, 0);
  tail.set(encodeHeader(disk, crc, true), ENTRIES_SECTORS * SECTOR);
  return { head, tail };
}

export interface ParsedGpt {
  diskGuid: Guid;
  partitions: (GptPartition & { index: number })[];
  /** Everything found wrong, one sentence each; the partitions are still read from the primary table if possible. */
  problems: string[];
}

export type ReadAt = (offset: number, length: number) => Promise<Uint8Array>;

/** Does this disk start with a GPT (a protective MBR and "EFI PART" in LBA 1)? */
export function looksLikeGpt(first1024: Uint8Array): boolean {
  return first1024.length >= 2 * SECTOR && first1024[510] === 0x55 && first1024[511] === 0xaa
    && Buffer.from(first1024.subarray(SECTOR, SECTOR + 8)).toString('latin1') === SIGNATURE;
}

function parseHeader(h: Uint8Array, where: string, problems: string[]) {
  const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
  if (Buffer.from(h.subarray(0, 8)).toString('latin1') !== SIGNATURE) {
    problems.push(`${where}: no "EFI PART" signature`);
    return undefined;
  }
  const size = v.getUint32(12, true);
  if (size < HEADER_SIZE || size > SECTOR) {
    problems.push(`${where}: header size ${size} is invalid`);
    return undefined;
  }
  const copy = new Uint8Array(h.subarray(0, size));
  new DataView(copy.buffer).setUint32(16, 0, true);
  if (crc32(copy) !== v.getUint32(16, true)) problems.push(`${where}: header CRC32 does not match`);
  return {
    myLba: v.getBigUint64(24, true),
    alternateLba: v.getBigUint64(32, true),
    firstUsable: v.getBigUint64(40, true),
    lastUsable: v.getBigUint64(48, true),
    diskGuid: decodeGuid(h.subarray(56, 72)),
    entriesLba: v.getBigUint64(72, true),
    count: v.getUint32(80, true),
    entrySize: v.getUint32(84, true),
    entriesCrc: v.getUint32(88, true),
  };
}

function parseEntries(buf: Uint8Array, count: number, entrySize: number): (GptPartition & { index: number })[] {
  const out: (GptPartition & { index: number })[] = [];
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = 0; i < count; i++) {
    const at = i * entrySize;
    const type = decodeGuid(buf.subarray(at, at + 16));
    if (type === '00000000-0000-0000-0000-000000000000') continue;
    let name = '';
    for (let k = 0; k < 36; k++) {
      const c = v.getUint16(at + 56 + 2 * k, true);
      if (c === 0) break;
      name += String.fromCharCode(c);
    }
    out.push({
      index: i + 1, type, uuid: decodeGuid(buf.subarray(at + 16, at + 32)),
      firstLba: v.getBigUint64(at + 32, true), lastLba: v.getBigUint64(at + 40, true),
      attributes: v.getBigUint64(at + 48, true), name,
    });
  }
  return out;
}

/** Read the GPT of a disk of `size` bytes: primary header and entries, checked against the backup copy. */
export async function parseGpt(read: ReadAt, size: number): Promise<ParsedGpt> {
  const problems: string[] = [];
  const sectors = BigInt(Math.floor(size / SECTOR));
  const head = await read(0, 2 * SECTOR);
  if (head[510] !== 0x55 || head[511] !== 0xaa || !head.subarray(446, 510).some((b, i) => i % 16 === 4 && b === 0xee)) {
    problems.push('LBA 0 holds no protective MBR (a partition of type 0xEE)');
  }
  const h = parseHeader(head.subarray(SECTOR), 'primary GPT header', problems);
  if (!h) return { diskGuid: '', partitions: [], problems };
  if (h.myLba !== 1n) problems.push(`primary GPT header says it is at LBA ${h.myLba}, not 1`);
  if (h.entrySize < GPT_ENTRY_SIZE || h.entrySize % 8 !== 0 || h.count > 4096 || h.count * h.entrySize > 1 << 20) {
    problems.push(`primary GPT header: ${h.count} entries of ${h.entrySize} bytes is not a table to read`);
    return { diskGuid: h.diskGuid, partitions: [], problems };
  }
  const entryBytes = h.count * h.entrySize;
  if (Number(h.entriesLba) * SECTOR + entryBytes > size) {
    problems.push('primary GPT entries extend past the end of the disk');
    return { diskGuid: h.diskGuid, partitions: [], problems };
  }
  const entries = await read(Number(h.entriesLba) * SECTOR, entryBytes);
  if (crc32(entries) !== h.entriesCrc) problems.push('primary GPT entries: CRC32 does not match');
  if (h.alternateLba !== sectors - 1n) problems.push(`backup GPT header should be at the last LBA ${sectors - 1n}, the header says ${h.alternateLba}`);
  else {
    const b = parseHeader(await read(Number(h.alternateLba) * SECTOR, SECTOR), 'backup GPT header', problems);
    if (b) {
      const backupEntries = Number(b.entriesLba) * SECTOR + entryBytes <= size ? await read(Number(b.entriesLba) * SECTOR, entryBytes) : undefined;
      if (!backupEntries || !Buffer.from(backupEntries).equals(entries)) problems.push('backup GPT entries differ from the primary ones');
      if (b.diskGuid !== h.diskGuid) problems.push('backup GPT header names another disk GUID');
    }
  }
  const partitions = parseEntries(entries, h.count, h.entrySize);
  for (const p of partitions) {
    if (p.firstLba < h.firstUsable || p.lastLba > h.lastUsable || p.lastLba < p.firstLba) {
      problems.push(`partition ${p.index} ('${p.name}') spans LBA ${p.firstLba}–${p.lastLba}, outside the usable ${h.firstUsable}–${h.lastUsable}`);
    }
  }
  return { diskGuid: h.diskGuid, partitions, problems };
}
