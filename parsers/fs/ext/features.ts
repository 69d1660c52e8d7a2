/**
 * ext2/3/4 feature flags (Documentation/filesystems/ext4/super.rst) and the
 * decisions that hang on them: what we call the filesystem, and which
 * incompatible features we can read.
 */

export const COMPAT = {
  hasJournal: 0x4,
  resizeInode: 0x10,
  dirIndex: 0x20,
  sparseSuper2: 0x200,
} as const;

export const INCOMPAT = {
  compression: 0x1,
  filetype: 0x2,
  recover: 0x4,
  journalDev: 0x8,
  metaBg: 0x10,
  extents: 0x40,
  is64bit: 0x80,
  mmp: 0x100,
  flexBg: 0x200,
  eaInode: 0x400,
  dirdata: 0x1000,
  csumSeed: 0x2000,
  largedir: 0x4000,
  inlineData: 0x8000,
  encrypt: 0x10000,
  casefold: 0x20000,
} as const;

export const RO_COMPAT = {
  sparseSuper: 0x1,
  largeFile: 0x2,
  btreeDir: 0x4,
  hugeFile: 0x8,
  gdtCsum: 0x10,
  dirNlink: 0x20,
  extraIsize: 0x40,
  bigalloc: 0x200,
  metadataCsum: 0x400,
} as const;

/** Incompatible features whose on-disk effects this reader understands. */
const READABLE_INCOMPAT =
  INCOMPAT.filetype |
  // A journal that still needs replaying: we read the filesystem as it was
  // last checkpointed, like debugfs does. Recent writes may be missing.
  INCOMPAT.recover |
  INCOMPAT.metaBg |
  INCOMPAT.extents |
  INCOMPAT.is64bit |
  INCOMPAT.mmp |
  INCOMPAT.flexBg |
  // Large xattr values live in separate inodes; we never read xattrs there.
  INCOMPAT.eaInode |
  INCOMPAT.csumSeed |
  INCOMPAT.largedir |
  INCOMPAT.inlineData |
  // Only individual inodes are encrypted; those are refused one by one.
  INCOMPAT.encrypt |
  // Names are stored as written; we list them as stored.
  INCOMPAT.casefold;

const INCOMPAT_NAMES: Record<number, string> = {
  [INCOMPAT.compression]: 'compression',
  [INCOMPAT.journalDev]: 'journal_dev',
  [INCOMPAT.dirdata]: 'dirdata',
};

/** Names of incompatible features present that we cannot read; empty when all is well. */
export function unreadableIncompatFeatures(incompat: number): string[] {
  const out: string[] = [];
  for (let bit = 0; bit < 32; bit++) {
    const flag = 2 ** bit;
    if ((incompat & flag) !== 0 && (READABLE_INCOMPAT & flag) === 0) {
      out.push(INCOMPAT_NAMES[flag] ?? `unknown incompat 0x${flag.toString(16)}`);
    }
  }
  return out;
}

/** Features an ext3 driver could mount; anything beyond these makes it ext4 (blkid's rule). */
const EXT3_INCOMPAT = INCOMPAT.filetype | INCOMPAT.recover | INCOMPAT.metaBg;
const EXT3_RO_COMPAT = RO_COMPAT.sparseSuper | RO_COMPAT.largeFile | RO_COMPAT.btreeDir;

export function classify(compat: number, incompat: number, roCompat: number): 'ext2' | 'ext3' | 'ext4' {
  if ((incompat & ~EXT3_INCOMPAT) !== 0 || (roCompat & ~EXT3_RO_COMPAT) !== 0) return 'ext4';
  if ((compat & COMPAT.hasJournal) !== 0) return 'ext3';
  return 'ext2';
}

/** Inode flags (i_flags) that change how an inode's data is read or shown. */
export const INODE_FLAG = {
  compressed: 0x4,
  immutable: 0x10,
  appendOnly: 0x20,
  encrypted: 0x800,
  htreeIndex: 0x1000,
  hugeFile: 0x40000,
  extents: 0x80000,
  verity: 0x100000,
  eaInode: 0x200000,
  inlineData: 0x10000000,
  casefold: 0x40000000,
} as const;
