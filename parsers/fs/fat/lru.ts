/**
 * A small least-recently-used map with a cost budget, for caches that must stay
 * bounded (directory listings, cluster runs, FAT pages).
 */
export class LruCache<K, V> {
  private readonly entries = new Map<K, { value: V; cost: number }>();
  private totalCost = 0;

  constructor(private readonly budget: number) {}

  get(key: K): V | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    this.entries.delete(key);
    this.entries.set(key, hit);
    return hit.value;
  }

  set(key: K, value: V, cost = 1): void {
    this.delete(key);
    this.entries.set(key, { value, cost });
    this.totalCost += cost;
    // Evict oldest first, but always keep the entry just added.
    for (const [k, e] of this.entries) {
      if (this.totalCost <= this.budget || k === key) break;
      this.entries.delete(k);
      this.totalCost -= e.cost;
    }
  }

  delete(key: K): void {
    const old = this.entries.get(key);
    if (!old) return;
    this.entries.delete(key);
    this.totalCost -= old.cost;
  }

  clear(): void {
    this.entries.clear();
    this.totalCost = 0;
  }
}
