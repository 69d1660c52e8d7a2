/**
 * A compressed image presented as a ByteSource without random access: reads
 * are served by running the decompressor forwards. A read behind the stream
 * position that is not in the recent-block cache restarts decompression from
 * the beginning. Restore reads in ascending order, so its copy is one pass;
 * planning (partition table, allocation bitmaps) costs at most a few more,
 * counted in `passes`. Memory is bounded by the cache.
 */
import type { ByteSource } from '../parsers/source/types.js';
import { decompress, recordedSize, type Compression, type Decompression } from './compression.js';

const BLOCK = 1024 * 1024;
const CACHE_BLOCKS = 64;

class BlockStream {
  /** Index of the next block this stream yields. */
  nextIndex = 0;
  private readonly iterator: AsyncIterator<Buffer>;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private done = false;

  constructor(private readonly decompression: Decompression) {
    this.iterator = decompression.chunks[Symbol.asyncIterator]();
  }

  /** The next 1 MiB block (shorter at the end), or null past the end. */
  async next(): Promise<Buffer | null> {
    while (this.pendingBytes < BLOCK && !this.done) {
      const r = await this.iterator.next();
      if (r.done) this.done = true;
      else if (r.value.length) {
        this.pending.push(r.value);
        this.pendingBytes += r.value.length;
      }
    }
    if (this.pendingBytes === 0) return null;
    const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    const block = Buffer.from(all.subarray(0, Math.min(BLOCK, all.length)));
    const rest = all.subarray(block.length);
    this.pending = rest.length ? [rest] : [];
    this.pendingBytes = rest.length;
    this.nextIndex++;
    return block;
  }

  stop(): void {
    this.decompression.stop();
  }
}

export class StreamedImageSource implements ByteSource {
  size: number;
  readonly description: string;
  /** Decompression passes started so far (1 for a single sequential read). */
  passes = 0;
  private stream: BlockStream | null = null;
  private readonly cache = new Map<number, Buffer>();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly path: string,
    readonly compression: Compression,
    size: number,
  ) {
    this.size = size;
    this.description = `${compression}-compressed image ${path} (streamed)`;
  }

  /**
   * Open a compressed image. Its decompressed size comes from `knownSize` (a
   * block map states it), from the format's own records, or else from one
   * counting pass, whose last blocks stay cached (the backup GPT lives there).
   */
  static async open(path: string, compression: Compression, knownSize?: number, onSizePass?: () => void): Promise<StreamedImageSource> {
    const recorded = knownSize ?? recordedSize(path, compression);
    const source = new StreamedImageSource(path, compression, recorded ?? Number.MAX_SAFE_INTEGER);
    if (recorded === null) {
      onSizePass?.();
      source.size = await source.measure();
    }
    return source;
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    // One stream position: reads run one at a time, in the order issued.
    const run = this.queue.then(() => this.readNow(buffer, offset, length, position));
    this.queue = run.catch(() => {});
    return run;
  }

  private async readNow(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (position >= this.size || length <= 0) return 0;
    const want = Math.min(length, this.size - position);
    let done = 0;
    while (done < want) {
      const pos = position + done;
      const index = Math.floor(pos / BLOCK);
      const block = await this.block(index);
      const inBlock = pos - index * BLOCK;
      const n = Math.min(want - done, block.length - inBlock);
      if (n <= 0) break;
      buffer.set(block.subarray(inBlock, inBlock + n), offset + done);
      done += n;
    }
    return done;
  }

  private async block(index: number): Promise<Buffer> {
    const hit = this.cache.get(index);
    if (hit) {
      this.cache.delete(index);
      this.cache.set(index, hit);
      return hit;
    }
    if (!this.stream || this.stream.nextIndex > index) this.restart();
    const stream = this.stream!;
    while (stream.nextIndex <= index) {
      const i = stream.nextIndex;
      const block = await stream.next();
      if (!block) return Buffer.alloc(0);
      this.remember(i, block);
      if (i === index) return block;
    }
    return Buffer.alloc(0);
  }

  private remember(index: number, block: Buffer): void {
    this.cache.set(index, block);
    if (this.cache.size > CACHE_BLOCKS) this.cache.delete(this.cache.keys().next().value as number);
  }

  private restart(): void {
    this.stream?.stop();
    this.stream = new BlockStream(decompress(this.path, this.compression));
    this.passes++;
  }

  private async measure(): Promise<number> {
    this.restart();
    const stream = this.stream!;
    let total = 0;
    for (;;) {
      const i = stream.nextIndex;
      const block = await stream.next();
      if (!block) break;
      this.remember(i, block);
      total += block.length;
    }
    return total;
  }

  async close(): Promise<void> {
    this.stream?.stop();
    this.stream = null;
    this.cache.clear();
  }
}
