import { crc32 } from 'node:zlib';
import type { ByteSource } from '../source/types.js';
import { readZeroPadded } from '../source/read.js';
import type { GptLayout } from './types.js';

/**
 * Move a GPT's backup copy to the end of a disk of another size, as
 * `sgdisk -e` does: the backup header goes to the last sector, the backup
 * partition array right before it, the last usable LBA follows, and both
 * headers get fresh CRCs (the array's CRC does not change). Used by restore
 * when the target drive is larger (or, explicitly allowed, smaller) than the
 * image. Nothing is written here: the caller gets the new sectors as patches.
 */

/** Bytes to put at `start` on the target instead of (or in addition to) the image's. */
export interface TablePatch {
  start: number;
  data: Buffer;
  what: string;
}

export interface GptRelocation {
  patches: TablePatch[];
  /** Where the relocated backup header and array live (byte ranges on the new disk). */
  backupHeaderLba: number;
  backupArrayLba: number;
  lastUsableLba: number;
  /** Partitions that would end past the new last usable LBA; the table cannot describe them. Empty when all fit. */
  problems: string[];
}

const MBR_ENTRIES = 446;

export async function relocateGpt(source: ByteSource, layout: GptLayout, diskSize: number): Promise<GptRelocation> {
  const ss = layout.sectorSize;
  const diskSectors = Math.floor(diskSize / ss);
  const arrayBytes = layout.entryCount * layout.entrySize;
  const arraySectors = Math.ceil(arrayBytes / ss);

  // Start from the header the reader trusted (the backup when the primary was damaged).
  const inUseLba = layout.usedBackup ? layout.backupHeaderLba : layout.primaryHeaderLba;
  const inUse = await readZeroPadded(source, inUseLba * ss, ss);
  const headerSize = inUse.readUInt32LE(12);
  const inUseArrayLba = Number(inUse.readBigUInt64LE(72));
  const array = await readZeroPadded(source, inUseArrayLba * ss, arraySectors * ss);

  const backupHeaderLba = diskSectors - 1;
  const backupArrayLba = backupHeaderLba - arraySectors;
  const lastUsableLba = backupArrayLba - 1;
  const primaryArrayLba = layout.usedBackup ? 2 : layout.entriesLba;

  const problems: string[] = [];
  if (lastUsableLba < layout.firstUsableLba) {
    problems.push(`a ${diskSize}-byte disk has no room for the partition area (first usable LBA ${layout.firstUsableLba})`);
  }
  for (let i = 0; i < layout.entryCount; i++) {
    const o = i * layout.entrySize;
    if (array.subarray(o, o + 16).every((b) => b === 0)) continue;
    const last = Number(array.readBigUInt64LE(o + 40));
    if (last > lastUsableLba) {
      problems.push(`partition p${i + 1} ends at byte ${(last + 1) * ss}, past the last usable byte ${(lastUsableLba + 1) * ss} of a ${diskSize}-byte disk`);
    }
  }

  const header = (myLba: number, alternateLba: number, entriesLba: number): Buffer => {
    const sector = Buffer.alloc(ss);
    inUse.copy(sector, 0, 0, headerSize);
    sector.writeBigUInt64LE(BigInt(myLba), 24);
    sector.writeBigUInt64LE(BigInt(alternateLba), 32);
    sector.writeBigUInt64LE(BigInt(lastUsableLba), 48);
    sector.writeBigUInt64LE(BigInt(entriesLba), 72);
    sector.writeUInt32LE(0, 16);
    sector.writeUInt32LE(crc32(sector.subarray(0, headerSize)) >>> 0, 16);
    return sector;
  };

  const patches: TablePatch[] = [];
  const mbr = await protectiveMbr(source, ss, diskSectors);
  if (mbr) patches.push({ start: 0, data: mbr, what: 'protective MBR (size of the new disk)' });
  patches.push({ start: ss, data: header(1, backupHeaderLba, primaryArrayLba), what: 'primary GPT header' });
  patches.push({ start: primaryArrayLba * ss, data: array, what: 'primary GPT partition array' });
  // Zero the image's old backup copy when it now lies inside the disk, so no
  // tool finds a second, stale backup GPT in the middle of the new drive.
  const oldArrayLba = layout.usedBackup ? inUseArrayLba : layout.backupHeaderLba - arraySectors;
  for (const [lba, sectors, what] of [
    [oldArrayLba, arraySectors, 'old backup GPT partition array (cleared)'],
    [layout.backupHeaderLba, 1, 'old backup GPT header (cleared)'],
  ] as const) {
    if (lba > primaryArrayLba && lba + sectors <= backupArrayLba) patches.push({ start: lba * ss, data: Buffer.alloc(sectors * ss), what });
  }
  patches.push({ start: backupArrayLba * ss, data: array, what: 'backup GPT partition array' });
  patches.push({ start: backupHeaderLba * ss, data: header(backupHeaderLba, 1, backupArrayLba), what: 'backup GPT header' });
  return { patches, backupHeaderLba, backupArrayLba, lastUsableLba, problems };
}

/**
 * The protective MBR with its 0xEE entry resized to the new disk
 * (min(sectors - 1, 2^32 - 1), as the UEFI spec asks); null when sector 0
 * holds no whole-disk protective entry (a hybrid MBR is left as it is).
 */
async function protectiveMbr(source: ByteSource, ss: number, diskSectors: number): Promise<Buffer | null> {
  const sector = await readZeroPadded(source, 0, 512);
  if (sector[510] !== 0x55 || sector[511] !== 0xaa) return null;
  const oldSectors = Math.floor(source.size / ss);
  for (let i = 0; i < 4; i++) {
    const o = MBR_ENTRIES + i * 16;
    if (sector[o + 4] !== 0xee || sector.readUInt32LE(o + 8) !== 1) continue;
    const size = sector.readUInt32LE(o + 12);
    if (size !== 0xffffffff && size < oldSectors - 1) return null;
    const sectors = Math.min(diskSectors - 1, 0xffffffff);
    sector.writeUInt32LE(sectors, o + 12);
    chsOf(sectors).copy(sector, o + 5); // the last LBA covered: the entry starts at LBA 1
    return sector;
  }
  return null;
}

/**
 * CHS address of an LBA with the 255-head, 63-sector geometry every tool
 * assumes (as gdisk computes it); past cylinder 1023, the "beyond CHS" value
 * 1023/254/63.
 */
function chsOf(lba: number): Buffer {
  const heads = 255;
  const perTrack = 63;
  if (lba >= heads * perTrack * 1024) return Buffer.from([0xfe, 0xff, 0xff]);
  const cylinder = Math.floor(lba / (heads * perTrack));
  const head = Math.floor((lba % (heads * perTrack)) / perTrack);
  const sector = (lba % perTrack) + 1;
  return Buffer.from([head, sector | ((cylinder >> 2) & 0xc0), cylinder & 0xff]);
}
