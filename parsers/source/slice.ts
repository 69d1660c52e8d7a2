import type { ByteRange, ByteSource } from './types.js';

/**
 * A window onto another source: a partition seen from its first byte. Reads
 * past the window's end are cut short, so a filesystem parser cannot wander
 * into the next partition. Closing a slice does not close its parent.
 */
export class SliceSource implements ByteSource {
  readonly size: number;
  readonly description: string;

  constructor(
    readonly parent: ByteSource,
    /** Byte offset of the slice within the parent. */
    readonly start: number,
    size: number,
    name: string,
  ) {
    // A table may claim more than the image holds (truncated image): clamp.
    const available = Math.max(0, parent.size - start);
    this.size = Math.max(0, Math.min(size, available));
    this.description = `${name} (bytes ${start}..${start + this.size} of ${parent.description})`;
    const parentSync = parent.readSync;
    if (parentSync) {
      this.readSync = (buffer, offset, length, position) => {
        if (position < 0 || position >= this.size || length <= 0) return 0;
        return parentSync(buffer, offset, Math.min(length, this.size - position), this.start + position);
      };
    }
  }

  /** Present only when the parent reads synchronously too. */
  readonly readSync?: (buffer: Uint8Array, offset: number, length: number, position: number) => number;

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (position < 0 || position >= this.size || length <= 0) return 0;
    const want = Math.min(length, this.size - position);
    return this.parent.read(buffer, offset, want, this.start + position);
  }

  async allocatedRanges(): Promise<ByteRange[]> {
    if (!this.parent.allocatedRanges) return [{ start: 0, length: this.size }];
    const end = this.start + this.size;
    const out: ByteRange[] = [];
    for (const r of await this.parent.allocatedRanges()) {
      const s = Math.max(r.start, this.start);
      const e = Math.min(r.start + r.length, end);
      if (e > s) out.push({ start: s - this.start, length: e - s });
    }
    return out;
  }

  async close(): Promise<void> {
    // The parent owns the file handle.
  }
}
