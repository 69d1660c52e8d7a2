import { CorruptError } from '../../errors.js';
import type { ByteSource } from '../../source/types.js';

/**
 * The exFAT boot region (Microsoft's exFAT file system specification, §3):
 * 12 sectors — the boot sector, 8 extended boot sectors, OEM parameters, a
 * reserved sector and a sector filled with the checksum of the other 11 — and
 * an identical backup region right after it (sectors 12-23).
 */
export interface ExfatGeometry {
  bytesPerSector: number;
  clusterSize: number;
  /** Byte offset of the FAT in use (the second one when VolumeFlags.ActiveFat says so). */
  activeFatOffset: number;
  /** Byte offset and total length of all FATs. */
  fatRegionOffset: number;
  fatRegionBytes: number;
  fatCount: number;
  /** Which FAT and allocation bitmap are active (0 or 1). */
  activeFat: number;
  heapOffset: number;
  /** Valid cluster numbers are 2 .. clusterCount + 1. */
  clusterCount: number;
  rootCluster: number;
  serial: number;
  percentInUse: number | null;
  /** Problems that do not stop reading (backup boot region in use, truncated volume). */
  warnings: string[];
}

const BOOT_SECTOR = 'exFAT boot sector';
const BOOT_REGION_SECTORS = 12;

function fail(at: number, detail: string): never {
  throw new CorruptError(BOOT_SECTOR, at, detail);
}

/** Cheap identification: the name at offset 3 and the zeroed legacy BPB that keeps FAT drivers off. */
export function looksLikeExfat(sector: Buffer): boolean {
  if (sector.length < 512 || sector.toString('latin1', 3, 11) !== 'EXFAT   ') return false;
  for (let i = 11; i < 64; i++) if (sector[i] !== 0) return false;
  return sector[510] === 0x55 && sector[511] === 0xaa;
}

/**
 * Check one boot sector and derive the layout. `base` is its byte offset in
 * the volume (0, or the backup's), used in messages.
 */
export function parseExfatBootSector(sector: Buffer, volumeSize: number, base = 0): ExfatGeometry {
  if (sector.length < 512) fail(base, 'volume too small for a boot sector');
  if (sector.toString('latin1', 3, 11) !== 'EXFAT   ') fail(base + 3, 'file system name is not "EXFAT   "');
  for (let i = 11; i < 64; i++) if (sector[i] !== 0) fail(base + i, 'the MustBeZero area (legacy BPB) is not zero');
  if (sector[510] !== 0x55 || sector[511] !== 0xaa) fail(base + 510, 'boot signature 0x55AA missing');
  const sectorShift = sector[108];
  if (sectorShift < 9 || sectorShift > 12) fail(base + 108, `BytesPerSectorShift ${sectorShift} is outside 9..12`);
  const clusterShift = sector[109];
  if (clusterShift > 25 - sectorShift) fail(base + 109, `SectorsPerClusterShift ${clusterShift} makes clusters larger than 32 MiB`);
  const bytesPerSector = 2 ** sectorShift;
  const sectorsPerCluster = 2 ** clusterShift;
  const clusterSize = bytesPerSector * sectorsPerCluster;
  const fatCount = sector[110];
  if (fatCount !== 1 && fatCount !== 2) fail(base + 110, `NumberOfFats ${fatCount} is not 1 or 2`);
  const volumeSectors = Number(sector.readBigUInt64LE(72));
  const fatOffset = sector.readUInt32LE(80);
  const fatLength = sector.readUInt32LE(84);
  const heapOffset = sector.readUInt32LE(88);
  const clusterCount = sector.readUInt32LE(92);
  const rootCluster = sector.readUInt32LE(96);
  const serial = sector.readUInt32LE(100);
  const volumeFlags = sector.readUInt16LE(106);
  const percentInUse = sector[112];

  if (fatOffset < 24) fail(base + 80, `FatOffset ${fatOffset} overlaps the boot regions (must be at least 24)`);
  if (clusterCount < 1 || clusterCount > 0xfffffff5) fail(base + 92, `ClusterCount ${clusterCount} is out of range`);
  const fatBytesNeeded = (clusterCount + 2) * 4;
  if (fatLength * bytesPerSector < fatBytesNeeded) {
    fail(base + 84, `FatLength ${fatLength} sectors cannot hold ${clusterCount + 2} FAT entries`);
  }
  if (heapOffset < fatOffset + fatLength * fatCount) fail(base + 88, `ClusterHeapOffset ${heapOffset} overlaps the FAT region`);
  if (heapOffset + clusterCount * sectorsPerCluster > volumeSectors) {
    fail(base + 92, `${clusterCount} clusters from sector ${heapOffset} do not fit in the ${volumeSectors}-sector volume`);
  }
  if (rootCluster < 2 || rootCluster > clusterCount + 1) {
    fail(base + 96, `FirstClusterOfRootDirectory ${rootCluster} is outside 2..${clusterCount + 1}`);
  }
  // ActiveFat (bit 0) only means something with two FATs.
  const activeFat = fatCount === 2 ? volumeFlags & 1 : 0;
  const warnings: string[] = [];
  const claimed = volumeSectors * bytesPerSector;
  if (claimed > volumeSize) {
    warnings.push(`the filesystem claims ${claimed} bytes but the volume holds ${volumeSize}: truncated image? files past the end cannot be read`);
  }
  return {
    bytesPerSector,
    clusterSize,
    activeFatOffset: (fatOffset + activeFat * fatLength) * bytesPerSector,
    fatRegionOffset: fatOffset * bytesPerSector,
    fatRegionBytes: fatLength * fatCount * bytesPerSector,
    fatCount,
    activeFat,
    heapOffset: heapOffset * bytesPerSector,
    clusterCount,
    rootCluster,
    serial,
    percentInUse: percentInUse <= 100 ? percentInUse : null,
    warnings,
  };
}

/**
 * The boot checksum over sectors 0-10 of a region, skipping VolumeFlags
 * (bytes 106-107) and PercentInUse (byte 112), which change without the
 * checksum being rewritten (spec §3.4).
 */
export function bootChecksum(region: Buffer, bytesPerSector: number): number {
  let sum = 0;
  const end = bytesPerSector * 11;
  for (let i = 0; i < end; i++) {
    if (i === 106 || i === 107 || i === 112) continue;
    sum = ((sum >>> 1) | ((sum & 1) << 31)) + region[i];
    sum >>>= 0;
  }
  return sum;
}

/** The checksum sector repeats the checksum in every 4-byte slot; all must match. */
function checksumMatches(region: Buffer, bytesPerSector: number): boolean {
  const sum = bootChecksum(region, bytesPerSector);
  const start = bytesPerSector * 11;
  for (let at = start; at < start + bytesPerSector; at += 4) if (region.readUInt32LE(at) !== sum) return false;
  return true;
}

async function readRegion(source: ByteSource, position: number, length: number): Promise<Buffer | null> {
  if (position + length > source.size) return null;
  const buf = Buffer.alloc(length);
  const n = await source.read(buf, 0, length, position);
  return n === length ? buf : null;
}

/** Parse and checksum the region at sector `firstSector`; returns the geometry or why it is unusable. */
async function tryRegion(
  source: ByteSource,
  bytesPerSector: number,
  firstSector: number,
): Promise<{ geometry: ExfatGeometry } | { error: string; offset: number }> {
  const base = firstSector * bytesPerSector;
  const region = await readRegion(source, base, BOOT_REGION_SECTORS * bytesPerSector);
  if (!region) return { error: 'the volume ends inside the boot region', offset: base };
  let geometry: ExfatGeometry;
  try {
    geometry = parseExfatBootSector(region.subarray(0, bytesPerSector), source.size, base);
  } catch (e) {
    if (e instanceof CorruptError) return { error: e.detail, offset: e.offset };
    throw e;
  }
  if (geometry.bytesPerSector !== bytesPerSector) {
    return { error: `BytesPerSectorShift says ${geometry.bytesPerSector}-byte sectors`, offset: base + 108 };
  }
  if (!checksumMatches(region, bytesPerSector)) {
    return { error: 'boot checksum mismatch (sector 11 does not match sectors 0-10)', offset: base + 11 * bytesPerSector };
  }
  return { geometry };
}

/**
 * Read the main boot region; when it is damaged (bad checksum, bad field),
 * fall back to the backup region and say so in the warnings. Only when both
 * are unusable does opening fail.
 */
export async function readBootRegion(source: ByteSource): Promise<ExfatGeometry> {
  const head = await readRegion(source, 0, 512);
  if (!head) throw new CorruptError('exFAT boot region', 0, 'volume too small for a boot sector');
  const shift = head[108];
  const mainSectorSize = shift >= 9 && shift <= 12 ? 2 ** shift : 512;
  const main = await tryRegion(source, mainSectorSize, 0);
  if ('geometry' in main) return main.geometry;
  // The main region's sector size may itself be the damage: try every size the backup could use.
  const sizes = [mainSectorSize, ...[512, 1024, 2048, 4096].filter((s) => s !== mainSectorSize)];
  for (const size of sizes) {
    const backup = await tryRegion(source, size, BOOT_REGION_SECTORS);
    if ('geometry' in backup) {
      backup.geometry.warnings.unshift(
        `main boot region unusable (${main.error} at byte ${main.offset}); using the backup boot region`,
      );
      return backup.geometry;
    }
  }
  throw new CorruptError(
    'exFAT boot region',
    main.offset,
    `${main.error}, and the backup boot region at byte ${BOOT_REGION_SECTORS * mainSectorSize} is unusable too`,
  );
}

/** Driver probe: main boot sector, or the backup one when the main sector is wiped. */
export function probeExfat(head: Buffer, volumeSize: number): 'exfat' | null {
  const candidates = [0, 12 * 512, 12 * 1024, 12 * 2048, 12 * 4096];
  for (const at of candidates) {
    if (at + 512 > head.length) break;
    const sector = head.subarray(at, at + 512);
    if (!looksLikeExfat(sector)) continue;
    try {
      parseExfatBootSector(sector, volumeSize, at);
      return 'exfat';
    } catch {
      // try the next candidate
    }
  }
  return null;
}
