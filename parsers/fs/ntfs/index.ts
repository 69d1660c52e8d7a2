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
  open(source) {
    return NtfsFileSystem.open(source);
  },
};
