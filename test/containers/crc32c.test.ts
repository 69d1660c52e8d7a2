/**
 * CRC-32C as VHDX and ext4 use it: the standard check value, the raw
 * (uninverted) register ext4 chains, and the four-bytes-at-a-time loop
 * against a bit-by-bit reference for every length and offset alignment.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { crc32c, crc32cRaw } from '../../parsers/source/containers/crc32c.js';

/** Bit by bit, straight from the polynomial (reflected 0x1EDC6F41). */
function reference(state: number, data: Uint8Array, start: number, end: number): number {
  let c = state >>> 0;
  for (let i = start; i < end; i++) {
    c ^= data[i];
    for (let k = 0; k < 8; k++) c = c & 1 ? (0x82f63b78 ^ (c >>> 1)) >>> 0 : c >>> 1;
  }
  return c >>> 0;
}

describe('crc32c', () => {
  it('gives the standard check value and chains like Linux crc32c()', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    const data = Buffer.from('loopless reads ext4 metadata checksums');
    // crc32c(x) is the raw register from ~0, inverted; raw runs chain piece by piece.
    expect(crc32c(data)).toBe(~crc32cRaw(0xffffffff, data) >>> 0);
    expect(crc32cRaw(crc32cRaw(7, data, 0, 11), data, 11)).toBe(crc32cRaw(7, data));
  });

  it('matches a bit-by-bit reference for every length 0..40 and start offset 0..3', () => {
    const data = randomBytes(44);
    for (let start = 0; start < 4; start++) {
      for (let length = 0; length <= 40; length++) {
        const seed = (start * 2654435761 + length) >>> 0;
        expect(crc32cRaw(seed, data, start, start + length), `start ${start} length ${length}`).toBe(reference(seed, data, start, start + length));
      }
    }
  });
});
