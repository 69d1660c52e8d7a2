import type { ByteRange, ByteSource } from '../types.js';
import { Lru } from '../../lru.js';

/**
 * A compressed image cut into independently decodable chunks (gzip spans
 * between checkpoints, xz blocks, zstd frames, bzip2 blocks). Reads find the
 * chunk by binary search and decode it; decoded chunks live in a cache bounded
 * by bytes, so memory stays bounded whatever the image size.
 */
export interface ChunkIndex {
  /** Uncompressed size. */
  readonly size: number;
  readonly count: number;
  /** Uncompressed offset where chunk `i` starts; chunks are contiguous and ascending. */
  start(i: number): number;
  /** Decode chunk `i` to exactly start(i+1) - start(i) bytes (the last ends at size). */
  decode(i: number): Promise<Buffer>;
  /** Ranges known to hold non-zero data, when the index recorded them. */
  readonly allocated?: ByteRange[];
  close?(): Promise<void>;
}

const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

export class ChunkedSource implements ByteSource {
  readonly size: number;
  private readonly cache: Lru<number, Promise<Buffer>>;
  private closed = false;

  constructor(
    private readonly inner: ByteSource,
    /** Public for tests and diagnostics (an index may count its decodes). */
    readonly index: ChunkIndex,
    readonly description: string,
    cacheBytes = DEFAULT_CACHE_BYTES,
  ) {
    this.size = index.size;
    this.cache = new Lru(cacheBytes);
  }

  private chunkAt(pos: number): number {
    let lo = 0;
    let hi = this.index.count - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.index.start(mid) <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private chunkEnd(i: number): number {
    return i + 1 < this.index.count ? this.index.start(i + 1) : this.size;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (position < 0 || position >= this.size || length <= 0) return 0;
    const total = Math.min(length, this.size - position);
    let done = 0;
    while (done < total) {
      const pos = position + done;
      const i = this.chunkAt(pos);
      const start = this.index.start(i);
      const end = this.chunkEnd(i);
      const chunk = await this.cache.getOrLoad(i, () => this.index.decode(i), end - start);
      const n = Math.min(total - done, end - pos);
      buffer.set(chunk.subarray(pos - start, pos - start + n), offset + done);
      done += n;
    }
    return total;
  }

  async allocatedRanges(): Promise<ByteRange[]> {
    return this.index.allocated ?? [{ start: 0, length: this.size }];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cache.clear();
    try {
      await this.index.close?.();
    } finally {
      await this.inner.close();
    }
  }
}
