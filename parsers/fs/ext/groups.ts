import { CorruptError } from '../../errors.js';
import { readExact } from '../../source/read.js';
import type { ByteSource } from '../../source/types.js';
import { INCOMPAT, RO_COMPAT } from './features.js';
import type { Layout } from './layout.js';
import { Lru } from '../../lru.js';
import type { Superblock } from './superblock.js';

export interface GroupDescriptor {
  group: number;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  /** The block bitmap was never written: only the group's metadata is in use. */
  blockUninit: boolean;
  /** Byte offset of the descriptor in the volume, for messages. */
  offset: number;
}

const BG_BLOCK_UNINIT = 0x2;

/**
 * The group descriptor table, read lazily one descriptor block at a time
 * through the metadata cache: a 16 TiB filesystem has 131072 groups and most
 * operations touch a handful.
 */
export class GroupDescriptors {
  private readonly cache = new Lru<number, GroupDescriptor>(16384);
  private readonly is64: boolean;
  private readonly uninitMeaningful: boolean;
  /** Blocks an inode table occupies. */
  readonly inodeTableBlocks: number;

  constructor(
    private readonly source: ByteSource,
    private readonly sb: Superblock,
    private readonly layout: Layout,
  ) {
    this.is64 = (sb.incompat & INCOMPAT.is64bit) !== 0 && sb.descSize >= 64;
    // BLOCK_UNINIT is only honoured when descriptors are checksummed (kernel rule).
    this.uninitMeaningful = (sb.roCompat & (RO_COMPAT.gdtCsum | RO_COMPAT.metadataCsum)) !== 0;
    this.inodeTableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
  }

  async get(group: number): Promise<GroupDescriptor> {
    const hit = this.cache.get(group);
    if (hit) return hit;
    if (group < 0 || group >= this.sb.groupCount) {
      throw new CorruptError('ext group descriptor table', 0, `group ${group} does not exist (${this.sb.groupCount} groups)`);
    }
    const index = Math.floor(group / this.layout.descPerBlock);
    const offset = this.layout.descriptorBlock(index) * this.sb.blockSize + (group % this.layout.descPerBlock) * this.sb.descSize;
    const raw = await readExact(this.source, offset, this.is64 ? 64 : 32, `ext group descriptor ${group}`);
    const hi = (at: number) => (this.is64 ? raw.readUInt32LE(at) * 2 ** 32 : 0);
    const desc: GroupDescriptor = {
      group,
      blockBitmap: raw.readUInt32LE(0x0) + hi(0x20),
      inodeBitmap: raw.readUInt32LE(0x4) + hi(0x24),
      inodeTable: raw.readUInt32LE(0x8) + hi(0x28),
      blockUninit: this.uninitMeaningful && (raw.readUInt16LE(0x12) & BG_BLOCK_UNINIT) !== 0,
      offset,
    };
    if (desc.inodeTable === 0 || desc.inodeTable + this.inodeTableBlocks > this.sb.blocksCount) {
      throw new CorruptError(
        `ext group descriptor ${group}`,
        offset,
        `inode table at block ${desc.inodeTable} lies outside the ${this.sb.blocksCount}-block filesystem`,
      );
    }
    this.cache.set(group, desc);
    return desc;
  }
}
