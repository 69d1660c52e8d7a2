/**
 * exFAT directory entries (spec §6-7). A file is an entry set: a File entry
 * (0x85), a Stream Extension (0xC0) with its size and first cluster, then
 * File Name entries (0xC1) of 15 UTF-16 units each, all covered by the File
 * entry's SetChecksum. Critical primary entries in the root describe the
 * allocation bitmap (0x81), the up-case table (0x82) and the label (0x83).
 */
const ENTRY = 32;
const TYPE_BITMAP = 0x81;
const TYPE_UPCASE = 0x82;
const TYPE_LABEL = 0x83;
const TYPE_FILE = 0x85;
const TYPE_STREAM = 0xc0;
const TYPE_NAME = 0xc1;
const IN_USE = 0x80;
/** Bit 5 of the type: 0 for critical entries, which a reader must understand. */
const BENIGN = 0x20;
const SECONDARY = 0x40;

/** A timestamp as stored: DOS date in the high 16 bits, time in the low. */
export interface ExfatTime {
  stamp: number;
  /** Extra 10 ms units (0-199), 0 where the field does not exist. */
  centiseconds: number;
  /** The UtcOffset byte: bit 7 set means bits 0-6 hold a valid signed offset in 15-minute units. */
  utcOffset: number;
}

export interface ExfatFileRecord {
  name: string;
  attributes: number;
  /** Volume byte offset of the File entry: unique, used as the inode number. */
  entryOffset: number;
  allocationPossible: boolean;
  /** The clusters are consecutive and the FAT is not used for them. */
  noFatChain: boolean;
  firstCluster: number;
  dataLength: number;
  /** Bytes from the start actually written; the rest up to dataLength reads as zeros. */
  validDataLength: number;
  created: ExfatTime;
  modified: ExfatTime;
  accessed: ExfatTime;
}

export interface AllocationEntry {
  /** For the bitmap: bit 0 says which FAT it goes with. */
  flags: number;
  firstCluster: number;
  dataLength: number;
}

export interface SkippedSet {
  offset: number;
  reason: string;
}

export interface ParsedExfatDirectory {
  records: ExfatFileRecord[];
  label: string | null;
  bitmaps: AllocationEntry[];
  upcase: AllocationEntry | null;
  /** Entry sets that were damaged and left out; the rest of the directory is still listed. */
  skipped: SkippedSet[];
}

/** SetChecksum over all entries of a set, skipping the checksum field itself (bytes 2-3 of the first). */
export function entrySetChecksum(set: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < set.length; i++) {
    if (i === 2 || i === 3) continue;
    sum = (((sum & 1) << 15) | (sum >>> 1)) + set[i];
    sum &= 0xffff;
  }
  return sum;
}

function readSafeU64(b: Buffer, at: number): number | null {
  const v = b.readBigUInt64LE(at);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;
}

function utf16(b: Buffer, at: number, units: number): string {
  let s = '';
  for (let i = 0; i < units; i++) s += String.fromCharCode(b.readUInt16LE(at + i * 2));
  return s;
}

/**
 * Decode a directory's entries up to the end-of-directory mark (type 0).
 * Unused entries (in-use bit clear) and secondary entries outside a set are
 * skipped; a File entry set that is damaged (bad checksum, missing stream or
 * name entries, impossible sizes) is recorded in `skipped` and left out.
 */
export function parseExfatDirectory(bytes: Buffer, offsetOf: (index: number) => number): ParsedExfatDirectory {
  const out: ParsedExfatDirectory = { records: [], label: null, bitmaps: [], upcase: null, skipped: [] };
  const count = Math.floor(bytes.length / ENTRY);
  const entry = (i: number) => bytes.subarray(i * ENTRY, (i + 1) * ENTRY);
  for (let i = 0; i < count; i++) {
    const e = entry(i);
    const type = e[0];
    if (type === 0x00) break;
    if (!(type & IN_USE)) continue;
    switch (type) {
      case TYPE_BITMAP:
      case TYPE_UPCASE: {
        const dataLength = readSafeU64(e, 24);
        if (dataLength === null) break;
        const a = { flags: e[1], firstCluster: e.readUInt32LE(20), dataLength };
        if (type === TYPE_BITMAP) out.bitmaps.push(a);
        else out.upcase ??= a;
        break;
      }
      case TYPE_LABEL:
        if (out.label === null && e[1] > 0) out.label = utf16(e, 2, Math.min(e[1], 11)).replace(/\0+$/, '') || null;
        break;
      case TYPE_FILE: {
        const secondaries = e[1];
        const result = parseFileSet(bytes, i, count, secondaries, offsetOf(i));
        if ('reason' in result) {
          out.skipped.push({ offset: offsetOf(i), reason: result.reason });
          // Step over just the File entry: its would-be secondaries are skipped one by one as orphans.
          break;
        }
        out.records.push(result);
        i += secondaries;
        break;
      }
      default:
        // Secondary entries outside a set, the volume GUID, TexFAT padding, vendor entries: nothing to list.
        break;
    }
  }
  return out;
}

function parseFileSet(
  bytes: Buffer,
  first: number,
  count: number,
  secondaries: number,
  entryOffset: number,
): ExfatFileRecord | { reason: string } {
  // A stream entry and at least one name entry; at most 17 name entries (255 units) and a few vendor entries.
  if (secondaries < 2 || secondaries > 18) return { reason: `SecondaryCount ${secondaries} is outside 2..18` };
  if (first + secondaries >= count) return { reason: 'the entry set runs past the end of the directory' };
  const set = bytes.subarray(first * ENTRY, (first + 1 + secondaries) * ENTRY);
  const stored = set.readUInt16LE(2);
  const computed = entrySetChecksum(set);
  if (stored !== computed) {
    return { reason: `SetChecksum 0x${stored.toString(16)} does not match the entries (0x${computed.toString(16)})` };
  }
  const file = set.subarray(0, ENTRY);
  const stream = set.subarray(ENTRY, 2 * ENTRY);
  if (stream[0] !== TYPE_STREAM) return { reason: 'the entry after the File entry is not a Stream Extension' };
  const nameLength = stream[3];
  if (nameLength === 0) return { reason: 'NameLength is 0' };
  const nameEntries = Math.ceil(nameLength / 15);
  if (nameEntries > secondaries - 1) return { reason: `NameLength ${nameLength} needs more File Name entries than the set has` };
  let name = '';
  for (let k = 0; k < nameEntries; k++) {
    const n = set.subarray((2 + k) * ENTRY, (3 + k) * ENTRY);
    if (n[0] !== TYPE_NAME) return { reason: `entry ${2 + k} of the set is not a File Name entry` };
    name += utf16(n, 2, Math.min(15, nameLength - k * 15));
  }
  for (let k = 2 + nameEntries; k <= secondaries; k++) {
    const t = set[k * ENTRY];
    // Every secondary must be in use; an unknown critical one means we cannot read the file correctly.
    if (!(t & IN_USE) || !(t & SECONDARY)) return { reason: `entry ${k} of the set is not an in-use secondary entry` };
    if (!(t & BENIGN)) return { reason: `unknown critical secondary entry type 0x${t.toString(16)}` };
  }
  if (name.includes('/') || name.includes('\0') || name === '.' || name === '..') {
    return { reason: `the name ${JSON.stringify(name)} is not a valid file name` };
  }
  const flags = stream[1];
  const dataLength = readSafeU64(stream, 24);
  const validDataLength = readSafeU64(stream, 8);
  if (dataLength === null || validDataLength === null) return { reason: 'DataLength or ValidDataLength is beyond 2^53' };
  const allocationPossible = (flags & 1) !== 0;
  return {
    name,
    attributes: file.readUInt16LE(4),
    entryOffset,
    allocationPossible,
    noFatChain: (flags & 2) !== 0,
    firstCluster: allocationPossible ? stream.readUInt32LE(20) : 0,
    dataLength: allocationPossible ? dataLength : 0,
    // ValidDataLength cannot exceed DataLength; a larger value is damage, and capping it is the safe reading.
    validDataLength: allocationPossible ? Math.min(validDataLength, dataLength) : 0,
    created: { stamp: file.readUInt32LE(8), centiseconds: file[20], utcOffset: file[22] },
    modified: { stamp: file.readUInt32LE(12), centiseconds: file[21], utcOffset: file[23] },
    accessed: { stamp: file.readUInt32LE(16), centiseconds: 0, utcOffset: file[24] },
  };
}
