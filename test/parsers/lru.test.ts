/** The shared LRU against a plain reference model: same contents, same order, same total weight, through random use. */
import { describe, expect, it } from 'vitest';
import { Lru } from '../../parsers/lru.js';

/** Reference: an array oldest-first, evicting from the front, never the entry just added. */
class Model {
  items: { key: number; value: number; weight: number }[] = [];
  constructor(private readonly max: number) {}
  total(): number {
    return this.items.reduce((n, i) => n + i.weight, 0);
  }
  get(key: number): number | undefined {
    const i = this.items.findIndex((x) => x.key === key);
    if (i < 0) return undefined;
    const [item] = this.items.splice(i, 1);
    this.items.push(item);
    return item.value;
  }
  set(key: number, value: number, weight: number): void {
    this.delete(key);
    this.items.push({ key, value, weight });
    while (this.total() > this.max && this.items.length > 1) this.items.shift();
  }
  delete(key: number): void {
    this.items = this.items.filter((x) => x.key !== key);
  }
}

describe('Lru', () => {
  it('evicts least recently used first, keeps an oversized newest entry, survives clear()', () => {
    for (const max of [1, 5, 40, 300]) {
      const lru = new Lru<number, number>(max);
      const model = new Model(max);
      let x = max;
      const rnd = (n: number) => {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        return x % n;
      };
      for (let step = 0; step < 20_000; step++) {
        const key = rnd(60);
        const op = rnd(10);
        if (op < 4) {
          const weight = 1 + rnd(max < 5 ? 3 : 12);
          lru.set(key, step, weight);
          model.set(key, step, weight);
        } else if (op < 8) expect(lru.get(key)).toBe(model.get(key));
        else if (op < 9) {
          lru.delete(key);
          model.delete(key);
        } else if (rnd(200) === 0) {
          lru.clear();
          model.items = [];
        } else expect(lru.peek(key)).toBe(model.items.find((i) => i.key === key)?.value);
        expect(lru.size).toBe(model.items.length);
      }
      // Same contents in the same order: evicting everything but one goes oldest-first.
      for (const item of model.items) expect(lru.peek(item.key)).toBe(item.value);
    }
  });

  it('a full cache keeps exactly the newest entries', () => {
    const lru = new Lru<number, number>(10_000);
    for (let i = 0; i < 100_000; i++) lru.set(i, i);
    expect(lru.size).toBe(10_000);
    expect(lru.peek(99_999)).toBe(99_999);
    expect(lru.peek(90_000)).toBe(90_000);
    expect(lru.peek(89_999)).toBeUndefined();
  });
});
