import { CorruptError } from '../../errors.js';

/** The update sequence stride is always 512 bytes, whatever the sector size. */
const STRIDE = 512;

/**
 * Apply the update sequence ("fixups") of a multi-sector record (FILE or INDX)
 * in place. NTFS stamps the last two bytes of every 512-byte stride with the
 * record's update sequence number and keeps the real bytes in an array in the
 * header; a stride whose stamp does not match was not written with the rest
 * (a torn write), so the whole record is untrustworthy.
 */
export function applyFixups(record: Buffer, magic: string, structure: string, offset: number): void {
  const found = record.toString('latin1', 0, 4);
  if (found !== magic) {
    const what = found === 'BAAD' ? 'marked BAAD by chkdsk' : found === '\0\0\0\0' ? 'empty (all zero signature)' : `bad signature ${JSON.stringify(found)}`;
    throw new CorruptError(structure, offset, `${what}, expected "${magic}"`);
  }
  const usaOffset = record.readUInt16LE(4);
  const usaCount = record.readUInt16LE(6);
  const strides = record.length / STRIDE;
  if (usaCount !== strides + 1 || usaOffset & 1 || usaOffset < 8 || usaOffset + usaCount * 2 > record.length) {
    throw new CorruptError(structure, offset, `invalid update sequence array (offset ${usaOffset}, count ${usaCount}) for a ${record.length}-byte record`);
  }
  const usn = record.readUInt16LE(usaOffset);
  for (let i = 0; i < strides; i++) {
    const end = (i + 1) * STRIDE - 2;
    if (record.readUInt16LE(end) !== usn) {
      throw new CorruptError(structure, offset + end, `update sequence mismatch in sector ${i} (torn write)`);
    }
    record.writeUInt16LE(record.readUInt16LE(usaOffset + 2 + i * 2), end);
  }
}
