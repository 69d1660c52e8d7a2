/**
 * A small LRU map bounded by a total weight (bytes of decoded data, or an
 * entry count when every weight is 1). Values are usually promises, so
 * concurrent misses on one key share one decode.
 */
export class LruCache<K, V> {
  private readonly entries = new Map<K, { value: V; weight: number }>();
  private total = 0;

  constructor(private readonly maxWeight: number) {}

  get(key: K): V | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    this.entries.delete(key);
    this.entries.set(key, hit);
    return hit.value;
  }

  set(key: K, value: V, weight = 1): void {
    const old = this.entries.get(key);
    if (old) {
      this.total -= old.weight;
      this.entries.delete(key);
    }
    this.entries.set(key, { value, weight });
    this.total += weight;
    while (this.total > this.maxWeight && this.entries.size > 1) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [K, { value: V; weight: number }];
      this.entries.delete(oldestKey);
      this.total -= oldest.weight;
    }
  }

  delete(key: K): void {
    const old = this.entries.get(key);
    if (!old) return;
    this.total -= old.weight;
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.total = 0;
  }

  /**
   * Get `key`, or run `load` and cache what it returns (a promise). A failed
   * load is forgotten, so a later read retries and reports the error again.
   */
  getOrLoad(key: K, load: () => V, weight = 1): V {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const value = load();
    Promise.resolve(value).catch(() => {
      if (this.entries.get(key)?.value === value) this.delete(key);
    });
    this.set(key, value, weight);
    return value;
  }
}
