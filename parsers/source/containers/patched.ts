import type { ByteSource } from '../types.js';

/**
 * An inner source seen through in-memory writes (a VHDX log replayed in RAM):
 * the file is never written. Later writes win: a zeroed range drops the pages
 * written before it, and a page written after a zeroed range is kept as a page.
 */
export class PatchedSource implements ByteSource {
  readonly size: number;
  readonly description: string;
  private readonly pages = new Map<number, Buffer>();
  private readonly zeroRanges: { start: number; end: number }[] = [];

  constructor(
    private readonly inner: ByteSource,
    size: number,
    private readonly pageSize: number,
  ) {
    this.size = Math.max(size, inner.size);
    this.description = inner.description;
  }

  /** Record a write of whole pages (`data.length` a multiple of the page size, offset aligned). */
  writePage(offset: number, data: Buffer): void {
    this.pages.set(offset / this.pageSize, data);
  }

  writeZeros(offset: number, length: number): void {
    const first = offset / this.pageSize;
    const last = (offset + length) / this.pageSize;
    for (const key of [...this.pages.keys()]) if (key >= first && key < last) this.pages.delete(key);
    this.zeroRanges.push({ start: offset, end: offset + length });
  }

  get patchCount(): number {
    return this.pages.size + this.zeroRanges.length;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (position >= this.size || length <= 0) return 0;
    const total = Math.min(length, this.size - position);
    // Inner bytes first (zeros past its end), then the patches on top.
    const fromInner = Math.max(0, Math.min(total, this.inner.size - position));
    let got = fromInner > 0 ? await this.inner.read(buffer, offset, fromInner, position) : 0;
    if (got < total) buffer.fill(0, offset + got, offset + total);
    got = total;
    const end = position + total;
    for (const z of this.zeroRanges) {
      const s = Math.max(z.start, position);
      const e = Math.min(z.end, end);
      if (e > s) buffer.fill(0, offset + s - position, offset + e - position);
    }
    const firstPage = Math.floor(position / this.pageSize);
    const lastPage = Math.floor((end - 1) / this.pageSize);
    if (this.pages.size > 0) {
      for (let p = firstPage; p <= lastPage; p++) {
        const page = this.pages.get(p);
        if (!page) continue;
        const pageStart = p * this.pageSize;
        const s = Math.max(pageStart, position);
        const e = Math.min(pageStart + page.length, end);
        if (e > s) buffer.set(page.subarray(s - pageStart, e - pageStart), offset + s - position);
      }
    }
    return got;
  }

  async close(): Promise<void> {
    this.pages.clear();
    await this.inner.close();
  }
}
