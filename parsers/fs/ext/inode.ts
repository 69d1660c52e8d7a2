/**
 * Decoding one on-disk inode (Documentation/filesystems/ext4/inodes.rst) into
 * what the rest of the driver needs: its Stat, its flags and the 60-byte
 * i_block area that holds the extent root, block pointers, a fast symlink
 * target or the start of inline data.
 */
import { CorruptError } from '../../errors.js';
import type { EntryType, Stat } from '../types.js';
import { INCOMPAT, INODE_FLAG, RO_COMPAT } from './features.js';
import { crc32cRaw, crc32cRawU32 } from '../../source/containers/crc32c.js';
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
  /**
   * With metadata_csum: where the checksums of this inode's own blocks
   * (extent tree nodes, directory blocks) start: the filesystem seed run
   * over the inode number and i_generation. Null without checksums.
   */
  csumSeed: number | null;
}

const S_IFMT = 0xf000;
const TYPE_NAMES: Partial<Record<number, { type: EntryType; kind?: string }>> = {
  0x1000: { type: 'other', kind: 'fifo' },
  0x2000: { type: 'other', kind: 'char device' },
  0x4000: { type: 'dir' },
  0x6000: { type: 'other', kind: 'block device' },
  0x8000: { type: 'file' },
  0xa000: { type: 'symlink' },
  0xc000: { type: 'other', kind: 'socket' },
};

/** Little-endian reads without Buffer's method calls and range checks: this runs once per inode of every listing. */
const u16 = (b: Buffer, at: number) => b[at] | (b[at + 1] << 8);
const u32 = (b: Buffer, at: number) => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x1000000;
const i32 = (b: Buffer, at: number) => b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24);

/**
 * An inode's Stat. The four times are BigInt nanoseconds decoded from the
 * raw inode only when read: a listing reads one of them, and decoding all four
 * for every inode was a fifth of the CPU of listing a 10,000-entry directory
 * (with the garbage it leaves). Every other field is a plain own property.
 * Like any class with accessors, `{ ...stat }` does not copy the times.
 */
class ExtStat implements Stat {
  declare otherKind?: string;
  declare rdev?: number;
  declare flags?: string[];
  readonly #raw: Buffer;
  /** End of the fields i_extra_isize covers (128 when none). */
  readonly #extraEnd: number;

  constructor(
    public type: EntryType,
    public size: number,
    public mode: number,
    public uid: number,
    public gid: number,
    public nlink: number,
    public allocatedSize: number,
    public ino: number,
    raw: Buffer,
    extraEnd: number,
  ) {
    this.#raw = raw;
    this.#extraEnd = extraEnd;
  }

  /** i_*time at `at`, with its extra word at `extraAt` when the inode has it. */
  #time(at: number, extraAt: number): bigint {
    return decodeTime(i32(this.#raw, at), extraAt + 4 <= this.#extraEnd ? u32(this.#raw, extraAt) : 0);
  }

  get mtimeNs(): bigint {
    return this.#time(0x10, 0x88);
  }

  get atimeNs(): bigint {
    return this.#time(0x8, 0x8c);
  }

  get ctimeNs(): bigint {
    return this.#time(0xc, 0x84);
  }

  get birthtimeNs(): bigint | null {
    return 0x90 + 4 <= this.#extraEnd ? this.#time(0x90, 0x94) : null;
  }
}

export function parseInode(raw: Buffer, ino: number, offset: number, sb: Superblock): Inode {
  if (raw.length < GOOD_OLD_INODE_SIZE) throw new CorruptError(`ext inode ${ino}`, offset, `inode of ${raw.length} bytes is too small`);
  const mode = u16(raw, 0x0);
  if (mode === 0) throw new CorruptError(`ext inode ${ino}`, offset, 'inode is not in use (mode 0)');
  const fmt = mode & S_IFMT;
  const typeInfo = TYPE_NAMES[fmt];
  const flags = u32(raw, 0x20);
  const isReg = fmt === 0x8000;
  const isDir = fmt === 0x4000;
  const sizeHigh = isReg || (isDir && (sb.incompat & INCOMPAT.largedir) !== 0) ? u32(raw, 0x6c) : 0;
  const size = u32(raw, 0x4) + sizeHigh * 2 ** 32;
  if (!Number.isSafeInteger(size)) throw new CorruptError(`ext inode ${ino}`, offset, `impossible size ${size}`);

  // The extra fields exist only when i_extra_isize says so and it fits the inode.
  let extraEnd = GOOD_OLD_INODE_SIZE;
  let xattrStart = 0;
  if (raw.length > GOOD_OLD_INODE_SIZE) {
    const extraIsize = u16(raw, 0x80);
    if (extraIsize % 4 === 0 && GOOD_OLD_INODE_SIZE + extraIsize <= raw.length) {
      extraEnd = GOOD_OLD_INODE_SIZE + extraIsize;
      // In-inode xattrs start with a 4-byte magic right after the extra fields.
      if (extraEnd + 4 <= raw.length) xattrStart = extraEnd;
    }
  }

  // Linux keeps the high halves of uid/gid in osd2; Hurd uses those bytes for other things.
  const linux = sb.creatorOs === 0;
  const uid = u16(raw, 0x2) + (linux ? u16(raw, 0x78) * 0x10000 : 0);
  const gid = u16(raw, 0x18) + (linux ? u16(raw, 0x7a) * 0x10000 : 0);

  const hugeFile = (sb.roCompat & RO_COMPAT.hugeFile) !== 0;
  const blocks = u32(raw, 0x1c) + (hugeFile && linux ? u16(raw, 0x74) * 2 ** 32 : 0);
  let allocatedSize = blocks * (hugeFile && (flags & INODE_FLAG.hugeFile) !== 0 ? sb.blockSize : 512);
  // Inline data lives in the inode and uses no blocks; like the kernel's
  // ext4_file_getattr (regular files only), report its sectors anyway so du,
  // tar and rsync do not take the file for entirely sparse.
  if ((flags & INODE_FLAG.inlineData) !== 0 && isReg) allocatedSize += Math.ceil(size / 512) * 512;

  const stat = new ExtStat(
    typeInfo ? typeInfo.type : 'other',
    size,
    mode & 0o7777,
    uid,
    gid,
    // With dir_nlink a directory past 65000 subdirectories stores 1, meaning
    // "not counted"; the kernel reports that 1 too, and so do we.
    u16(raw, 0x1a),
    allocatedSize,
    ino,
    raw,
    extraEnd,
  );
  if (typeInfo?.kind === 'char device' || typeInfo?.kind === 'block device') {
    const { major, minor } = deviceNumber(raw);
    stat.otherKind = `${typeInfo.kind} ${major},${minor}`;
    stat.rdev = encodeDev(major, minor);
  } else if (typeInfo?.kind) {
    stat.otherKind = typeInfo.kind;
  } else if (!typeInfo) {
    stat.otherKind = `unknown inode type 0o${(mode >> 12).toString(8)}`;
  }
  if (flags & SHOWN_FLAGS) stat.flags = describeFlags(flags);
  // Shown, not refused: a flipped bit in a timestamp should not hide a file
  // from someone recovering it (the kernel refuses it; debugfs shows it).
  const csumSeed = sb.csumSeed === null ? null : inodeSeed(sb.csumSeed, ino, u32(raw, 0x64));
  if (csumSeed !== null && linux && !inodeChecksumMatches(raw, csumSeed, extraEnd)) {
    stat.flags = [...(stat.flags ?? []), 'checksum-mismatch'];
  }

  return {
    ino,
    offset,
    mode,
    flags,
    size,
    raw,
    xattrStart,
    stat,
    csumSeed,
  };
}

const I_CHECKSUM_LO = 0x7c;
const I_CHECKSUM_HI = 0x82;

/** ext4's ei->i_csum_seed: the filesystem seed run over the inode number and generation (little-endian). */
function inodeSeed(fsSeed: number, ino: number, generation: number): number {
  return crc32cRawU32(crc32cRawU32(fsSeed, ino), generation);
}

/** Reused by inodeChecksumMatches (synchronous, so one is enough). */
let scratch = Buffer.alloc(256);

/**
 * ext4_inode_csum_verify: crc32c from the filesystem seed over the inode
 * number, i_generation, then the whole inode with both checksum halves read
 * as zero. The high half exists when i_extra_isize covers it; without it
 * only the low 16 bits are stored and compared.
 */
function inodeChecksumMatches(raw: Buffer, inodeSeed: number, extraEnd: number): boolean {
  const hasHigh = raw.length > GOOD_OLD_INODE_SIZE && I_CHECKSUM_HI + 2 <= extraEnd;
  const stored = u16(raw, I_CHECKSUM_LO) + (hasHigh ? u16(raw, I_CHECKSUM_HI) * 0x10000 : 0);
  // One pass over a copy with the checksum halves zeroed: a single long run keeps the
  // four-bytes-at-a-time loop busy (five short runs cost about twice as much).
  if (scratch.length < raw.length) scratch = Buffer.alloc(raw.length);
  raw.copy(scratch, 0, 0, raw.length);
  scratch[I_CHECKSUM_LO] = scratch[I_CHECKSUM_LO + 1] = 0;
  if (hasHigh) scratch[I_CHECKSUM_HI] = scratch[I_CHECKSUM_HI + 1] = 0;
  const crc = crc32cRaw(inodeSeed, scratch, 0, raw.length);
  return (hasHigh ? crc : crc & 0xffff) === stored;
}

/**
 * Seconds are a signed 32-bit value; the low two bits of the extra word extend
 * them past 2038 (epoch bits), the upper 30 bits are nanoseconds.
 */
function decodeTime(seconds: number, extra: number): bigint {
  const epoch = extra & 3;
  const nanos = Math.min(extra >>> 2, 999_999_999);
  // seconds + epoch * 2^32 stays below 2^35: exact as a double, so one BigInt conversion.
  return BigInt(seconds + epoch * 4294967296) * 1_000_000_000n + BigInt(nanos);
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

const SHOWN_FLAGS =
  INODE_FLAG.encrypted | INODE_FLAG.compressed | INODE_FLAG.immutable | INODE_FLAG.appendOnly | INODE_FLAG.inlineData | INODE_FLAG.casefold | INODE_FLAG.verity;

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
