import { readPreferSync } from './prefer-sync.js';
import type { ByteRange, ByteSource } from './types.js';

/**
 * Page cache for small metadata reads (inodes, directory blocks, FAT sectors,
 * MFT records). Reads smaller than a page are served from aligned pages kept
 * in a bounded LRU; large reads go straight through, so file data never churns
 * the cache and big reads stay big. Concurrent misses on one page share one read.
 * Metadata reads are synchronous while the image answers from the page cache
 * (see prefer-sync.ts).
 */
export class CachedSource implements ByteSource {
  readonly size: number;
  readonly description: string;
  private readonly pages = new Map<number, Promise<Buffer>>();

  constructor(
    private readonly inner: ByteSource,
    private readonly pageSize = 64 * 1024,
    private readonly maxPages = 256,
  ) {
    this.size = inner.size;
    this.description = inner.description;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (position >= this.size || length <= 0) return 0;
    length = Math.min(length, this.size - position);
    if (length >= this.pageSize) return readPreferSync(this.inner, buffer, offset, length, position);
    let done = 0;
    while (done < length) {
      const pos = position + done;
      const pageIndex = Math.floor(pos / this.pageSize);
      const page = await this.page(pageIndex);
      const inPage = pos - pageIndex * this.pageSize;
      const n = Math.min(length - done, page.length - inPage);
      if (n <= 0) break;
      page.copy(buffer as Buffer, offset + done, inPage, inPage + n);
      done += n;
    }
    return done;
  }

  private page(index: number): Promise<Buffer> {
    const hit = this.pages.get(index);
    if (hit) {
      // Refresh LRU position.
      this.pages.delete(index);
      this.pages.set(index, hit);
      return hit;
    }
    const start = index * this.pageSize;
    const len = Math.min(this.pageSize, this.size - start);
    const p = (async () => {
      const buf = Buffer.allocUnsafe(len);
      const n = await readPreferSync(this.inner, buf, 0, len, start);
      return n === len ? buf : buf.subarray(0, n);
    })();
    // A failed read must not stay cached.
    p.catch(() => this.pages.delete(index));
    this.pages.set(index, p);
    if (this.pages.size > this.maxPages) {
      const oldest = this.pages.keys().next().value as number;
      this.pages.delete(oldest);
    }
    return p;
  }

  allocatedRanges(): Promise<ByteRange[]> {
    return this.inner.allocatedRanges ? this.inner.allocatedRanges() : Promise.resolve([{ start: 0, length: this.size }]);
  }

  async close(): Promise<void> {
    this.pages.clear();
  }
}
