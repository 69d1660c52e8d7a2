import { CorruptError } from '../../errors.js';
import type { ByteSource } from '../../source/types.js';
import { decodeCp437 } from './cp437.js';

/**
 * The FAT boot sector and BIOS Parameter Block (Microsoft's "FAT: General
 * Overview of On-Disk Format", fatgen103). Everything a reader needs about
 * the volume's layout comes from here.
 *
 * The FAT type is decided by the count of data clusters, as the specification
 * demands (fewer than 4085: FAT12, fewer than 65525: FAT16, else FAT32); the
 * "FAT16   " label string is informational only and never read.
 */
export type FatType = 'fat12' | 'fat16' | 'fat32';

export interface FatGeometry {
  type: FatType;
  bytesPerSector: number;
  sectorsPerCluster: number;
  clusterSize: number;
  reservedSectors: number;
  fatCount: number;
  /** Sectors per FAT. */
  fatSectors: number;
  /** Byte offset of the FAT in use (FAT32 may disable mirroring and pick another). */
  activeFatOffset: number;
  /** Every FAT copy is kept the same (always on FAT12/16; FAT32 unless mirroring is disabled). */
  mirrored: boolean;
  /** Byte offset and length of the fixed FAT12/16 root directory (length 0 on FAT32). */
  rootDirOffset: number;
  rootDirBytes: number;
  /** Byte offset of cluster 2. */
  heapOffset: number;
  /** Data clusters: valid cluster numbers are 2 .. clusterCount + 1. */
  clusterCount: number;
  /** FAT32 root directory's first cluster (0 on FAT12/16). */
  rootCluster: number;
  /** FAT32 FSInfo sector number, or 0 when there is none. */
  fsInfoSector: number;
  totalSectors: number;
  /** Volume serial number from the extended BPB, when present. */
  serial: number | null;
  /** Label from the extended BPB (the root directory's label entry wins over it). */
  bpbLabel: string | null;
  /** Things worth telling the user that do not stop reading (e.g. a truncated image). */
  warnings: string[];
}

const STRUCT = 'FAT boot sector (BPB)';

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

function fail(offset: number, detail: string): never {
  throw new CorruptError(STRUCT, offset, detail);
}

/**
 * Parse and check the boot sector. Throws a CorruptError naming the field at
 * fault; `volumeSize` is the size of the volume in bytes.
 */
export function parseBpb(sector: Buffer, volumeSize: number): FatGeometry {
  if (sector.length < 512) fail(0, `volume is only ${sector.length} bytes, smaller than one boot sector`);
  if (sector[510] !== 0x55 || sector[511] !== 0xaa) fail(510, 'boot signature 0x55AA missing');
  const jump = sector[0];
  if (!(jump === 0xe9 || (jump === 0xeb && sector[2] === 0x90))) {
    fail(0, `no x86 jump instruction (0x${jump.toString(16)}) at the start of the boot sector`);
  }
  const bytesPerSector = sector.readUInt16LE(11);
  if (!isPowerOfTwo(bytesPerSector) || bytesPerSector < 512 || bytesPerSector > 4096) {
    fail(11, `bytes per sector ${bytesPerSector} is not a power of two in 512..4096`);
  }
  const sectorsPerCluster = sector[13];
  if (!isPowerOfTwo(sectorsPerCluster)) fail(13, `sectors per cluster ${sectorsPerCluster} is not a power of two`);
  const clusterSize = bytesPerSector * sectorsPerCluster;
  if (clusterSize > 256 * 1024) fail(13, `cluster size ${clusterSize} bytes exceeds 256 KiB`);
  const reservedSectors = sector.readUInt16LE(14);
  if (reservedSectors < 1) fail(14, 'reserved sector count is 0 (the boot sector itself is reserved)');
  const fatCount = sector[16];
  if (fatCount < 1) fail(16, 'number of FATs is 0');
  const rootEntryCount = sector.readUInt16LE(17);
  const media = sector[21];
  if (media !== 0xf0 && media < 0xf8) fail(21, `media descriptor 0x${media.toString(16)} is not 0xF0 or 0xF8..0xFF`);
  const totalSectors16 = sector.readUInt16LE(19);
  const totalSectors = totalSectors16 !== 0 ? totalSectors16 : sector.readUInt32LE(32);
  if (totalSectors === 0) fail(totalSectors16 === 0 ? 32 : 19, 'total sector count is 0');
  const fatSectors16 = sector.readUInt16LE(22);
  const fatSectors = fatSectors16 !== 0 ? fatSectors16 : sector.readUInt32LE(36);
  if (fatSectors === 0) fail(fatSectors16 === 0 ? 36 : 22, 'sectors per FAT is 0');

  const rootDirSectors = Math.ceil((rootEntryCount * 32) / bytesPerSector);
  const firstDataSector = reservedSectors + fatCount * fatSectors + rootDirSectors;
  if (firstDataSector >= totalSectors) {
    fail(19, `reserved sectors, FATs and root directory (${firstDataSector} sectors) leave no room for data in ${totalSectors} sectors`);
  }
  const clusterCount = Math.floor((totalSectors - firstDataSector) / sectorsPerCluster);
  if (clusterCount < 1) fail(13, 'the data region holds no whole cluster');
  const type: FatType = clusterCount < 4085 ? 'fat12' : clusterCount < 65525 ? 'fat16' : 'fat32';
  // FAT32 entries have 28 usable bits; cluster numbers 0x0FFFFFF7 and up are markers.
  if (clusterCount > 0x0ffffff5) fail(19, `${clusterCount} clusters exceed the FAT32 maximum`);

  const bits = type === 'fat12' ? 12 : type === 'fat16' ? 16 : 32;
  const fatCapacity = Math.floor((fatSectors * bytesPerSector * 8) / bits);
  if (fatCapacity < clusterCount + 2) {
    fail(fatSectors16 !== 0 ? 22 : 36, `a FAT of ${fatSectors} sectors holds ${fatCapacity} entries, fewer than the ${clusterCount + 2} the ${clusterCount} clusters need`);
  }

  let rootCluster = 0;
  let fsInfoSector = 0;
  let activeFat = 0;
  let mirrored = true;
  const warnings: string[] = [];
  if (type === 'fat32') {
    if (rootEntryCount !== 0) fail(17, `${clusterCount} clusters make this FAT32, which has no fixed root directory, but ${rootEntryCount} root entries are declared`);
    if (fatSectors16 !== 0) fail(22, `${clusterCount} clusters make this FAT32, but the FAT16 sectors-per-FAT field is set`);
    rootCluster = sector.readUInt32LE(44);
    if (rootCluster < 2 || rootCluster > clusterCount + 1) fail(44, `root directory cluster ${rootCluster} is outside 2..${clusterCount + 1}`);
    const extFlags = sector.readUInt16LE(40);
    // Bit 7: mirroring disabled, bits 0-3 name the one active FAT.
    if (extFlags & 0x80) {
      mirrored = false;
      activeFat = extFlags & 0x0f;
      if (activeFat >= fatCount) fail(40, `active FAT ${activeFat} does not exist (${fatCount} FATs)`);
    }
    const fsInfo = sector.readUInt16LE(48);
    if (fsInfo >= 1 && fsInfo < reservedSectors) fsInfoSector = fsInfo;
  } else if (rootEntryCount === 0) {
    fail(17, `${clusterCount} clusters make this ${type.toUpperCase()}, but it declares no root directory entries`);
  }

  // The extended BPB (signature 0x29, or 0x28 with the serial only) sits after the FAT32 fields on FAT32.
  const ext = type === 'fat32' ? 64 : 36;
  const extSignature = sector[ext + 2];
  const serial = extSignature === 0x29 || extSignature === 0x28 ? sector.readUInt32LE(ext + 3) : null;
  const bpbLabel = extSignature === 0x29 ? cleanLabel(decodeCp437(sector.subarray(ext + 7, ext + 18))) : null;

  const claimed = totalSectors * bytesPerSector;
  if (claimed > volumeSize) {
    warnings.push(
      `the filesystem claims ${claimed} bytes but the volume holds ${volumeSize}: truncated image? files past the end cannot be read`,
    );
  }

  return {
    type,
    bytesPerSector,
    sectorsPerCluster,
    clusterSize,
    reservedSectors,
    fatCount,
    fatSectors,
    activeFatOffset: (reservedSectors + activeFat * fatSectors) * bytesPerSector,
    mirrored,
    rootDirOffset: (reservedSectors + fatCount * fatSectors) * bytesPerSector,
    rootDirBytes: type === 'fat32' ? 0 : rootEntryCount * 32,
    heapOffset: firstDataSector * bytesPerSector,
    clusterCount,
    rootCluster,
    fsInfoSector,
    totalSectors,
    serial,
    bpbLabel,
    warnings,
  };
}

/** Trailing spaces pad labels; "NO NAME" is what formatters write for "no label". */
export function cleanLabel(raw: string): string | null {
  const label = raw.replace(/[ \0]+$/, '');
  return label === '' || label === 'NO NAME' ? null : label;
}

/** Volume serial as Windows shows it: "1A2B-3C4D". */
export function formatSerial(serial: number): string {
  const hex = serial.toString(16).toUpperCase().padStart(8, '0');
  return `${hex.slice(0, 4)}-${hex.slice(4)}`;
}

/** Driver probe: a boot sector that passes every check is FAT; the type comes from the cluster count. */
export function probeFat(head: Buffer, volumeSize: number): FatType | null {
  try {
    return parseBpb(head.subarray(0, 512), volumeSize).type;
  } catch {
    return null;
  }
}

/** BPB_BkBootSec: FAT32 keeps a copy of its boot sector in sector 6 (mkfs.fat and Windows both). */
const BACKUP_BOOT_SECTOR = 6;

/**
 * A FAT32 volume whose boot sector is damaged: its backup copy, when sector
 * 6 (for any sector size) holds a FAT32 boot sector of that sector size that
 * names sector 6 as its backup. Null when there is none.
 */
export async function findBackupBootSector(volume: ByteSource): Promise<{ geometry: FatGeometry; offset: number } | null> {
  for (const bps of [512, 4096, 1024, 2048]) {
    const offset = BACKUP_BOOT_SECTOR * bps;
    if (offset + 512 > volume.size) continue;
    const sector = Buffer.alloc(512);
    if ((await volume.read(sector, 0, 512, offset)) !== 512) continue;
    let geometry: FatGeometry;
    try {
      geometry = parseBpb(sector, volume.size);
    } catch {
      continue;
    }
    if (geometry.type === 'fat32' && geometry.bytesPerSector === bps && sector.readUInt16LE(0x32) === BACKUP_BOOT_SECTOR) return { geometry, offset };
  }
  return null;
}
