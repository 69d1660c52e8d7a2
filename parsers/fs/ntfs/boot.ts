import { CorruptError } from '../../errors.js';

/**
 * The NTFS boot sector ($Boot, sector 0 of the volume; a backup sits in the
 * last sector). It gives the geometry everything else is computed from.
 */
export interface NtfsGeometry {
  bytesPerSector: number;
  clusterSize: number;
  /** Sectors the filesystem spans (the backup boot sector sits right after them). */
  totalSectors: number;
  totalClusters: number;
  mftLcn: number;
  mftMirrLcn: number;
  mftRecordSize: number;
  indexRecordSize: number;
  serialNumber: bigint;
  /** Where this boot sector was read: 0, or the backup's offset when the primary was unusable. */
  bootSectorOffset: number;
}

export const NTFS_OEM_ID = 'NTFS    ';
/** Windows formats clusters of up to 2 MiB. */
const MAX_CLUSTER_SIZE = 2 * 1024 * 1024;

/** Sectors per cluster: 1..128 literally, above 0x80 as 2^(256 - v) (clusters of 64 KiB+ on 512-byte sectors). */
function sectorsPerCluster(v: number): number | null {
  if (v === 0) return null;
  if (v <= 0x80) return (v & (v - 1)) === 0 ? v : null;
  const exponent = 256 - v;
  return exponent <= 12 ? 2 ** exponent : null;
}

/**
 * Clusters per MFT record / index record: positive = that many clusters,
 * negative (signed byte) = 2^-v bytes (records smaller than a cluster).
 */
function recordSize(v: number, clusterSize: number): number | null {
  const signed = v > 0x7f ? v - 256 : v;
  if (signed === 0) return null;
  const size = signed > 0 ? signed * clusterSize : 2 ** -signed;
  if (size < 512 || size > 64 * 1024 || (size & (size - 1)) !== 0) return null;
  return size;
}

/** Why `b` is not a usable NTFS boot sector, or null when it is. */
function problem(b: Buffer): string | null {
  if (b.length < 512) return 'shorter than a sector';
  if (b.toString('latin1', 3, 11) !== NTFS_OEM_ID) return 'no "NTFS    " OEM id';
  if (b.readUInt16LE(510) !== 0xaa55) return 'no 0x55AA boot signature';
  const bps = b.readUInt16LE(11);
  if (bps < 256 || bps > 4096 || (bps & (bps - 1)) !== 0) return `invalid bytes per sector ${bps}`;
  const spc = sectorsPerCluster(b[13]);
  if (spc === null || spc * bps > MAX_CLUSTER_SIZE) return `invalid sectors per cluster byte 0x${b[13].toString(16)}`;
  const clusterSize = spc * bps;
  if (recordSize(b[0x40], clusterSize) === null) return `invalid MFT record size byte 0x${b[0x40].toString(16)}`;
  if (recordSize(b[0x44], clusterSize) === null) return `invalid index record size byte 0x${b[0x44].toString(16)}`;
  const total = b.readBigUInt64LE(0x28);
  if (total === 0n || total > BigInt(Number.MAX_SAFE_INTEGER) / BigInt(bps)) return `invalid total sectors ${total}`;
  const clusters = total / BigInt(spc);
  if (b.readBigUInt64LE(0x30) >= clusters) return `$MFT cluster ${b.readBigUInt64LE(0x30)} beyond the volume`;
  if (b.readBigUInt64LE(0x38) >= clusters) return `$MFTMirr cluster ${b.readBigUInt64LE(0x38)} beyond the volume`;
  return null;
}

/** Cheap, non-throwing check used by the driver's probe. */
export function isNtfsBootSector(b: Buffer): boolean {
  return problem(b) === null;
}

export function parseBootSector(b: Buffer, offset: number): NtfsGeometry {
  const why = problem(b);
  if (why) throw new CorruptError('NTFS boot sector', offset, why);
  const bytesPerSector = b.readUInt16LE(11);
  const clusterSize = sectorsPerCluster(b[13])! * bytesPerSector;
  const totalSectors = Number(b.readBigUInt64LE(0x28));
  return {
    bytesPerSector,
    clusterSize,
    totalSectors,
    totalClusters: Math.floor((totalSectors * bytesPerSector) / clusterSize),
    mftLcn: Number(b.readBigUInt64LE(0x30)),
    mftMirrLcn: Number(b.readBigUInt64LE(0x38)),
    mftRecordSize: recordSize(b[0x40], clusterSize)!,
    indexRecordSize: recordSize(b[0x44], clusterSize)!,
    serialNumber: b.readBigUInt64LE(0x48),
    bootSectorOffset: offset,
  };
}

/** The volume serial number as blkid shows it: 16 uppercase hex digits. */
export function serialToUuid(serial: bigint): string {
  return serial.toString(16).toUpperCase().padStart(16, '0');
}
