import type { FsDriver } from '../types.js';
import { isNtfsBootSector } from './boot.js';
import { NtfsFileSystem } from './filesystem.js';

export { NtfsFileSystem } from './filesystem.js';
export type { NtfsNode } from './node.js';

/** NTFS, read-only: detected by the "NTFS    " OEM id and a sane boot sector. */
export const ntfsDriver: FsDriver = {
  name: 'ntfs',
  probe(head: Buffer): string | null {
    return head.length >= 512 && isNtfsBootSector(head.subarray(0, 512)) ? 'ntfs' : null;
  },
  async probeDamaged(source): Promise<string | null> {
    // The backup boot sector is the volume's last sector, whatever the sector size.
    const tail = Buffer.alloc(Math.min(4096, source.size));
    await source.read(tail, 0, tail.length, source.size - tail.length);
    for (const bps of [512, 4096, 1024, 2048]) {
      if (tail.length < bps) continue;
      const sector = tail.subarray(tail.length - bps);
      if (isNtfsBootSector(sector) && sector.readUInt16LE(11) === bps) return 'ntfs';
    }
    return null;
  },
  open(source) {
    return NtfsFileSystem.open(source);
  },
};
