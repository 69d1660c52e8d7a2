/**
 * A bounded memo of promises, least recently used out first. Paths inside a
 * mounted image always resolve the same way (the image does not change while
 * mounted), so resolutions are shared and kept; a failed one is forgotten
 * unless the caller says the failure is permanent.
 */
export class PromiseCache<V> {
  private readonly map = new Map<string, Promise<V>>();

  constructor(private readonly capacity: number) {}

  get(key: string, compute: () => Promise<V>, keepFailure: (e: unknown) => boolean = () => false): Promise<V> {
    const hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
      return hit;
    }
    const p = compute();
    this.set(key, p);
    p.catch((e) => {
      if (!keepFailure(e) && this.map.get(key) === p) this.map.delete(key);
    });
    return p;
  }

  /** Remember a value found another way (a directory listing already holds its children's metadata). */
  set(key: string, value: Promise<V>): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as string);
  }
}
