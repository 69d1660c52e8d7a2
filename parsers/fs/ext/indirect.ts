/**
 * The ext2/ext3 block map: 12 direct pointers in i_block, then one single,
 * one double and one triple indirect block (Documentation/filesystems/ext4/
 * blockmap.rst). A zero pointer is a hole, at whatever level it appears. The
 * depth is fixed by the format, so a pointer loop cannot make a lookup spin.
 */
import { CorruptError } from '../../errors.js';
import { I_BLOCK_OFFSET } from './inode.js';
import { Lru } from '../../lru.js';
import type { BlockMapper, BlockRun } from './mapper.js';

const DIRECT = 12;

export interface IndirectContext {
  ino: number;
  /** Byte offset of the inode, for messages about i_block. */
  inodeOffset: number;
  blockSize: number;
  blocksCount: number;
  readBlock(block: number, structure: string): Promise<Buffer>;
  /** Parsed indirect blocks shared by all inodes, keyed by physical block. */
  blockCache: Lru<number, Uint32Array>;
}

export function newIndirectBlockCache(): Lru<number, Uint32Array> {
  // Weighted by pointers (4 bytes each): about 4 MB of indirect blocks.
  return new Lru<number, Uint32Array>(1024 * 1024, (a) => a.length);
}

export class IndirectMapper implements BlockMapper {
  private readonly perBlock: number;
  /** i_block's 15 pointers. */
  private readonly top: Uint32Array;

  constructor(iBlock: Buffer, private readonly ctx: IndirectContext) {
    this.perBlock = ctx.blockSize / 4;
    this.top = new Uint32Array(15);
    for (let i = 0; i < 15; i++) this.top[i] = iBlock.readUInt32LE(i * 4);
  }

  async map(logical: number): Promise<BlockRun> {
    if (logical < DIRECT) {
      return this.scan(this.top, logical, DIRECT, logical, this.ctx.inodeOffset + I_BLOCK_OFFSET, 'i_block');
    }
    let rel = logical - DIRECT;
    let span = this.perBlock;
    for (let level = 1; level <= 3; level++) {
      if (rel < span) return this.descend(this.top[DIRECT + level - 1], level, rel, logical);
      rel -= span;
      span *= this.perBlock;
    }
    // Past what a block map can address: nothing is there.
    return { kind: 'hole', logical, physical: 0, count: Number.MAX_SAFE_INTEGER - logical };
  }

  /** Resolve `rel` within the subtree under `pointer`, which covers perBlock^level blocks. */
  private async descend(pointer: number, level: number, rel: number, logical: number): Promise<BlockRun> {
    let childSpan = this.perBlock ** (level - 1);
    for (;;) {
      if (pointer === 0) {
        // A missing indirect block: its whole remaining subtree is a hole.
        const subtree = childSpan * this.perBlock;
        return { kind: 'hole', logical, physical: 0, count: subtree - rel };
      }
      const entries = await this.indirectBlock(pointer);
      const index = Math.floor(rel / childSpan);
      if (level === 1) {
        return this.scan(entries, index, this.perBlock, logical, pointer * this.ctx.blockSize, `indirect block ${pointer}`);
      }
      pointer = entries[index];
      rel -= index * childSpan;
      level--;
      childSpan /= this.perBlock;
    }
  }

  /** A run starting at entries[index]: physically consecutive pointers, or consecutive zeros. */
  private scan(entries: Uint32Array, index: number, end: number, logical: number, where: number, what: string): BlockRun {
    const first = entries[index];
    let n = 1;
    if (first === 0) {
      while (index + n < end && entries[index + n] === 0) n++;
      return { kind: 'hole', logical, physical: 0, count: n };
    }
    while (index + n < end && entries[index + n] === first + n) n++;
    if (first + n > this.ctx.blocksCount) {
      throw new CorruptError(
        `ext block map of inode ${this.ctx.ino} (${what})`,
        where + index * 4,
        `points to block ${first + n - 1}, outside the ${this.ctx.blocksCount}-block filesystem`,
      );
    }
    return { kind: 'data', logical, physical: first, count: n };
  }

  private async indirectBlock(block: number): Promise<Uint32Array> {
    const hit = this.ctx.blockCache.get(block);
    if (hit) return hit;
    const structure = `ext indirect block of inode ${this.ctx.ino}`;
    if (block >= this.ctx.blocksCount) {
      throw new CorruptError(structure, block * this.ctx.blockSize, `block ${block} is outside the ${this.ctx.blocksCount}-block filesystem`);
    }
    const buf = await this.ctx.readBlock(block, structure);
    const entries = new Uint32Array(this.perBlock);
    for (let i = 0; i < this.perBlock; i++) entries[i] = buf.readUInt32LE(i * 4);
    this.ctx.blockCache.set(block, entries);
    return entries;
  }
}
