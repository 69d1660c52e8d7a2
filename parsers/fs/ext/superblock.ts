import { CorruptError } from '../../errors.js';
import { crc32cRaw } from '../../source/containers/crc32c.js';
import { classify, COMPAT, INCOMPAT, RO_COMPAT } from './features.js';

/** The primary superblock lives 1024 bytes into the volume, whatever the block size. */
export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const EXT_MAGIC = 0xef53;

/** The superblock fields this reader uses, already validated and combined (lo/hi halves). */
export interface Superblock {
  type: 'ext2' | 'ext3' | 'ext4';
  inodesCount: number;
  blocksCount: number;
  freeBlocks: number;
  freeInodes: number;
  firstDataBlock: number;
  blockSize: number;
  /** Blocks per allocation cluster (bigalloc); 1 otherwise. Bitmap bits count clusters. */
  clusterBlocks: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
  inodeSize: number;
  revLevel: number;
  creatorOs: number;
  compat: number;
  incompat: number;
  roCompat: number;
  uuid: Buffer;
  volumeName: Buffer;
  reservedGdtBlocks: number;
  journalInode: number;
  descSize: number;
  firstMetaBg: number;
  backupGroups: [number, number];
  groupCount: number;
  /**
   * With metadata_csum: the seed every metadata checksum starts from
   * (crc32c of the UUID, or s_checksum_seed with the csum_seed feature);
   * null without checksums.
   */
  csumSeed: number | null;
  /** With metadata_csum: whether the superblock's own checksum matched; null without checksums. */
  checksumOk: boolean | null;
}

/** Cheap, non-throwing check used by probe: magic plus the geometry sanity checks open() relies on. */
export function looksLikeExt(sb: Buffer): boolean {
  try {
    return validate(sb) === null;
  } catch {
    return false;
  }
}

/** Why the superblock bytes cannot be an ext superblock, or null when they can. */
function validate(sb: Buffer): string | null {
  if (sb.length < SUPERBLOCK_SIZE) return 'too short';
  if (sb.readUInt16LE(0x38) !== EXT_MAGIC) return 'bad magic (expected 0xEF53)';
  const logBlock = sb.readUInt32LE(0x18);
  // 1 KiB .. 64 KiB blocks, as the kernel allows.
  if (logBlock > 6) return `block size 2^(10+${logBlock}) out of range`;
  const blockSize = 1024 << logBlock;
  const logCluster = sb.readUInt32LE(0x1c);
  const bigalloc = (sb.readUInt32LE(0x64) & RO_COMPAT.bigalloc) !== 0;
  if (bigalloc && (logCluster < logBlock || logCluster > logBlock + 16)) return `cluster size log ${logCluster} out of range`;
  const blocksPerGroup = sb.readUInt32LE(0x20);
  const clustersPerGroup = bigalloc ? sb.readUInt32LE(0x24) : blocksPerGroup;
  // One bitmap block describes the whole group.
  if (clustersPerGroup === 0 || clustersPerGroup > blockSize * 8) return `${clustersPerGroup} clusters per group`;
  if (blocksPerGroup === 0) return 'zero blocks per group';
  const inodesPerGroup = sb.readUInt32LE(0x28);
  if (inodesPerGroup === 0 || inodesPerGroup > blockSize * 8) return `${inodesPerGroup} inodes per group`;
  if (sb.readUInt32LE(0x0) === 0) return 'zero inodes';
  const blocksLo = sb.readUInt32LE(0x4);
  const is64 = (sb.readUInt32LE(0x60) & INCOMPAT.is64bit) !== 0;
  const blocksHi = is64 ? sb.readUInt32LE(0x150) : 0;
  if (blocksLo === 0 && blocksHi === 0) return 'zero blocks';
  const firstData = sb.readUInt32LE(0x14);
  if (firstData > 1) return `first data block ${firstData}`;
  const rev = sb.readUInt32LE(0x4c);
  if (rev >= 1) {
    const inodeSize = sb.readUInt16LE(0x58);
    if (inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) return `inode size ${inodeSize}`;
  }
  if (is64) {
    const descSize = sb.readUInt16LE(0xfe);
    if (descSize !== 0 && (descSize < 32 || descSize > 1024 || (descSize & (descSize - 1)) !== 0)) return `descriptor size ${descSize}`;
  }
  return null;
}

export function parseSuperblock(sb: Buffer, offset = SUPERBLOCK_OFFSET): Superblock {
  const problem = validate(sb);
  if (problem) throw new CorruptError('ext superblock', offset, problem);
  const compat = sb.readUInt32LE(0x5c);
  const incompat = sb.readUInt32LE(0x60);
  const roCompat = sb.readUInt32LE(0x64);
  const is64 = (incompat & INCOMPAT.is64bit) !== 0;
  const blockSize = 1024 << sb.readUInt32LE(0x18);
  const bigalloc = (roCompat & RO_COMPAT.bigalloc) !== 0;
  const clusterBlocks = bigalloc ? 2 ** (sb.readUInt32LE(0x1c) - sb.readUInt32LE(0x18)) : 1;
  const revLevel = sb.readUInt32LE(0x4c);
  const hi = (offset: number) => (is64 ? sb.readUInt32LE(offset) * 2 ** 32 : 0);
  const blocksCount = sb.readUInt32LE(0x4) + hi(0x150);
  const firstDataBlock = sb.readUInt32LE(0x14);
  const blocksPerGroup = sb.readUInt32LE(0x20);
  const descSizeField = sb.readUInt16LE(0xfe);
  const descSize = is64 && descSizeField >= 64 ? descSizeField : 32;
  const groupCount = Math.ceil(Math.max(0, blocksCount - firstDataBlock) / blocksPerGroup);
  if (!Number.isSafeInteger(blocksCount) || groupCount === 0) {
    throw new CorruptError('ext superblock', offset, `impossible block count ${blocksCount}`);
  }
  return {
    type: classify(compat, incompat, roCompat),
    inodesCount: sb.readUInt32LE(0x0),
    blocksCount,
    freeBlocks: sb.readUInt32LE(0xc) + hi(0x158),
    freeInodes: sb.readUInt32LE(0x10),
    firstDataBlock,
    blockSize,
    clusterBlocks,
    blocksPerGroup,
    inodesPerGroup: sb.readUInt32LE(0x28),
    inodeSize: revLevel >= 1 ? sb.readUInt16LE(0x58) : 128,
    revLevel,
    creatorOs: sb.readUInt32LE(0x48),
    compat,
    incompat,
    roCompat,
    uuid: Buffer.from(sb.subarray(0x68, 0x78)),
    volumeName: Buffer.from(sb.subarray(0x78, 0x88)),
    reservedGdtBlocks: (compat & COMPAT.resizeInode) !== 0 ? sb.readUInt16LE(0xce) : 0,
    journalInode: (compat & COMPAT.hasJournal) !== 0 ? sb.readUInt32LE(0xe0) : 0,
    descSize,
    firstMetaBg: sb.readUInt32LE(0x104),
    backupGroups: [sb.readUInt32LE(0x24c), sb.readUInt32LE(0x250)],
    groupCount,
    ...checksums(sb, incompat, roCompat),
  };
}

const S_CHECKSUM = 0x3fc;

function checksums(sb: Buffer, incompat: number, roCompat: number): Pick<Superblock, 'csumSeed' | 'checksumOk'> {
  if ((roCompat & RO_COMPAT.metadataCsum) === 0) return { csumSeed: null, checksumOk: null };
  const csumSeed = (incompat & INCOMPAT.csumSeed) !== 0 ? sb.readUInt32LE(0x270) : crc32cRaw(0xffffffff, sb, 0x68, 0x78);
  return { csumSeed, checksumOk: crc32cRaw(0xffffffff, sb, 0, S_CHECKSUM) === sb.readUInt32LE(S_CHECKSUM) };
}

export function formatUuid(bytes: Buffer): string | null {
  if (bytes.every((b) => b === 0)) return null;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export function formatLabel(bytes: Buffer): string | null {
  const end = bytes.indexOf(0);
  const label = bytes.subarray(0, end === -1 ? bytes.length : end).toString('utf8');
  return label.length > 0 ? label : null;
}

/**
 * Where mke2fs puts the first backup superblock (group 1) for each block
 * size, as e2fsck -b looks for it: block 8193 with 1 KiB blocks, otherwise
 * block (8 x block size), i.e. blocks-per-group of a default filesystem.
 */
export function backupSuperblockOffsets(volumeSize: number): number[] {
  const out: number[] = [];
  for (let log = 0; log <= 6; log++) {
    const blockSize = 1024 << log;
    const block = blockSize === 1024 ? 8193 : blockSize * 8;
    const offset = block * blockSize;
    if (offset + SUPERBLOCK_SIZE <= volumeSize) out.push(offset);
  }
  return out;
}

/** A backup copy is a valid superblock that says it lives in a group other than 0. */
export function looksLikeBackupSuperblock(sb: Buffer): boolean {
  return looksLikeExt(sb) && sb.readUInt16LE(0x5a) >= 1;
}
