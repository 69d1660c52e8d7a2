/**
 * Arithmetic on sets of byte ranges. A "range list" here is always sorted by
 * start, with no overlaps and no two ranges touching (touching ones are
 * merged); every function returns lists in that form.
 */
import type { ByteRange } from '../parsers/source/types.js';

export type { ByteRange };

export function rangeEnd(r: ByteRange): number {
  return r.start + r.length;
}

/** Sort, drop empty ranges, merge overlapping and touching ones. */
export function normalize(ranges: readonly ByteRange[]): ByteRange[] {
  const sorted = ranges.filter((r) => r.length > 0).sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= rangeEnd(last)) {
      const end = Math.max(rangeEnd(last), rangeEnd(r));
      last.length = end - last.start;
    } else {
      out.push({ start: r.start, length: r.length });
    }
  }
  return out;
}

export function union(...lists: readonly ByteRange[][]): ByteRange[] {
  return normalize(lists.flat());
}

/** The parts of [0, total) not covered by `ranges`. */
export function complement(ranges: readonly ByteRange[], total: number): ByteRange[] {
  const out: ByteRange[] = [];
  let pos = 0;
  for (const r of normalize(ranges)) {
    if (r.start >= total) break;
    if (r.start > pos) out.push({ start: pos, length: r.start - pos });
    pos = Math.max(pos, rangeEnd(r));
  }
  if (pos < total) out.push({ start: pos, length: total - pos });
  return out;
}

export function intersect(a: readonly ByteRange[], b: readonly ByteRange[]): ByteRange[] {
  const x = normalize(a);
  const y = normalize(b);
  const out: ByteRange[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    const start = Math.max(x[i].start, y[j].start);
    const end = Math.min(rangeEnd(x[i]), rangeEnd(y[j]));
    if (end > start) out.push({ start, length: end - start });
    if (rangeEnd(x[i]) < rangeEnd(y[j])) i++;
    else j++;
  }
  return normalize(out);
}

export function subtract(a: readonly ByteRange[], b: readonly ByteRange[]): ByteRange[] {
  const end = Math.max(0, ...a.map(rangeEnd), ...b.map(rangeEnd));
  return intersect(a, complement(b, end));
}

/** Keep only what lies inside [start, end). */
export function clip(ranges: readonly ByteRange[], start: number, end: number): ByteRange[] {
  return intersect(ranges, [{ start, length: Math.max(0, end - start) }]);
}

export function totalLength(ranges: readonly ByteRange[]): number {
  let n = 0;
  for (const r of ranges) n += r.length;
  return n;
}

/** Shift every range by `delta` bytes (volume-relative to image-relative). */
export function shift(ranges: readonly ByteRange[], delta: number): ByteRange[] {
  return ranges.map((r) => ({ start: r.start + delta, length: r.length }));
}

/**
 * Merge ranges separated by gaps of at most `maxGap` bytes: one larger write
 * costs less than two small ones plus a seek, and the gap bytes come from the
 * image, so writing them is harmless.
 */
export function closeGaps(ranges: readonly ByteRange[], maxGap: number): ByteRange[] {
  const out: ByteRange[] = [];
  for (const r of normalize(ranges)) {
    const last = out[out.length - 1];
    if (last && r.start - rangeEnd(last) <= maxGap) last.length = rangeEnd(r) - last.start;
    else out.push({ ...r });
  }
  return out;
}

/** Grow every range outwards to multiples of `align`, cut at `limit`. */
export function alignOut(ranges: readonly ByteRange[], align: number, limit: number): ByteRange[] {
  return normalize(
    ranges.map((r) => {
      const start = Math.floor(r.start / align) * align;
      const end = Math.min(limit, Math.ceil(rangeEnd(r) / align) * align);
      return { start, length: Math.max(0, end - start) };
    }),
  );
}

export function contains(ranges: readonly ByteRange[], position: number): boolean {
  return ranges.some((r) => position >= r.start && position < rangeEnd(r));
}
