import type { ByteSource } from './types.js';

/**
 * A source over bytes already in memory. Not for images (those are read with
 * positional reads, never loaded whole): for small structures, tests and the
 * fuzzer, which mutates copies of sample metadata without touching the files.
 */
export class MemorySource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly bytes: Uint8Array,
    readonly description = 'memory buffer',
  ) {
    this.size = bytes.length;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (position >= this.size || length <= 0) return 0;
    const n = Math.min(length, this.size - position);
    buffer.set(this.bytes.subarray(position, position + n), offset);
    return n;
  }

  async close(): Promise<void> {}
}
