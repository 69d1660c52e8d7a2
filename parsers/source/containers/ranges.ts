import type { ByteRange } from '../types.js';

/** Sort, drop empty ranges and merge overlapping or touching ones. */
export function normalizeRanges(ranges: Iterable<ByteRange>): ByteRange[] {
  const sorted = [...ranges].filter((r) => r.length > 0).sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.start + last.length) {
      last.length = Math.max(last.length, r.start + r.length - last.start);
    } else {
      out.push({ start: r.start, length: r.length });
    }
  }
  return out;
}

/** Cut ranges to [0, size). */
export function clipRanges(ranges: Iterable<ByteRange>, size: number): ByteRange[] {
  const out: ByteRange[] = [];
  for (const r of ranges) {
    const start = Math.max(0, r.start);
    const end = Math.min(size, r.start + r.length);
    if (end > start) out.push({ start, length: end - start });
  }
  return out;
}

/**
 * Collects ranges in ascending order, merging as it goes, so walking a table
 * of a million clusters yields a short list instead of a million entries.
 */
export class RangeCollector {
  private readonly ranges: ByteRange[] = [];

  add(start: number, length: number): void {
    if (length <= 0) return;
    const last = this.ranges[this.ranges.length - 1];
    if (last && start <= last.start + last.length && start >= last.start) {
      last.length = Math.max(last.length, start + length - last.start);
    } else {
      this.ranges.push({ start, length });
    }
  }

  result(): ByteRange[] {
    return normalizeRanges(this.ranges);
  }
}
