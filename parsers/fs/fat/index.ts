import type { FsDriver } from '../types.js';
import { findBackupBootSector, probeFat } from './bpb.js';
import { FatFileSystem } from './filesystem.js';

/** FAT12/16/32 with long file names (VFAT), read-only. */
export const fatDriver: FsDriver = {
  name: 'fat',
  probe: (head, volumeSize) => probeFat(head, volumeSize),
  probeDamaged: async (source) => ((await findBackupBootSector(source)) ? 'fat32' : null),
  open: (source) => FatFileSystem.open(source),
};

export { FatFileSystem, type FatNode } from './filesystem.js';
