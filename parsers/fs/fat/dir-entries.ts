import { cleanLabel } from './bpb.js';
import { decodeCp437 } from './cp437.js';
import { ATTR_DIRECTORY, ATTR_HIDDEN, ATTR_READ_ONLY, ATTR_SYSTEM, ATTR_VOLUME_ID } from './entry-stat.js';

/**
 * FAT directory entries: 32-byte records, each a short (8.3) entry or a piece
 * of a long file name (LFN) stored, last piece first, right before the short
 * entry it belongs to.
 */
const ATTR_LONG_NAME = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID;

/** Windows NT keeps all-lowercase 8.3 names short and flags the case here (byte 12). */
const NT_LOWERCASE_BASE = 0x08;
const NT_LOWERCASE_EXT = 0x10;

const ENTRY_SIZE = 32;
/** 20 LFN entries of 13 UTF-16 units cover the 255-character maximum. */
const MAX_LFN_ENTRIES = 20;

export interface FatDirRecord {
  /** The long name when a valid one precedes the short entry, else the decoded short name. */
  name: string;
  shortName: string;
  attributes: number;
  firstCluster: number;
  size: number;
  /** Byte offset of the short entry within the volume: unique, used as the inode number. */
  entryOffset: number;
  creationCentiseconds: number;
  creationTime: number;
  creationDate: number;
  accessDate: number;
  writeTime: number;
  writeDate: number;
}

export interface ParsedDirectory {
  records: FatDirRecord[];
  /** The volume label entry's text (meaningful in the root directory only). */
  label: string | null;
  /** Entries dropped because they cannot be right (bad characters in the name). */
  skipped: number;
}

/** The LFN checksum of an 11-byte short name (fatgen103 §7: rotate right, add). */
export function shortNameChecksum(name: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = ((((sum & 1) << 7) | (sum >> 1)) + name[i]) & 0xff;
  return sum;
}

/** Byte offsets of the 13 UTF-16 name units inside an LFN entry. */
const LFN_UNIT_OFFSETS = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

interface LongNameInProgress {
  checksum: number;
  /** Sequence number of the piece expected next (counts down to 1). */
  expect: number;
  pieces: string[];
}

/**
 * Decode one directory's entries. `entryOffsetOf(i)` gives the volume byte
 * offset of entry i (directories are spread over clusters). Stops at the
 * end-of-directory mark (first byte 0); skips deleted entries, volume labels,
 * "." and "..", and long-name pieces that are orphaned, out of sequence or
 * whose checksum does not match the short entry (the short name is used then,
 * as Windows and Linux do).
 */
export function parseFatDirectory(bytes: Buffer, entryOffsetOf: (index: number) => number): ParsedDirectory {
  const records: FatDirRecord[] = [];
  let label: string | null = null;
  let skipped = 0;
  let lfn: LongNameInProgress | null = null;
  const count = Math.floor(bytes.length / ENTRY_SIZE);
  for (let i = 0; i < count; i++) {
    const e = bytes.subarray(i * ENTRY_SIZE, (i + 1) * ENTRY_SIZE);
    const first = e[0];
    if (first === 0x00) break;
    if (first === 0xe5) {
      lfn = null;
      continue;
    }
    const attributes = e[11];
    if ((attributes & 0x3f) === ATTR_LONG_NAME) {
      lfn = addLongNamePiece(lfn, e);
      continue;
    }
    const pending = lfn;
    lfn = null;
    if (attributes & ATTR_VOLUME_ID) {
      if (!(attributes & ATTR_DIRECTORY) && label === null) label = cleanLabel(decodeCp437(e.subarray(0, 11)));
      continue;
    }
    const shortName = decodeShortName(e);
    if (shortName === '.' || shortName === '..') continue;
    if (shortName === null) {
      skipped++;
      continue;
    }
    let name = shortName;
    if (pending && pending.expect === 0 && pending.checksum === shortNameChecksum(e.subarray(0, 11))) {
      const long = pending.pieces.join('');
      const end = long.indexOf('\0');
      const candidate = end >= 0 ? long.slice(0, end) : long;
      if (isUsableName(candidate)) name = candidate;
    }
    records.push({
      name,
      shortName,
      attributes,
      firstCluster: (e.readUInt16LE(20) << 16) | e.readUInt16LE(26),
      size: e.readUInt32LE(28),
      entryOffset: entryOffsetOf(i),
      creationCentiseconds: e[13],
      creationTime: e.readUInt16LE(14),
      creationDate: e.readUInt16LE(16),
      accessDate: e.readUInt16LE(18),
      writeTime: e.readUInt16LE(22),
      writeDate: e.readUInt16LE(24),
    });
  }
  return { records, label, skipped };
}

function addLongNamePiece(lfn: LongNameInProgress | null, e: Buffer): LongNameInProgress | null {
  const order = e[0];
  const sequence = order & 0x1f;
  // Type (byte 12) is 0 for name pieces; anything else is a different, unknown kind of entry.
  if (e[12] !== 0 || sequence === 0 || sequence > MAX_LFN_ENTRIES) return null;
  const checksum = e[13];
  if (order & 0x40) {
    // The last piece comes first on disk and starts a new name, abandoning any unfinished one.
    lfn = { checksum, expect: sequence, pieces: new Array<string>(sequence).fill('') };
  } else if (!lfn || lfn.expect !== sequence || lfn.checksum !== checksum) {
    return null;
  }
  let piece = '';
  for (const at of LFN_UNIT_OFFSETS) piece += String.fromCharCode(e.readUInt16LE(at));
  lfn.pieces[sequence - 1] = piece;
  lfn.expect = sequence - 1;
  return lfn;
}

/**
 * "README  TXT" → "README.TXT", honouring the NT lowercase flags; 0x05 as the
 * first byte stands for 0xE5 (which would otherwise mean "deleted"). Null when
 * the name cannot be a real one (control characters, '/', empty base).
 */
export function decodeShortName(e: Buffer): string | null {
  const raw = Buffer.from(e.subarray(0, 11));
  if (raw[0] === 0x05) raw[0] = 0xe5;
  for (const b of raw) if (b < 0x20 || b === 0x2f || b === 0x5c) return null;
  let base = decodeCp437(raw.subarray(0, 8)).replace(/ +$/, '');
  let ext = decodeCp437(raw.subarray(8, 11)).replace(/ +$/, '');
  if (base === '') return null;
  const flags = e[12];
  if (flags & NT_LOWERCASE_BASE) base = base.toLowerCase();
  if (flags & NT_LOWERCASE_EXT) ext = ext.toLowerCase();
  return ext ? `${base}.${ext}` : base;
}

function isUsableName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}
