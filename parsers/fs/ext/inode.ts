/**
 * Decoding one on-disk inode (Documentation/filesystems/ext4/inodes.rst) into
 * what the rest of the driver needs: its Stat, its flags and the 60-byte
 * i_block area that holds the extent root, block pointers, a fast symlink
 * target or the start of inline data.
 */
import { CorruptError } from '../../errors.js';
import type { EntryType, Stat } from '../types.js';
import { INCOMPAT, INODE_FLAG, RO_COMPAT } from './features.js';
import type { Superblock } from './superblock.js';

export const GOOD_OLD_INODE_SIZE = 128;
export const I_BLOCK_OFFSET = 0x28;
export const I_BLOCK_SIZE = 60;

export interface Inode {
  ino: number;
  /** Byte offset of the inode in the volume, for messages. */
  offset: number;
  /** i_mode with the type bits. */
  mode: number;
  flags: number;
  size: number;
  /** The raw inode (inode-size bytes): i_block and the in-inode xattr area live here. */
  raw: Buffer;
  /** Where the in-inode extended attributes start (128 + i_extra_isize), or 0 when there is no room. */
  xattrStart: number;
  stat: Stat;
}

const S_IFMT = 0xf000;
const TYPE_NAMES: Record<number, { type: EntryType; kind?: string }> = {
  0x1000: { type: 'other', kind: 'fifo' },
  0x2000: { type: 'other', kind: 'char device' },
  0x4000: { type: 'dir' },
  0x6000: { type: 'other', kind: 'block device' },
  0x8000: { type: 'file' },
  0xa000: { type: 'symlink' },
  0xc000: { type: 'other', kind: 'socket' },
};

export function parseInode(raw: Buffer, ino: number, offset: number, sb: Superblock): Inode {
  const mode = raw.readUInt16LE(0x0);
  if (mode === 0) throw new CorruptError(`ext inode ${ino}`, offset, 'inode is not in use (mode 0)');
  const typeInfo = TYPE_NAMES[mode & S_IFMT];
  const flags = raw.readUInt32LE(0x20);
  const isReg = (mode & S_IFMT) === 0x8000;
  const isDir = (mode & S_IFMT) === 0x4000;
  const sizeHigh = isReg || (isDir && (sb.incompat & INCOMPAT.largedir) !== 0) ? raw.readUInt32LE(0x6c) : 0;
  const size = raw.readUInt32LE(0x4) + sizeHigh * 2 ** 32;
  if (!Number.isSafeInteger(size)) throw new CorruptError(`ext inode ${ino}`, offset, `impossible size ${size}`);

  // The extra fields exist only when i_extra_isize says so and it fits the inode.
  let extraEnd = GOOD_OLD_INODE_SIZE;
  let xattrStart = 0;
  if (raw.length > GOOD_OLD_INODE_SIZE) {
    const extraIsize = raw.readUInt16LE(0x80);
    if (extraIsize % 4 === 0 && GOOD_OLD_INODE_SIZE + extraIsize <= raw.length) {
      extraEnd = GOOD_OLD_INODE_SIZE + extraIsize;
      // In-inode xattrs start with a 4-byte magic right after the extra fields.
      if (extraEnd + 4 <= raw.length) xattrStart = extraEnd;
    }
  }
  const has = (fieldOffset: number) => fieldOffset + 4 <= extraEnd;
  const time = (at: number, extraAt: number) => decodeTime(raw.readInt32LE(at), has(extraAt) ? raw.readUInt32LE(extraAt) : 0);

  // Linux keeps the high halves of uid/gid in osd2; Hurd uses those bytes for other things.
  const linux = sb.creatorOs === 0;
  const uid = raw.readUInt16LE(0x2) + (linux ? raw.readUInt16LE(0x78) * 0x10000 : 0);
  const gid = raw.readUInt16LE(0x18) + (linux ? raw.readUInt16LE(0x7a) * 0x10000 : 0);

  const hugeFile = (sb.roCompat & RO_COMPAT.hugeFile) !== 0;
  const blocks = raw.readUInt32LE(0x1c) + (hugeFile && linux ? raw.readUInt16LE(0x74) * 2 ** 32 : 0);
  let allocatedSize = blocks * (hugeFile && (flags & INODE_FLAG.hugeFile) !== 0 ? sb.blockSize : 512);
  // Inline data lives in the inode and uses no blocks; like the kernel's
  // ext4_file_getattr (regular files only), report its sectors anyway so du,
  // tar and rsync do not take the file for entirely sparse.
  if ((flags & INODE_FLAG.inlineData) !== 0 && isReg) allocatedSize += Math.ceil(size / 512) * 512;

  const stat: Stat = {
    type: typeInfo ? typeInfo.type : 'other',
    size,
    mode: mode & 0o7777,
    uid,
    gid,
    // With dir_nlink a directory past 65000 subdirectories stores 1, meaning
    // "not counted"; the kernel reports that 1 too, and so do we.
    nlink: raw.readUInt16LE(0x1a),
    mtimeNs: time(0x10, 0x88),
    atimeNs: time(0x8, 0x8c),
    ctimeNs: time(0xc, 0x84),
    birthtimeNs: has(0x90) ? decodeTime(raw.readInt32LE(0x90), has(0x94) ? raw.readUInt32LE(0x94) : 0) : null,
    allocatedSize,
    ino,
  };
  if (typeInfo?.kind === 'char device' || typeInfo?.kind === 'block device') {
    const { major, minor } = deviceNumber(raw);
    stat.otherKind = `${typeInfo.kind} ${major},${minor}`;
    stat.rdev = encodeDev(major, minor);
  } else if (typeInfo?.kind) {
    stat.otherKind = typeInfo.kind;
  } else if (!typeInfo) {
    stat.otherKind = `unknown inode type 0o${(mode >> 12).toString(8)}`;
  }
  const flagNames = describeFlags(flags);
  if (flagNames.length) stat.flags = flagNames;

  return {
    ino,
    offset,
    mode,
    flags,
    size,
    raw,
    xattrStart,
    stat,
  };
}

/**
 * Seconds are a signed 32-bit value; the low two bits of the extra word extend
 * them past 2038 (epoch bits), the upper 30 bits are nanoseconds.
 */
function decodeTime(seconds: number, extra: number): bigint {
  const epoch = extra & 3;
  const nanos = Math.min(extra >>> 2, 999_999_999);
  return (BigInt(seconds) + BigInt(epoch) * 4294967296n) * 1_000_000_000n + BigInt(nanos);
}

/** Device numbers: old 8:8 encoding in i_block[0], or the new 12:20 one in i_block[1]. */
function deviceNumber(raw: Buffer): { major: number; minor: number } {
  const old = raw.readUInt32LE(I_BLOCK_OFFSET);
  if (old !== 0) return { major: (old >> 8) & 0xff, minor: old & 0xff };
  const dev = raw.readUInt32LE(I_BLOCK_OFFSET + 4);
  return { major: (dev & 0xfff00) >>> 8, minor: (dev & 0xff) | ((dev >>> 12) & 0xfff00) };
}

/** glibc's makedev() for numbers that fit in 32 bits: what stat(2) reports as st_rdev on Linux. */
function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

function describeFlags(flags: number): string[] {
  const out: string[] = [];
  if (flags & INODE_FLAG.encrypted) out.push('encrypted');
  if (flags & INODE_FLAG.compressed) out.push('compressed');
  if (flags & INODE_FLAG.immutable) out.push('immutable');
  if (flags & INODE_FLAG.appendOnly) out.push('append-only');
  if (flags & INODE_FLAG.inlineData) out.push('inline');
  if (flags & INODE_FLAG.casefold) out.push('casefold');
  if (flags & INODE_FLAG.verity) out.push('verity');
  return out;
}
