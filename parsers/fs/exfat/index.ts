import type { FsDriver } from '../types.js';
import { probeExfat } from './boot.js';
import { ExfatFileSystem } from './filesystem.js';

/** exFAT, read-only. */
export const exfatDriver: FsDriver = {
  name: 'exfat',
  probe: (head, volumeSize) => probeExfat(head, volumeSize),
  open: (source) => ExfatFileSystem.open(source),
};

export { ExfatFileSystem, type ExfatNode } from './filesystem.js';
