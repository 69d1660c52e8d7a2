import type { ByteRange } from '../../source/types.js';

/**
 * Collects byte ranges and returns them sorted and merged (touching or
 * overlapping ranges become one). Adding in ascending order, as a FAT or bitmap
 * scan does, merges as it goes so memory stays proportional to the gaps.
 * Ranges are cut at `limit` (the volume's size): a truncated image holds
 * nothing past its end to copy.
 */
export class RangeCollector {
  private ranges: ByteRange[] = [];
  private sorted = true;

  constructor(private readonly limit = Infinity) {}

  add(start: number, length: number): void {
    if (start >= this.limit) return;
    if (length > this.limit - start) length = this.limit - start;
    if (length <= 0) return;
    const last = this.ranges[this.ranges.length - 1];
    if (last && start >= last.start && start <= last.start + last.length) {
      last.length = Math.max(last.length, start + length - last.start);
      return;
    }
    if (last && start < last.start) this.sorted = false;
    this.ranges.push({ start, length });
  }

  result(): ByteRange[] {
    if (this.sorted) return this.ranges;
    const input = [...this.ranges].sort((a, b) => a.start - b.start);
    const out: ByteRange[] = [];
    for (const r of input) {
      const last = out[out.length - 1];
      if (last && r.start <= last.start + last.length) last.length = Math.max(last.length, r.start + r.length - last.start);
      else out.push({ ...r });
    }
    return out;
  }
}
