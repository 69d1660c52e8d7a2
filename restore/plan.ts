/**
 * What a restore copies, from the image's own structure: the partition-table
 * areas, everything outside the filesystems Loopless can read (boot loader
 * gaps, unknown or unformatted partitions, swap, LVM ...), and inside each
 * readable filesystem only what its allocation bitmap marks in use.
 */
import type { Disk } from '../parsers/vfs/index.js';
import { oneLine } from '../parsers/errors.js';
import type { CopyRange } from './engine.js';
import { clip, closeGaps, complement, normalize, rangeEnd, shift, totalLength, type ByteRange } from './ranges.js';

/**
 * Always copied at both ends of every filesystem volume, whatever its bitmap
 * says: boot code in a volume boot record (ext with 1 KiB blocks leaves its
 * boot block outside every group), NTFS's backup boot sector in the volume's
 * last sector, RAID superblocks of md 0.90/1.0 at the end. 1 MiB each costs
 * nothing next to the data and covers all of them.
 */
export const VOLUME_EDGE = 1024 * 1024;
/** Free gaps up to this size between copied ranges are copied too: fewer, larger writes. */
export const GAP_MERGE = 64 * 1024;

export interface VolumePlan {
  name: string;
  start: number;
  size: number;
  fs: string | null;
  /** "allocation": only allocated ranges; "whole": the whole volume, with the reason. */
  how: 'allocation' | 'whole';
  reason: string | null;
  copied: number;
}

export interface RestorePlan {
  imageSize: number;
  basis: 'allocation' | 'bmap';
  copy: CopyRange[];
  copied: number;
  volumes: VolumePlan[];
}

export async function planFromAllocation(disk: Disk): Promise<RestorePlan> {
  const imageSize = disk.size;
  const known: ByteRange[] = [];
  const parts: ByteRange[] = [...disk.table.metadataRanges.map((m) => ({ start: m.start, length: m.length }))];
  const volumes: VolumePlan[] = [];
  for (const volume of disk.volumes) {
    const extent = clip([{ start: volume.start, length: volume.size }], 0, imageSize);
    const plan: VolumePlan = { name: volume.name, start: volume.start, size: volume.size, fs: disk.detectedType(volume.name), how: 'whole', reason: null, copied: totalLength(extent) };
    volumes.push(plan);
    let allocated: ByteRange[];
    try {
      const fs = await disk.filesystem(volume.name);
      allocated = await fs.allocatedRanges();
    } catch (e) {
      plan.reason = plan.fs ? oneLine(e) : 'no filesystem recognized';
      continue;
    }
    const edges = [
      { start: 0, length: Math.min(VOLUME_EDGE, volume.size) },
      { start: Math.max(0, volume.size - VOLUME_EDGE), length: Math.min(VOLUME_EDGE, volume.size) },
    ];
    const inVolume = clip(shift(normalize([...allocated, ...edges]), volume.start), volume.start, Math.min(imageSize, volume.start + volume.size));
    known.push(...extent);
    parts.push(...inVolume);
    plan.how = 'allocation';
    plan.copied = totalLength(inVolume);
  }
  parts.push(...complement(known, imageSize));
  const copy = closeGaps(clip(parts, 0, imageSize), GAP_MERGE);
  // Report per volume what is actually copied once gaps are merged.
  for (const v of volumes) {
    if (v.how === 'allocation') v.copied = totalLength(clip(copy, v.start, Math.min(imageSize, v.start + v.size)));
  }
  return { imageSize, basis: 'allocation', copy, copied: totalLength(copy), volumes };
}

/** The partition-table / superblock area a restore writes last (see engine.ts). */
export function headerArea(disk: Disk, copy: ByteRange[]): ByteRange | null {
  const first = copy[0];
  if (!first || first.start !== 0) return null;
  // MBR: the sector with the table. GPT: protective MBR + primary header.
  // No table: the filesystem's boot sector / superblock (ext's is at 1 KiB).
  const want = disk.table.table === 'mbr' ? 512 : disk.table.table === 'gpt' ? 2 * disk.table.sectorSize : 64 * 1024;
  return { start: 0, length: Math.min(want, rangeEnd(first)) };
}
