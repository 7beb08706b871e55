/**
 * Extended attributes: the xattr id table ({u64 ref, u32 count, u32 size} per id) points into the key/value table,
 * where each attribute is {u16 type, u16 name_size, name}{u32 value_size, value}; with type | XATTR_VALUE_OOL the
 * value is a u64 ref to a {u32 size, value} record elsewhere in the same table.
 *
 * Limits follow Linux: a name (with prefix) is at most 255 bytes, a value at most 65536 bytes, and the names of one
 * inode add up (with a NUL each) to at most 65536 bytes. An inode's distinct values may add up to XATTR_VALUES_MAX.
 */
import { METADATA_SIZE, XATTR_PREFIXES, XATTR_VALUE_OOL } from '../format.js';
import { corrupt, printable, unsupported } from './errors.js';
import { fromBytes } from '../../formats/bytenames.js';
import { AsyncCache } from './lru.js';
import { copyBytes, view } from './bytes.js';
import { MetadataCursor, type MetadataStore } from './metadata.js';
import type { Region, IndexedTable } from './superblock.js';
import { tableEntry } from './tables.js';

export const XATTR_NAME_MAX = 255;
export const XATTR_SIZE_MAX = 65536;
export const XATTR_LIST_MAX = 65536;
export const NO_XATTR = 0xffffffff;
/** More value bytes than this on one inode is refused as unsupported (no Linux filesystem gets close). */
export const XATTR_VALUES_MAX = 16 << 20;

export type Xattrs = Record<string, Uint8Array>;


export class XattrTable {
  readonly #store: MetadataStore;
  readonly #file: string;
  readonly #kv: Region;
  readonly #ids: IndexedTable;
  /** Decoded sets, at most 64 and 4 MiB of values. */
  readonly #cache = new AsyncCache<number, Xattrs>(64, 4 << 20, (set) => Object.values(set).reduce((n, v) => n + v.length + 64, 0));

  constructor(store: MetadataStore, file: string, table: { kv: Region; ids: IndexedTable }) {
    this.#store = store;
    this.#file = file;
    this.#kv = table.kv;
    this.#ids = table.ids;
  }

  get count(): number {
    return this.#ids.count;
  }

  /** The attributes of xattr id `index`; a fresh record each call (the values are shared: do not modify). */
  async get(index: number): Promise<Xattrs> {
    const set = await this.#cache.get(index, () => this.#load(index));
    return { ...set };
  }

  #cursor(ref: bigint, what: string, at: number): MetadataCursor {
    const block = ref >> 16n;
    const offset = Number(ref & 0xffffn);
    if (ref >> 48n !== 0n || block >= BigInt(this.#kv.end - this.#kv.start) || offset >= METADATA_SIZE) {
      throw corrupt(this.#file, `${what} reference 0x${ref.toString(16)} points outside the xattr value table`, at);
    }
    return new MetadataCursor(this.#store, this.#file, this.#kv, Number(block), offset, 'xattr value table');
  }

  async #load(index: number): Promise<Xattrs> {
    const file = this.#file;
    const e = view(await tableEntry(this.#store, file, this.#ids, index));
    const ref = e.getBigUint64(0, true); // xattr (kv ref)
    const count = e.getUint32(8, true); // count
    const at = this.#ids.blocks[Math.floor((index * this.#ids.entrySize) / METADATA_SIZE)];
    if (count === 0) throw corrupt(file, `xattr id ${index} has no attributes`, at);
    const cur = this.#cursor(ref, `xattr id ${index}`, at);
    const out: Xattrs = Object.create(null);
    const ool = new Map<bigint, Uint8Array>();
    let listSize = 0;
    let valueBytes = 0;
    const budget = (n: number, pos: number) => {
      valueBytes += n;
      if (valueBytes > XATTR_VALUES_MAX) throw unsupported(file, `xattr values of id ${index} exceed ${XATTR_VALUES_MAX} bytes (at offset ${pos})`);
    };
    for (let i = 0; i < count; i++) {
      const pos = cur.position;
      const head = view(await cur.read(4));
      const type = head.getUint16(0, true); // type
      const nameSize = head.getUint16(2, true); // name_size
      const prefix = XATTR_PREFIXES[type & ~XATTR_VALUE_OOL];
      if ((type & ~(XATTR_VALUE_OOL | 0xff)) !== 0 || prefix === undefined) {
        throw corrupt(file, `xattr ${i} of id ${index} has unknown type 0x${type.toString(16)}`, pos);
      }
      if (nameSize === 0 || prefix.length + nameSize > XATTR_NAME_MAX) {
        throw corrupt(file, `xattr ${i} of id ${index} has invalid name length ${nameSize}`, pos);
      }
      const nameBytes = await cur.read(nameSize);
      if (nameBytes.includes(0)) throw corrupt(file, `xattr ${i} of id ${index} has a NUL in its name`, pos);
      const name = prefix + fromBytes(nameBytes);
      const shown = printable(name);
      listSize += prefix.length + nameSize + 1;
      if (listSize > XATTR_LIST_MAX) throw corrupt(file, `xattr names of id ${index} exceed ${XATTR_LIST_MAX} bytes`, pos);
      if (name in out) throw corrupt(file, `xattr id ${index} has ${shown} twice`, pos);
      const valueSize = view(await cur.read(4)).getUint32(0, true); // vsize
      let value: Uint8Array;
      if (type & XATTR_VALUE_OOL) {
        if (valueSize !== 8) throw corrupt(file, `out-of-line xattr ${shown} has value size ${valueSize}, expected 8`, pos);
        const vref = view(await cur.read(8)).getBigUint64(0, true);
        let v = ool.get(vref);
        if (!v) {
          v = await this.#readValue(this.#cursor(vref, `xattr ${shown} value`, pos), shown);
          budget(v.length, pos);
          ool.set(vref, v);
        }
        value = v;
      } else {
        if (valueSize > XATTR_SIZE_MAX) throw corrupt(file, `xattr ${shown} value size ${valueSize} exceeds ${XATTR_SIZE_MAX}`, pos);
        budget(valueSize, pos);
        value = copyBytes(await cur.read(valueSize));
      }
      out[name] = value;
    }
    return out;
  }

  async #readValue(cur: MetadataCursor, name: string): Promise<Uint8Array> {
    const pos = cur.position;
    const size = view(await cur.read(4)).getUint32(0, true);
    if (size > XATTR_SIZE_MAX) throw corrupt(this.#file, `xattr ${name} value size ${size} exceeds ${XATTR_SIZE_MAX}`, pos);
    return copyBytes(await cur.read(size));
  }
}
