/**
 * A small least-recently-used map, bounded by a total weight (entry count by
 * default). Used for inodes, parsed extent/indirect blocks and directory name
 * maps so memory stays bounded whatever the image holds.
 */
export class Lru<K, V> {
  private readonly map = new Map<K, { value: V; weight: number }>();
  private total = 0;

  constructor(
    private readonly maxWeight: number,
    private readonly weigh: (value: V) => number = () => 1,
  ) {}

  get(key: K): V | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    // Re-insert to mark as most recently used (Map keeps insertion order).
    this.map.delete(key);
    this.map.set(key, hit);
    return hit.value;
  }

  set(key: K, value: V): void {
    const weight = Math.max(1, this.weigh(value));
    const old = this.map.get(key);
    if (old) {
      this.total -= old.weight;
      this.map.delete(key);
    }
    // Something heavier than the whole budget is simply not kept.
    if (weight > this.maxWeight) return;
    this.map.set(key, { value, weight });
    this.total += weight;
    while (this.total > this.maxWeight) {
      const oldestKey = this.map.keys().next().value as K;
      const oldest = this.map.get(oldestKey)!;
      this.map.delete(oldestKey);
      this.total -= oldest.weight;
    }
  }

  clear(): void {
    this.map.clear();
    this.total = 0;
  }
}
