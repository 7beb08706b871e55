/**
 * Bounded caches. Every cache in the reader has a cap on entries and, where entries vary in size (directory
 * listings, xattr sets), on their total weight, so a hostile image cannot make the reader hoard memory.
 */
export class Lru<K, V> {
  readonly #maxEntries: number;
  readonly #maxWeight: number;
  readonly #weigh: (v: V) => number;
  readonly #map = new Map<K, { value: V; weight: number }>();
  #weight = 0;

  constructor(maxEntries: number, maxWeight = Infinity, weigh: (v: V) => number = () => 1) {
    this.#maxEntries = Math.max(1, maxEntries);
    this.#maxWeight = maxWeight;
    this.#weigh = weigh;
  }

  get(key: K): V | undefined {
    const e = this.#map.get(key);
    if (!e) return undefined;
    this.#map.delete(key);
    this.#map.set(key, e);
    return e.value;
  }

  /** Insert as most recently used; an entry heavier than the whole budget is simply not kept. */
  set(key: K, value: V): void {
    this.delete(key);
    const weight = this.#weigh(value);
    this.#map.set(key, { value, weight });
    this.#weight += weight;
    while (this.#map.size > this.#maxEntries || this.#weight > this.#maxWeight) {
      const oldest = this.#map.keys().next().value as K;
      this.delete(oldest);
    }
  }

  delete(key: K): void {
    const e = this.#map.get(key);
    if (!e) return;
    this.#map.delete(key);
    this.#weight -= e.weight;
  }

  get size(): number {
    return this.#map.size;
  }

  get weight(): number {
    return this.#weight;
  }
}

/**
 * An Lru of loaded values that also shares a load in progress between concurrent callers. Failed loads are not
 * cached.
 */
export class AsyncCache<K, V> {
  readonly #lru: Lru<K, V>;
  readonly #pending = new Map<K, Promise<V>>();

  constructor(maxEntries: number, maxWeight = Infinity, weigh: (v: V) => number = () => 1) {
    this.#lru = new Lru(maxEntries, maxWeight, weigh);
  }

  get(key: K, load: () => Promise<V>): Promise<V> {
    const hit = this.#lru.get(key);
    if (hit !== undefined) return Promise.resolve(hit);
    const pending = this.#pending.get(key);
    if (pending) return pending;
    const p = load()
      .then((v) => {
        this.#lru.set(key, v);
        return v;
      })
      .finally(() => this.#pending.delete(key));
    this.#pending.set(key, p);
    return p;
  }

  get size(): number {
    return this.#lru.size;
  }
}
