import { crc32 } from 'node:zlib';
import type { ByteSource } from '../source/types.js';
import { readZeroPadded } from '../source/read.js';
import { CorruptError } from '../errors.js';
import type { GptLayout, Volume } from './types.js';
import { formatGuid, ZERO_GUID } from './guid.js';
import { gptTypeName } from './type-names.js';

/**
 * GPT with both CRCs checked. We parse it ourselves rather than with the `gpt`
 * package because that package hashes a re-serialized header (wrong for
 * headers larger than 92 bytes), hashes max(16 KiB, entries x size) bytes of
 * the array (wrong for small arrays), and assumes the backup array sits right
 * before the backup header.
 */

const SIGNATURE = 'EFI PART';
/** Far more than any real table (128 x 128 B = 16 KiB); bounds what a hostile header can make us read. */
const MAX_ARRAY_BYTES = 4 * 1024 * 1024;

interface GptHeader {
  headerSize: number;
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  arrayCrc: number;
}

/** Is there a GPT signature at LBA 1 for this sector size? Cheap probe, no CRC. */
export async function hasGptSignature(source: ByteSource, sectorSize: number): Promise<boolean> {
  if (source.size < sectorSize * 2) return false;
  const buf = await readZeroPadded(source, sectorSize, 8);
  return buf.toString('latin1') === SIGNATURE;
}

/** Parse and verify a header; returns the header or a reason it is unusable. */
function parseHeader(sector: Buffer, expectedLba: number, sectorSize: number, diskSectors: number): GptHeader | string {
  if (sector.toString('latin1', 0, 8) !== SIGNATURE) return 'no "EFI PART" signature';
  const headerSize = sector.readUInt32LE(12);
  if (headerSize < 92 || headerSize > sectorSize) return `header size ${headerSize} out of range 92..${sectorSize}`;
  const stored = sector.readUInt32LE(16);
  const copy = Buffer.from(sector.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  const computed = crc32(copy) >>> 0;
  if (computed !== stored) return `header CRC32 mismatch (stored 0x${hex32(stored)}, computed 0x${hex32(computed)})`;
  const u64 = (o: number) => Number(sector.readBigUInt64LE(o));
  const h: GptHeader = {
    headerSize,
    myLba: u64(24),
    alternateLba: u64(32),
    firstUsableLba: u64(40),
    lastUsableLba: u64(48),
    diskGuid: formatGuid(sector, 56),
    entriesLba: u64(72),
    entryCount: sector.readUInt32LE(80),
    entrySize: sector.readUInt32LE(84),
    arrayCrc: sector.readUInt32LE(88),
  };
  if (h.myLba !== expectedLba) return `header says it lives at LBA ${h.myLba}, found at LBA ${expectedLba}`;
  if (h.entrySize < 128 || h.entrySize % 8 !== 0) return `partition entry size ${h.entrySize} invalid`;
  if (h.entryCount * h.entrySize > MAX_ARRAY_BYTES) return `partition array of ${h.entryCount} x ${h.entrySize} bytes is implausibly large`;
  if (h.entriesLba < 1 || h.entriesLba >= diskSectors) return `partition array LBA ${h.entriesLba} outside the image`;
  if (h.firstUsableLba > h.lastUsableLba + 1) return `first usable LBA ${h.firstUsableLba} after last usable LBA ${h.lastUsableLba}`;
  return h;
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

interface LoadedTable {
  header: GptHeader;
  array: Buffer;
}

async function loadTable(
  source: ByteSource,
  lba: number,
  sectorSize: number,
  diskSectors: number,
  which: string,
): Promise<LoadedTable | string> {
  if (lba < 1 || lba >= diskSectors) return `${which} GPT header LBA ${lba} lies beyond the end of the image (truncated image?)`;
  const sector = await readZeroPadded(source, lba * sectorSize, sectorSize);
  const header = parseHeader(sector, lba, sectorSize, diskSectors);
  if (typeof header === 'string') return `${which} GPT header at byte ${lba * sectorSize}: ${header}`;
  const arrayBytes = header.entryCount * header.entrySize;
  const array = await readZeroPadded(source, header.entriesLba * sectorSize, arrayBytes);
  const computed = crc32(array) >>> 0;
  if (computed !== header.arrayCrc) {
    return `${which} GPT partition array at byte ${header.entriesLba * sectorSize}: CRC32 mismatch (stored 0x${hex32(header.arrayCrc)}, computed 0x${hex32(computed)})`;
  }
  return { header, array };
}

export interface GptResult {
  volumes: Volume[];
  warnings: string[];
  layout: GptLayout;
  metadataRanges: { start: number; length: number; what: string }[];
}

/**
 * Read the primary GPT at LBA 1; if its header or array is damaged, fall back
 * to the backup (at the primary's alternate LBA, else the last sector) and say so.
 */
export async function readGpt(source: ByteSource, sectorSize: number): Promise<GptResult> {
  const diskSectors = Math.floor(source.size / sectorSize);
  const warnings: string[] = [];
  const primary = await loadTable(source, 1, sectorSize, diskSectors, 'primary');
  let table: LoadedTable;
  let usedBackup = false;
  let backupLba = diskSectors - 1;
  if (typeof primary !== 'string') {
    table = primary;
    backupLba = primary.header.alternateLba;
    const backup = await loadTable(source, backupLba, sectorSize, diskSectors, 'backup');
    if (typeof backup === 'string') warnings.push(`${backup}; the primary GPT is intact and was used`);
  } else {
    // Try where the primary header (if readable at all) says the backup is, then the last sector.
    const candidates = new Set<number>([diskSectors - 1]);
    const raw = await readZeroPadded(source, sectorSize, sectorSize);
    if (raw.toString('latin1', 0, 8) === SIGNATURE) {
      const alt = Number(raw.readBigUInt64LE(32));
      if (alt > 1 && alt < diskSectors) candidates.add(alt);
    }
    let backup: LoadedTable | string = 'no backup GPT found';
    for (const lba of candidates) {
      backup = await loadTable(source, lba, sectorSize, diskSectors, 'backup');
      if (typeof backup !== 'string') {
        backupLba = lba;
        break;
      }
    }
    if (typeof backup === 'string') {
      throw new CorruptError('GPT', sectorSize, `${primary}; ${backup}`);
    }
    table = backup;
    usedBackup = true;
    warnings.push(`${primary}; using the backup GPT at LBA ${backupLba} instead`);
  }

  const { header, array } = table;
  const volumes: Volume[] = [];
  for (let i = 0; i < header.entryCount; i++) {
    const o = i * header.entrySize;
    const type = formatGuid(array, o);
    if (type === ZERO_GUID) continue;
    const first = Number(array.readBigUInt64LE(o + 32));
    const last = Number(array.readBigUInt64LE(o + 40));
    const name = `p${i + 1}`;
    if (last < first || first >= diskSectors) {
      warnings.push(`GPT entry ${i + 1} (${name}): LBAs ${first}..${last} are invalid or past the end of the image; skipped`);
      continue;
    }
    if (last >= diskSectors) warnings.push(`${name} extends past the end of the image (truncated image?)`);
    const attributes = array.readBigUInt64LE(o + 48);
    const label = array.toString('utf16le', o + 56, o + Math.min(128, header.entrySize)).replace(/\0.*$/s, '');
    volumes.push({
      name,
      number: i + 1,
      start: first * sectorSize,
      size: (last - first + 1) * sectorSize,
      type,
      typeName: gptTypeName(type),
      partitionLabel: label || null,
      partitionUuid: formatGuid(array, o + 16),
      bootable: (attributes & 4n) !== 0n,
    });
  }

  const arrayBytes = header.entryCount * header.entrySize;
  const arraySectors = Math.ceil(arrayBytes / sectorSize);
  // Locations of both copies as the table in use describes them.
  const primaryArrayLba = usedBackup ? 2 : header.entriesLba;
  const backupArrayLba = usedBackup ? header.entriesLba : backupLba - arraySectors;
  const metadataRanges = [
    { start: 0, length: sectorSize, what: 'protective MBR' },
    { start: sectorSize, length: sectorSize, what: 'primary GPT header' },
    { start: primaryArrayLba * sectorSize, length: arraySectors * sectorSize, what: 'primary GPT partition array' },
  ];
  if (backupLba < diskSectors) {
    metadataRanges.push({ start: backupArrayLba * sectorSize, length: arraySectors * sectorSize, what: 'backup GPT partition array' });
    metadataRanges.push({ start: backupLba * sectorSize, length: sectorSize, what: 'backup GPT header' });
  }
  const layout: GptLayout = {
    sectorSize,
    diskGuid: header.diskGuid,
    primaryHeaderLba: 1,
    backupHeaderLba: backupLba,
    firstUsableLba: header.firstUsableLba,
    lastUsableLba: header.lastUsableLba,
    entriesLba: primaryArrayLba,
    entryCount: header.entryCount,
    entrySize: header.entrySize,
    usedBackup,
  };
  return { volumes, warnings, layout, metadataRanges };
}
