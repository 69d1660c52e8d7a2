/**
 * The one least-recently-used map every layer uses for its caches (inodes,
 * extent and indirect blocks, directory listings, FAT pages, cluster runs,
 * container tables and decoded chunks), bounded by a total weight so memory
 * stays bounded whatever the image holds. Weight is an entry count unless a
 * `weigh` function or an explicit weight says otherwise (bytes, usually).
 * The entry just added is always kept, even when it alone exceeds the budget.
 */
export class Lru<K, V> {
  private readonly entries = new Map<K, { value: V; weight: number }>();
  private total = 0;

  constructor(
    private readonly maxWeight: number,
    private readonly weigh: (value: V) => number = () => 1,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Get and mark as most recently used. */
  get(key: K): V | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    // Map keeps insertion order: re-inserting makes it the newest.
    this.entries.delete(key);
    this.entries.set(key, hit);
    return hit.value;
  }

  /** Look without changing the order. */
  peek(key: K): V | undefined {
    return this.entries.get(key)?.value;
  }

  set(key: K, value: V, weight = Math.max(1, this.weigh(value))): void {
    this.delete(key);
    this.entries.set(key, { value, weight });
    this.total += weight;
    while (this.total > this.maxWeight && this.entries.size > 1) this.evictOldest();
  }

  /**
   * Evict through one live iterator kept across calls: a fresh `for...of`
   * from the start on every set had to step over every slot deleted since the
   * Map last rehashed, which made filling a full cache quadratic (~20 ms of
   * listing a 10,000-entry directory). The iterator only ever yields live
   * entries, in insertion order; since it starts at the oldest entry and each
   * key it yields is evicted, it always points at the oldest.
   */
  private evictOldest(): void {
    let next = this.cursor?.next();
    if (!next || next.done) {
      this.cursor = this.entries.keys();
      next = this.cursor.next();
    }
    if (next.done) return;
    this.delete(next.value);
  }

  private cursor: Iterator<K> | null = null;

  delete(key: K): void {
    const old = this.entries.get(key);
    if (!old) return;
    this.entries.delete(key);
    this.total -= old.weight;
  }

  clear(): void {
    this.entries.clear();
    this.cursor = null;
    this.total = 0;
  }

  /**
   * Get `key`, or run `load` and cache what it returns (usually a promise, so
   * concurrent misses share one load). A failed load is forgotten, so a later
   * call retries and reports the error again.
   */
  getOrLoad(key: K, load: () => V, weight?: number): V {
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
