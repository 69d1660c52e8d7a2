/**
 * Serialized directory listings, keyed by the image file's signature, so a
 * listing is only built once per image state: images never change under a
 * signature, and a changed file gets a new one. Bounded by total bytes; the
 * least recently used listings go first.
 */
export class ListingCache {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}

  static key(signature: string, path: string, all: boolean): string {
    return `${signature}\0${path}\0${all ? 1 : 0}`;
  }

  get(key: string): Buffer | undefined {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    return hit;
  }

  set(key: string, body: Buffer): void {
    if (body.length > this.maxBytes / 4) return; // one giant folder must not flush everything else
    const old = this.entries.get(key);
    if (old) this.bytes -= old.length;
    this.entries.set(key, body);
    this.bytes += body.length;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.length;
    }
  }
}
