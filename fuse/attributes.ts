import type { Stats } from 'node:fs';
import type { FsInfo, Stat } from '../parsers/fs/types.js';
import type { FuseStat, FuseStatfs } from './native.js';

/** File type bits of st_mode (<sys/stat.h>). */
export const S_IFMT = {
  socket: 0o140000,
  symlink: 0o120000,
  file: 0o100000,
  block: 0o060000,
  dir: 0o040000,
  char: 0o020000,
  fifo: 0o010000,
} as const;

/**
 * Type bits for a node. 'other' says what it is in words ("fifo", "char
 * device 4,1", "socket"): those are the documented words of the fs layer, not
 * any on-disk format. Anything else is shown as an empty regular file.
 */
function typeBits(stat: Stat): number {
  switch (stat.type) {
    case 'dir':
      return S_IFMT.dir;
    case 'symlink':
      return S_IFMT.symlink;
    case 'file':
      return S_IFMT.file;
    case 'other': {
      const kind = stat.otherKind ?? '';
      if (kind === 'fifo') return S_IFMT.fifo;
      if (kind === 'socket') return S_IFMT.socket;
      if (kind.startsWith('char device')) return S_IFMT.char;
      if (kind.startsWith('block device')) return S_IFMT.block;
      return S_IFMT.file;
    }
  }
}

/** fuse-native takes milliseconds as an unsigned 64-bit number: times before 1970 become 0. */
function ms(ns: bigint): number {
  return ns > 0n ? Number(ns / 1_000_000n) : 0;
}

/** st_blocks counts 512-byte units whatever the filesystem's block size. */
function blocks512(bytes: number): number {
  return Math.ceil(bytes / 512);
}

/** A node of a filesystem inside the image, as stat(2) should see it. */
export function nodeAttributes(stat: Stat, blockSize: number): FuseStat {
  const special = stat.type === 'other' && typeBits(stat) === S_IFMT.file;
  return {
    mode: typeBits(stat) | (stat.mode & 0o7777),
    uid: stat.uid,
    gid: stat.gid,
    // A node we cannot present (a reparse point ...) reads as empty rather than as bytes we do not have.
    size: special ? 0 : stat.size,
    nlink: stat.nlink,
    ino: stat.ino,
    rdev: stat.rdev ?? 0,
    blksize: blockSize,
    blocks: blocks512(stat.allocatedSize),
    atime: ms(stat.atimeNs),
    mtime: ms(stat.mtimeNs),
    ctime: ms(stat.ctimeNs),
  };
}

/**
 * Our own files and folders (disk.img, p2.img, the image's folder): owned
 * like the image file, dated like it, read-only.
 */
export function syntheticAttributes(image: Stats, kind: 'dir' | 'file', size: number, allocated = size): FuseStat {
  return {
    mode: kind === 'dir' ? S_IFMT.dir | 0o555 : S_IFMT.file | 0o444,
    uid: image.uid,
    gid: image.gid,
    size: kind === 'dir' ? 0 : size,
    nlink: kind === 'dir' ? 2 : 1,
    ino: 0,
    rdev: 0,
    blksize: 4096,
    blocks: kind === 'dir' ? 0 : blocks512(allocated),
    atime: image.atimeMs,
    mtime: image.mtimeMs,
    ctime: image.ctimeMs,
  };
}

/** statvfs fields are 32-bit in fuse-native: scale the block size up until the counts fit. */
function fit32(blockSize: number, counts: number[]): { blockSize: number; scale: number } {
  let scale = 1;
  while (Math.max(...counts) / scale > 0xffffffff) scale *= 2;
  return { blockSize: blockSize * scale, scale };
}

export function filesystemStatfs(info: FsInfo): FuseStatfs {
  const { blockSize, scale } = fit32(info.blockSize, [info.totalBlocks, info.freeBlocks]);
  const files = Math.min(info.totalInodes ?? 0, 0xffffffff);
  const ffree = Math.min(info.freeInodes ?? 0, 0xffffffff);
  return {
    bsize: blockSize,
    frsize: blockSize,
    blocks: Math.floor(info.totalBlocks / scale),
    bfree: Math.floor(info.freeBlocks / scale),
    bavail: Math.floor(info.freeBlocks / scale),
    files,
    ffree,
    favail: ffree,
    fsid: 0,
    flag: 0, // the kernel adds ST_RDONLY from the mount flags
    namemax: info.maxNameLength,
  };
}

/** For our own top level: the image's size, nothing free (it is read-only). */
export function imageStatfs(imageBytes: number): FuseStatfs {
  const { blockSize, scale } = fit32(4096, [Math.ceil(imageBytes / 4096)]);
  const blocks = Math.floor(Math.ceil(imageBytes / 4096) / scale);
  return { bsize: blockSize, frsize: blockSize, blocks, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, fsid: 0, flag: 0, namemax: 255 };
}
