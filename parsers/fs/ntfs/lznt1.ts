import { CorruptError } from '../../errors.js';

/** LZNT1 works on 4 KiB chunks ("sub-blocks") of uncompressed data. */
const CHUNK = 4096;

/**
 * Decompress one NTFS compression unit (LZNT1). `src` holds the unit's
 * compressed clusters; `dest` (zero-filled, the unit's uncompressed size)
 * receives the data. A chunk is a 16-bit header (bits 0-11: stored size - 3,
 * bit 15: compressed) and then either 4096 raw bytes or groups of a flag byte
 * and eight tokens: a literal byte, or a 16-bit back-reference whose split
 * between offset and length bits depends on how far into the chunk we are.
 * A header of zero or the end of `src` ends the unit; the rest stays zero.
 * `offset` is used only to name the place in errors.
 */
export function decompressLznt1(src: Buffer, dest: Buffer, offset: number): void {
  let s = 0;
  let d = 0;
  const fail = (detail: string): never => {
    throw new CorruptError('NTFS compressed data (LZNT1)', offset + s, detail);
  };
  while (s + 2 <= src.length && d < dest.length) {
    const header = src.readUInt16LE(s);
    if (header === 0) break;
    const chunkEnd = s + (header & 0x0fff) + 3;
    if (chunkEnd > src.length) fail('chunk runs past the end of the compression unit');
    const chunkStart = d;
    const chunkLimit = Math.min(d + CHUNK, dest.length);
    s += 2;
    if (!(header & 0x8000)) {
      // Stored chunk: always a full 4096 bytes.
      if (chunkEnd - s !== CHUNK) fail(`stored chunk of ${chunkEnd - s} bytes, expected ${CHUNK}`);
      src.copy(dest, d, s, s + Math.min(CHUNK, dest.length - d));
      s = chunkEnd;
      d += CHUNK;
      continue;
    }
    while (s < chunkEnd) {
      let flags = src[s++];
      for (let token = 0; token < 8 && s < chunkEnd; token++, flags >>= 1) {
        if (!(flags & 1)) {
          if (d >= chunkLimit) fail('literal past the end of the chunk');
          dest[d++] = src[s++];
          continue;
        }
        if (s + 2 > chunkEnd) fail('back-reference cut short');
        if (d === chunkStart) fail('back-reference at the start of a chunk');
        // Offset bits grow (and length bits shrink) as the position in the chunk grows.
        let lengthBits = 12;
        for (let pos = d - chunkStart - 1; pos >= 0x10; pos >>= 1) lengthBits--;
        const tokenValue = src.readUInt16LE(s);
        s += 2;
        const back = (tokenValue >>> lengthBits) + 1;
        const length = (tokenValue & ((1 << lengthBits) - 1)) + 3;
        if (d - back < chunkStart) fail('back-reference before the start of the chunk');
        if (d + length > chunkStart + CHUNK) fail('back-reference past the end of the chunk');
        const n = Math.min(length, dest.length - d);
        if (back >= n) dest.copyWithin(d, d - back, d - back + n);
        // Overlapping: the reference repeats bytes it is producing (a run), so byte by byte.
        else for (let i = 0; i < n; i++) dest[d + i] = dest[d - back + i];
        d += n;
      }
    }
    // A chunk that decompresses short is padded with zeros to its full 4 KiB.
    d = Math.max(d, Math.min(chunkStart + CHUNK, dest.length));
  }
}
