import type { ByteRange, ByteSource } from '../types.js';
import { clipRanges, normalizeRanges } from './ranges.js';

/**
 * What a sparse container's tables say about the virtual bytes starting at a
 * position. `length` (at least 1) says how far the answer holds; a map may stop
 * early, e.g. at the end of a cluster.
 */
export type Extent =
  /** Reads as zeros (unallocated without a parent, or an explicit zero cluster). */
  | { kind: 'zero'; length: number }
  /** Comes from the parent/backing image, or zeros when there is none. */
  | { kind: 'backing'; length: number }
  /** Stored as is at `offset` of `source` (the container file, or an extent file). */
  | { kind: 'data'; length: number; source: ByteSource; offset: number }
  /** Part of a decoded chunk (a compressed cluster or grain), starting `skip` bytes into it. */
  | { kind: 'chunk'; length: number; skip: number; load: () => Promise<Buffer> };

export interface MappedSourceOptions {
  size: number;
  description: string;
  /** Look up the extent holding virtual byte `position` (0 <= position < size). */
  extentAt(position: number): Promise<Extent>;
  /** The parent image, for 'backing' extents. */
  backing?: ByteSource;
  /** Virtual ranges this layer itself holds data for (the backing's are added). */
  ownAllocated(): Promise<ByteRange[]>;
  /** Release the container's own resources (inner source, extent files); the backing is closed here. */
  closeOwn(): Promise<void>;
}

/** Longest run handed down as one read: big reads stay big, but memory per read stays bounded. */
const MAX_COALESCED = 8 * 1024 * 1024;

/**
 * The common read path of the sparse containers (qcow2, VHD, VHDX, VMDK, VDI):
 * each supplies only a function from a virtual position to an extent. Runs of
 * extents stored back to back in the same file are merged into one read.
 */
export class MappedSource implements ByteSource {
  readonly size: number;
  readonly description: string;
  private closed = false;

  constructor(private readonly options: MappedSourceOptions) {
    this.size = options.size;
    this.description = options.description;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (position < 0 || position >= this.size || length <= 0) return 0;
    const total = Math.min(length, this.size - position);
    let done = 0;
    while (done < total) {
      const pos = position + done;
      const extent = await this.options.extentAt(pos);
      let n = Math.min(Math.max(1, Math.floor(extent.length)), total - done);
      switch (extent.kind) {
        case 'zero':
          n = await this.extend(extent, pos, n, total - done);
          buffer.fill(0, offset + done, offset + done + n);
          break;
        case 'backing':
          n = await this.extend(extent, pos, n, total - done);
          await this.readBacking(buffer, offset + done, n, pos);
          break;
        case 'data': {
          n = await this.extend(extent, pos, n, total - done);
          const got = await extent.source.read(buffer, offset + done, n, extent.offset);
          // Data past the end of a truncated file reads as zeros, like qemu does.
          if (got < n) buffer.fill(0, offset + done + got, offset + done + n);
          break;
        }
        case 'chunk': {
          const chunk = await extent.load();
          const avail = Math.max(0, Math.min(n, chunk.length - extent.skip));
          buffer.set(chunk.subarray(extent.skip, extent.skip + avail), offset + done);
          if (avail < n) buffer.fill(0, offset + done + avail, offset + done + n);
          break;
        }
      }
      done += n;
    }
    return total;
  }

  /**
   * Grow a run over the following extents while they continue it: same kind,
   * and for stored data the same file at the next offset. `n` covers the first
   * extent (or reaches `limit`).
   */
  private async extend(first: Extent, pos: number, n: number, limit: number): Promise<number> {
    let end = n;
    while (end < limit && end < MAX_COALESCED) {
      const next = await this.options.extentAt(pos + end);
      if (next.kind !== first.kind) break;
      if (next.kind === 'data' && first.kind === 'data' && (next.source !== first.source || next.offset !== first.offset + end)) break;
      end += Math.min(Math.max(1, Math.floor(next.length)), limit - end);
    }
    return end;
  }

  private async readBacking(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    const backing = this.options.backing;
    let got = 0;
    if (backing && position < backing.size) {
      got = await backing.read(buffer, offset, Math.min(length, backing.size - position), position);
    }
    // A parent smaller than its child reads as zeros past its end.
    if (got < length) buffer.fill(0, offset + got, offset + length);
  }

  async allocatedRanges(): Promise<ByteRange[]> {
    const own = await this.options.ownAllocated();
    const backing = this.options.backing;
    if (!backing) return normalizeRanges(clipRanges(own, this.size));
    const fromBacking = backing.allocatedRanges
      ? await backing.allocatedRanges()
      : [{ start: 0, length: backing.size }];
    // Over-reporting is safe (restore copies a few zeros); under-reporting would lose data.
    return normalizeRanges(clipRanges([...own, ...fromBacking], this.size));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.options.closeOwn();
    } finally {
      await this.options.backing?.close();
    }
  }
}
