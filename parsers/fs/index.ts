import type { ByteSource } from '../source/types.js';
import type { FsDriver } from './types.js';
import { extDriver } from './ext/index.js';
import { fatDriver } from './fat/index.js';
import { exfatDriver } from './exfat/index.js';
import { ntfsDriver } from './ntfs/index.js';

/**
 * Filesystem drivers, probed in order by magic (never by the partition type
 * byte). Each format folder exports one driver; add it here.
 */
export const drivers: FsDriver[] = [extDriver, fatDriver, exfatDriver, ntfsDriver];

/** Bytes of a volume's head handed to probes: covers btrfs (64 KiB + 4 KiB) and ISO9660 (32 KiB). */
export const PROBE_BYTES = 72 * 1024;

/**
 * Filesystems and volume formats we recognize but do not read, so messages can
 * say what was found ("unsupported filesystem: xfs") instead of "unknown".
 */
const foreignSignatures: { name: string; match(head: Buffer): boolean }[] = [
  { name: 'xfs', match: (h) => h.length >= 4 && h.toString('latin1', 0, 4) === 'XFSB' },
  { name: 'btrfs', match: (h) => h.length >= 0x10048 && h.toString('latin1', 0x10040, 0x10048) === '_BHRfS_M' },
  { name: 'luks', match: (h) => h.length >= 6 && h.subarray(0, 6).equals(Buffer.from('LUKS\xba\xbe', 'latin1')) },
  { name: 'lvm2', match: (h) => h.length >= 520 && h.toString('latin1', 512, 520) === 'LABELONE' },
  { name: 'swap', match: (h) => h.length >= 4096 && h.toString('latin1', 4086, 4096) === 'SWAPSPACE2' },
  { name: 'iso9660', match: (h) => h.length >= 0x8006 && h.toString('latin1', 0x8001, 0x8006) === 'CD001' },
  { name: 'squashfs', match: (h) => h.length >= 4 && h.toString('latin1', 0, 4) === 'hsqs' },
  { name: 'bitlocker', match: (h) => h.length >= 11 && h.toString('latin1', 3, 11) === '-FVE-FS-' },
  { name: 'zfs_member', match: (h) => h.length >= 0x4008 && h.readBigUInt64LE(0x4000) === 0x00bab10cn },
];

export interface Detection {
  /** Precise type ("ext4", "fat32", "xfs") or null when nothing was recognized. */
  type: string | null;
  /** The driver that reads it, or null when we only recognize it (or not at all). */
  driver: FsDriver | null;
  /** The probed head is all zeros (an unformatted or wiped volume). */
  blank: boolean;
}

export async function readProbeHead(source: ByteSource): Promise<Buffer> {
  const head = Buffer.alloc(Math.min(PROBE_BYTES, source.size));
  const n = await source.read(head, 0, head.length, 0);
  return head.subarray(0, n);
}

export async function detectFileSystem(source: ByteSource): Promise<Detection> {
  const head = await readProbeHead(source);
  for (const driver of drivers) {
    let type: string | null = null;
    try {
      type = driver.probe(head, source.size);
    } catch {
      type = null; // a probe must not take the whole listing down
    }
    if (type) return { type, driver, blank: false };
  }
  for (const sig of foreignSignatures) if (sig.match(head)) return { type: sig.name, driver: null, blank: false };
  // A wiped primary superblock or boot sector: a backup copy still says what it is.
  for (const driver of drivers) {
    if (!driver.probeDamaged) continue;
    let type: string | null = null;
    try {
      type = await driver.probeDamaged(source);
    } catch {
      type = null;
    }
    if (type) return { type, driver, blank: false };
  }
  return { type: null, driver: null, blank: head.every((b) => b === 0) };
}
