import type { Stat } from '../types.js';

/**
 * Attribute bits of a directory entry. exFAT's FileAttributes field kept the
 * bit values of FAT, so both filesystems read them from here.
 */
export const ATTR_READ_ONLY = 0x01;
export const ATTR_HIDDEN = 0x02;
export const ATTR_SYSTEM = 0x04;
/** FAT only: the volume label entry (and, with the three bits above, a long-name piece). */
export const ATTR_VOLUME_ID = 0x08;
export const ATTR_DIRECTORY = 0x10;
export const ATTR_ARCHIVE = 0x20;

/** The root directory has no entry of its own on either format. */
export const ROOT_INO = 1;

/** What a FAT or exFAT directory entry says about a file, decoded by its own format. */
export interface EntryFields {
  attributes: number;
  size: number;
  allocatedSize: number;
  /** Byte offset of the entry in the volume: unique, so it serves as the inode number. */
  ino: number;
  mtimeNs: bigint;
  atimeNs: bigint;
  birthtimeNs: bigint | null;
}

/**
 * The Stat of a file or directory entry. Neither format has owners, links or
 * a change time: uid/gid are 0 and the modification time stands in for the
 * change time, as on Linux. Mode and flags come from the attribute bits.
 */
export function entryStat(e: EntryFields): Stat & { flags: string[] } {
  const isDir = (e.attributes & ATTR_DIRECTORY) !== 0;
  const flags: string[] = [];
  if (e.attributes & ATTR_READ_ONLY) flags.push('read-only');
  if (e.attributes & ATTR_HIDDEN) flags.push('hidden');
  if (e.attributes & ATTR_SYSTEM) flags.push('system');
  if (e.attributes & ATTR_ARCHIVE) flags.push('archive');
  return {
    type: isDir ? 'dir' : 'file',
    size: e.size,
    mode: isDir ? 0o755 : e.attributes & ATTR_READ_ONLY ? 0o444 : 0o644,
    uid: 0,
    gid: 0,
    nlink: 1,
    mtimeNs: e.mtimeNs,
    atimeNs: e.atimeNs,
    ctimeNs: e.mtimeNs,
    birthtimeNs: e.birthtimeNs,
    allocatedSize: e.allocatedSize,
    ino: e.ino,
    flags,
  };
}

/** The root directory's Stat: it has no directory entry, so no times and no attributes. */
export function rootDirectoryStat(allocatedSize: number): Stat {
  return {
    type: 'dir',
    size: 0,
    mode: 0o755,
    uid: 0,
    gid: 0,
    nlink: 1,
    mtimeNs: 0n,
    atimeNs: 0n,
    ctimeNs: 0n,
    birthtimeNs: null,
    allocatedSize,
    ino: ROOT_INO,
  };
}
