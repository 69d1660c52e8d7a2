import { describe, expect, it } from 'vitest';
import { alignOut, closeGaps, complement, intersect, normalize, subtract, totalLength } from '../../restore/ranges.js';

const r = (start: number, length: number) => ({ start, length });

describe('range lists', () => {
  it('normalize sorts, merges overlapping and touching ranges, drops empty ones', () => {
    expect(normalize([r(10, 5), r(0, 3), r(3, 2), r(12, 10), r(40, 0)])).toEqual([r(0, 5), r(10, 12)]);
  });
  it('complement, intersect and subtract agree with each other', () => {
    const a = [r(0, 10), r(20, 10), r(50, 5)];
    const b = [r(5, 20), r(52, 100)];
    expect(complement(a, 60)).toEqual([r(10, 10), r(30, 20), r(55, 5)]);
    expect(intersect(a, b)).toEqual([r(5, 5), r(20, 5), r(52, 3)]);
    expect(subtract(a, b)).toEqual([r(0, 5), r(25, 5), r(50, 2)]);
    expect(totalLength(intersect(a, b)) + totalLength(subtract(a, b))).toBe(totalLength(a));
  });
  it('closeGaps merges only gaps up to the limit; alignOut grows to block edges and stops at the limit', () => {
    expect(closeGaps([r(0, 10), r(14, 2), r(30, 1)], 4)).toEqual([r(0, 16), r(30, 1)]);
    expect(alignOut([r(5, 10), r(4100, 1)], 4096, 5000)).toEqual([r(0, 5000)]);
    expect(alignOut([r(8192, 1)], 4096, 100000)).toEqual([r(8192, 4096)]);
  });
});
