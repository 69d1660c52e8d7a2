/** isoTime's own formatter (1970..9999) gives exactly what Date#toISOString gives, and the builtin takes over outside it. */
import { describe, expect, it } from 'vitest';
import { isoTime } from '../../parsers/vfs/index.js';

const builtin = (ns: bigint) => new Date(Math.max(-8.64e15, Math.min(8.64e15, Number(ns / 1_000_000n)))).toISOString();

describe('isoTime', () => {
  it('matches toISOString across 1970..9999, leap days and boundaries', () => {
    const samples: bigint[] = [0n, 1n, 999_999n, 1_000_000n, 86_399_999_999_999n, 86_400_000_000_000n];
    // Every day boundary around leap years 1972, 2000 (leap), 2100 (not leap), 2400 (leap).
    for (const year of [1972, 2000, 2100, 2400, 9999]) {
      const start = Date.UTC(year, 1, 27);
      for (let d = 0; d < 4; d++) for (const off of [0, 1, 86_399_999]) samples.push(BigInt(start + d * 86_400_000 + off) * 1_000_000n + 456_789n);
    }
    let x = 12345;
    for (let i = 0; i < 20_000; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      samples.push(BigInt(Math.floor((x / 2 ** 31) * 253_402_300_799_999)) * 1_000_000n + BigInt(x % 1_000_000));
    }
    samples.push(253_402_300_799_999_999_999n, 253_402_300_800_000_000_000n, -1n, -1_000_001n, -86_400_000_000_001n, 10n ** 30n, -(10n ** 30n));
    for (const ns of samples) expect(isoTime(ns), String(ns)).toBe(builtin(ns));
  });
});
