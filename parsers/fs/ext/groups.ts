import { CorruptError } from '../../errors.js';
import { readExact } from '../../source/read.js';
import type { ByteSource } from '../../source/types.js';
import { crc32cRaw, crc32cRawU32, crc32cRawZeros } from '../../source/containers/crc32c.js';
import { INCOMPAT, RO_COMPAT } from './features.js';
import { Layout } from './layout.js';
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
  /** Read from group 1's copy because the primary failed its checksum: its bitmap checksums are stale. */
  fromBackup: boolean;
  /**
   * With metadata_csum: the block bitmap's stored checksum (bg_block_bitmap_csum,
   * 32 bits when the descriptor holds the high half, else 16). Null without.
   */
  blockBitmapChecksum: { stored: number; bits: 16 | 32 } | null;
}

const BG_BLOCK_UNINIT = 0x2;
/** bg_checksum: 16 bits, after the 32-byte descriptor's first 30. */
const BG_CHECKSUM = 0x1e;
/** bg_block_bitmap_csum_lo / _hi (the high half only in 64-byte descriptors). */
const BG_BLOCK_BITMAP_CSUM_LO = 0x18;
const BG_BLOCK_BITMAP_CSUM_HI = 0x38;

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

  /** Group 1's copy of the table, for descriptors whose checksum fails (null when there is none to use). */
  private readonly backup: Layout | null;

  constructor(
    private readonly source: ByteSource,
    private readonly sb: Superblock,
    private readonly layout: Layout,
    /** Reports a descriptor whose checksum fails (and which copy is used instead). */
    private readonly warn: (message: string) => void = () => {},
    /** Which copy `layout` reads: 1 when the filesystem was opened from its backup superblock. */
    copyGroup = 0,
  ) {
    this.is64 = (sb.incompat & INCOMPAT.is64bit) !== 0 && sb.descSize >= 64;
    // BLOCK_UNINIT is only honoured when descriptors are checksummed (kernel rule).
    this.uninitMeaningful = (sb.roCompat & (RO_COMPAT.gdtCsum | RO_COMPAT.metadataCsum)) !== 0;
    this.inodeTableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
    this.backup = copyGroup === 0 && sb.groupCount > 1 && layout.hasSuperBackup(1) && this.checksummed ? new Layout(sb, 1) : null;
  }

  private get checksummed(): boolean {
    return (this.sb.roCompat & (RO_COMPAT.gdtCsum | RO_COMPAT.metadataCsum)) !== 0;
  }

  async get(group: number): Promise<GroupDescriptor> {
    const hit = this.cache.get(group);
    if (hit) return hit;
    if (group < 0 || group >= this.sb.groupCount) {
      throw new CorruptError('ext group descriptor table', 0, `group ${group} does not exist (${this.sb.groupCount} groups)`);
    }
    let { raw, offset } = await this.read(this.layout, group);
    let fromBackup = false;
    if (this.checksummed && !this.checksumMatches(raw, group)) {
      // Like e2fsck: the copy in group 1 still says where this group's bitmaps and inode table are.
      const copy = this.backup ? await this.read(this.backup, group).catch(() => null) : null;
      if (copy && this.checksumMatches(copy.raw, group)) {
        this.warn(`ext group descriptor ${group} at byte ${offset}: checksum mismatch; using group 1's copy at byte ${copy.offset}`);
        ({ raw, offset } = copy);
        fromBackup = true;
      } else {
        this.warn(`ext group descriptor ${group} at byte ${offset}: checksum mismatch (no good copy in group 1); using it anyway`);
      }
    }
    const hi = (at: number) => (this.is64 ? raw.readUInt32LE(at) * 2 ** 32 : 0);
    const desc: GroupDescriptor = {
      group,
      blockBitmap: raw.readUInt32LE(0x0) + hi(0x20),
      inodeBitmap: raw.readUInt32LE(0x4) + hi(0x24),
      inodeTable: raw.readUInt32LE(0x8) + hi(0x28),
      // A backup's flags date from mkfs or the last e2fsck: BLOCK_UNINIT there may be stale, so read the bitmap.
      blockUninit: !fromBackup && this.uninitMeaningful && (raw.readUInt16LE(0x12) & BG_BLOCK_UNINIT) !== 0,
      offset,
      fromBackup,
      blockBitmapChecksum:
        this.sb.csumSeed === null
          ? null
          : raw.length >= BG_BLOCK_BITMAP_CSUM_HI + 2
            ? { stored: raw.readUInt16LE(BG_BLOCK_BITMAP_CSUM_LO) + raw.readUInt16LE(BG_BLOCK_BITMAP_CSUM_HI) * 0x10000, bits: 32 }
            : { stored: raw.readUInt16LE(BG_BLOCK_BITMAP_CSUM_LO), bits: 16 },
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

  private async read(layout: Layout, group: number): Promise<{ raw: Buffer; offset: number }> {
    const index = Math.floor(group / layout.descPerBlock);
    const offset = layout.descriptorBlock(index) * this.sb.blockSize + (group % layout.descPerBlock) * this.sb.descSize;
    // The whole descriptor: its checksum covers all of s_desc_size.
    const raw = await readExact(this.source, offset, this.is64 ? this.sb.descSize : 32, `ext group descriptor ${group}`);
    return { raw, offset };
  }

  /**
   * ext4_group_desc_csum: with metadata_csum, the low 16 bits of crc32c from
   * the filesystem seed over the group number and the descriptor (checksum
   * read as zero); with gdt_csum, crc16 from the UUID the same way.
   */
  private checksumMatches(raw: Buffer, group: number): boolean {
    const stored = raw.readUInt16LE(BG_CHECKSUM);
    let crc: number;
    if (this.sb.csumSeed !== null) {
      crc = crc32cRawU32(this.sb.csumSeed, group);
      crc = crc32cRaw(crc, raw, 0, BG_CHECKSUM);
      crc = crc32cRawZeros(crc, 2);
      crc = crc32cRaw(crc, raw, BG_CHECKSUM + 2, raw.length);
    } else {
      const le = Buffer.alloc(4);
      le.writeUInt32LE(group);
      crc = crc16(crc16(crc16(0xffff, this.sb.uuid), le), raw.subarray(0, BG_CHECKSUM));
      if (raw.length > BG_CHECKSUM + 2) crc = crc16(crc, raw.subarray(BG_CHECKSUM + 2));
    }
    return (crc & 0xffff) === stored;
  }
}

/** Linux lib/crc16.c: CRC-16 (polynomial 0x8005, reflected), no inversion, as gdt_csum uses it. */
const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xa001 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

function crc16(crc: number, data: Uint8Array): number {
  let c = crc & 0xffff;
  for (let i = 0; i < data.length; i++) c = (c >>> 8) ^ CRC16_TABLE[(c ^ data[i]) & 0xff];
  return c;
}
