/**
 * Where the fixed metadata of each block group lives: superblock backups,
 * group descriptor blocks (classic layout or meta_bg), reserved GDT blocks.
 * Mirrors e2fsprogs' ext2fs_bg_has_super / ext2fs_super_and_bgd_loc2.
 */
import { COMPAT, INCOMPAT, RO_COMPAT } from './features.js';
import type { Superblock } from './superblock.js';

export class Layout {
  readonly descPerBlock: number;
  /** Number of blocks holding the group descriptor table. */
  readonly descBlocks: number;
  /** Block holding the primary superblock: 1 with 1 KiB blocks, else 0. */
  readonly superblockBlock: number;
  private readonly metaBg: boolean;

  constructor(
    private readonly sb: Superblock,
    /** 0 to read the primary descriptor table; 1 when the primary superblock was damaged and group 1's copies are used. */
    private readonly copyGroup = 0,
  ) {
    this.descPerBlock = sb.blockSize / sb.descSize;
    this.descBlocks = Math.ceil(sb.groupCount / this.descPerBlock);
    this.superblockBlock = sb.blockSize === 1024 ? 1 : 0;
    this.metaBg = (sb.incompat & INCOMPAT.metaBg) !== 0;
  }

  groupFirstBlock(group: number): number {
    return this.sb.firstDataBlock + group * this.sb.blocksPerGroup;
  }

  /** Blocks in a group (the last group may be short). */
  groupBlocks(group: number): number {
    const first = this.groupFirstBlock(group);
    return Math.max(0, Math.min(this.sb.blocksPerGroup, this.sb.blocksCount - first));
  }

  hasSuperBackup(group: number): boolean {
    if (group === 0) return true;
    if ((this.sb.compat & COMPAT.sparseSuper2) !== 0) {
      return group === this.sb.backupGroups[0] || group === this.sb.backupGroups[1];
    }
    if (group <= 1 || (this.sb.roCompat & RO_COMPAT.sparseSuper) === 0) return true;
    if ((group & 1) === 0) return false;
    return isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7);
  }

  /** Block number of group descriptor block `index` (the primary copy, or group 1's backup copy). */
  descriptorBlock(index: number): number {
    if (!this.metaBg || index < this.sb.firstMetaBg) {
      if (this.copyGroup === 0) return this.superblockBlock + 1 + index;
      return this.groupFirstBlock(this.copyGroup) + 1 + index;
    }
    // meta_bg: the descriptor block for meta group N sits in the first group of
    // that meta group, with copies in its second and last groups.
    const group = index * this.descPerBlock + this.copyGroup;
    if (group === 0) return this.superblockBlock + 1;
    return this.groupFirstBlock(group) + (this.hasSuperBackup(group) ? 1 : 0);
  }

  /**
   * Fixed metadata blocks of one group as [firstBlock, count] runs: the
   * superblock copy, descriptor table copy, reserved GDT blocks, and with
   * meta_bg the descriptor block copies. Bitmaps and inode tables come from the
   * descriptors and are added by the caller.
   */
  fixedMetadata(group: number): [number, number][] {
    const out: [number, number][] = [];
    const first = group === 0 ? 0 : this.groupFirstBlock(group);
    const hasSuper = this.hasSuperBackup(group);
    // Group 0 also covers block 0 (boot block) on 1 KiB filesystems.
    const superEnd = group === 0 ? this.superblockBlock + 1 : first + 1;
    if (hasSuper) out.push([first, superEnd - first]);
    const metaGroup = Math.floor(group / this.descPerBlock);
    if (!this.metaBg || metaGroup < this.sb.firstMetaBg) {
      if (hasSuper) {
        const oldDescBlocks = this.metaBg ? this.sb.firstMetaBg : this.descBlocks + this.sb.reservedGdtBlocks;
        if (oldDescBlocks > 0) out.push([superEnd, oldDescBlocks]);
      }
    } else {
      const inMeta = group % this.descPerBlock;
      if (inMeta === 0 || inMeta === 1 || inMeta === this.descPerBlock - 1) {
        out.push([hasSuper ? superEnd : first, 1]);
      }
    }
    return out;
  }
}

function isPowerOf(n: number, base: number): boolean {
  let x = base;
  while (x < n) x *= base;
  return x === n;
}
