import type { ByteSource } from '../types.js';
import { Lru } from '../../lru.js';

/**
 * For compressed images with no independent pieces to seek to (a single xz
 * block, a single zstd frame): decode from the start, keep recently decoded
 * pages in a bounded cache, and restart from the beginning when a read goes
 * back past what the cache holds. Forward reads are a streaming decode; a
 * backward read beyond the cache costs a decode from the start.
 */
export type DecoderFactory = () => AsyncIterator<Uint8Array>;

const PAGE = 1024 * 1024;
const CACHE_BYTES = 64 * 1024 * 1024;

export class SequentialSource implements ByteSource {
  private readonly pages = new Lru<number, Buffer>(CACHE_BYTES);
  private decoder: AsyncIterator<Uint8Array> | null = null;
  /** Uncompressed position the decoder has reached. */
  private decoded = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private busy: Promise<unknown> = Promise.resolve();
  /** Decodes from the start so far; a number for tests and the description. */
  restarts = 0;

  constructor(
    private readonly inner: ByteSource,
    readonly size: number,
    private readonly openDecoder: DecoderFactory,
    readonly description: string,
    private readonly onCorrupt: (e: unknown, at: number) => Error,
  ) {}

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (position < 0 || position >= this.size || length <= 0) return 0;
    const total = Math.min(length, this.size - position);
    let done = 0;
    while (done < total) {
      const pos = position + done;
      const pageIndex = Math.floor(pos / PAGE);
      const page = await this.page(pageIndex);
      const inPage = pos - pageIndex * PAGE;
      const n = Math.min(total - done, page.length - inPage);
      if (n <= 0) throw this.onCorrupt(new Error('stream ended early'), pos);
      buffer.set(page.subarray(inPage, inPage + n), offset + done);
      done += n;
    }
    return total;
  }

  /** Reads are serialized: there is one decoder, and it only moves forward. */
  private page(index: number): Promise<Buffer> {
    const run = this.busy.then(() => this.pageNow(index));
    this.busy = run.catch(() => {});
    return run;
  }

  private async pageNow(index: number): Promise<Buffer> {
    const hit = this.pages.get(index);
    if (hit) return hit;
    const start = index * PAGE;
    if (!this.decoder || this.decoded - this.pendingBytes > start) await this.restart();
    for (;;) {
      // Pages are cut from the stream as they complete.
      while (this.pendingBytes >= PAGE || (this.decoded === this.size && this.pendingBytes > 0)) {
        const page = this.takePage();
        const pageIndex = Math.floor((this.decoded - this.pendingBytes - page.length) / PAGE);
        this.pages.set(pageIndex, page, page.length);
        if (pageIndex === index) return page;
      }
      if (this.decoded >= this.size) throw this.onCorrupt(new Error('page not produced'), start);
      let next: IteratorResult<Uint8Array>;
      try {
        next = await this.decoder!.next();
      } catch (e) {
        this.decoder = null;
        throw this.onCorrupt(e, this.decoded);
      }
      if (next.done) {
        this.decoder = null;
        throw this.onCorrupt(new Error(`stream ended after ${this.decoded} of ${this.size} bytes`), this.decoded);
      }
      const chunk = Buffer.from(next.value);
      const room = this.size - this.decoded;
      if (chunk.length > room) {
        this.decoder = null;
        throw this.onCorrupt(new Error(`stream decodes to more than its stated ${this.size} bytes`), this.size);
      }
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      this.decoded += chunk.length;
    }
  }

  private takePage(): Buffer {
    const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending);
    const n = Math.min(PAGE, all.length);
    const page = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.pending = rest.length ? [rest] : [];
    this.pendingBytes = rest.length;
    return page;
  }

  private async restart(): Promise<void> {
    await this.decoder?.return?.();
    this.decoder = this.openDecoder();
    this.decoded = 0;
    this.pending = [];
    this.pendingBytes = 0;
    this.restarts++;
  }

  async close(): Promise<void> {
    try {
      await this.decoder?.return?.();
    } catch {
      // Closing a half-read decoder is best effort.
    }
    this.decoder = null;
    this.pages.clear();
    await this.inner.close();
  }
}

/** Feed a source to a decoder as a web stream, 1 MiB at a time from `from` to `to`. */
export function sourceStream(source: ByteSource, from = 0, to = source.size): ReadableStream<Uint8Array> {
  let at = from;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (at >= to) {
        controller.close();
        return;
      }
      const n = Math.min(PAGE, to - at);
      const buf = Buffer.alloc(n);
      const got = await source.read(buf, 0, n, at);
      at += n;
      controller.enqueue(buf.subarray(0, got));
      if (got < n) controller.close();
    },
  });
}
