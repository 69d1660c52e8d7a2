/**
 * The volume byte ranges in use, for restore: every group's fixed metadata
 * (superblock and descriptor copies, reserved GDT blocks, bitmaps, inode
 * table), the blocks its bitmap marks in use, and the journal. Groups whose
 * bitmap was never initialised (BLOCK_UNINIT) hold only their metadata.
 * When a group's descriptor or bitmap cannot be read, the whole group is
 * counted as in use: copying too much is safe, copying too little is not.
 */
import { LooplessError } from '../../errors.js';
import { crc32cRaw } from '../../source/containers/crc32c.js';
import type { ByteRange, ByteSource } from '../../source/types.js';
import type { GroupDescriptors } from './groups.js';
import type { Layout } from './layout.js';
import type { Superblock } from './superblock.js';

export interface AllocationInputs {
  sb: Superblock;
  layout: Layout;
  groups: GroupDescriptors;
  /** The uncached volume: bitmaps are read once, so they need not fill the cache. */
  source: ByteSource;
  journalRuns(): Promise<[number, number][]>;
  /** Reports a group copied whole because its bitmap cannot be trusted. */
  warn(message: string): void;
}

export async function computeAllocatedRanges(inp: AllocationInputs): Promise<ByteRange[]> {
  const { sb, layout, groups, source } = inp;
  const bs = sb.blockSize;
  const volumeBlocks = Math.min(sb.blocksCount, Math.floor(source.size / bs));
  // Flat [start, count, start, count, ...] block runs: far lighter than objects on big volumes.
  const runs: number[] = [];
  const add = (start: number, count: number) => {
    if (count > 0 && start < volumeBlocks) runs.push(start, Math.min(count, volumeBlocks - start));
  };
  const bitmap = Buffer.alloc(bs);

  for (let g = 0; g < sb.groupCount; g++) {
    const first = layout.groupFirstBlock(g);
    if (first >= volumeBlocks) break;
    const groupBlocks = layout.groupBlocks(g);
    for (const [start, count] of layout.fixedMetadata(g)) add(start, count);
    let desc;
    try {
      desc = await groups.get(g);
    } catch (e) {
      if (!(e instanceof LooplessError)) throw e;
      add(first, groupBlocks);
      continue;
    }
    add(desc.blockBitmap, 1);
    add(desc.inodeBitmap, 1);
    add(desc.inodeTable, groups.inodeTableBlocks);
    if (desc.blockUninit) continue;
    if (desc.blockBitmap === 0 || desc.blockBitmap >= volumeBlocks || desc.fromBackup) {
      // No bitmap, or one whose checksum (in the damaged primary descriptor) cannot be checked.
      add(first, groupBlocks);
      continue;
    }
    const n = await source.read(bitmap, 0, bs, desc.blockBitmap * bs);
    if (n !== bs) {
      add(first, groupBlocks);
      continue;
    }
    if (desc.blockBitmapChecksum && !bitmapChecksumMatches(bitmap, sb, desc.blockBitmapChecksum)) {
      inp.warn(`ext block bitmap of group ${g} at byte ${desc.blockBitmap * bs}: checksum mismatch; the whole group counts as in use`);
      add(first, groupBlocks);
      continue;
    }
    addBitmapRuns(bitmap, Math.ceil(groupBlocks / sb.clusterBlocks), first, sb.clusterBlocks, add);
  }

  try {
    for (const [start, count] of await inp.journalRuns()) add(start, count);
  } catch (e) {
    // A damaged journal inode: the bitmaps above still cover its blocks.
    if (!(e instanceof LooplessError)) throw e;
  }
  return mergeToBytes(runs, bs, source.size);
}

/** ext4_block_bitmap_csum_verify: crc32c from the filesystem seed over clusters-per-group bits of the bitmap. */
function bitmapChecksumMatches(bitmap: Buffer, sb: Superblock, expected: { stored: number; bits: 16 | 32 }): boolean {
  const bytes = Math.min(bitmap.length, Math.floor(sb.blocksPerGroup / sb.clusterBlocks / 8));
  const crc = crc32cRaw(sb.csumSeed!, bitmap, 0, bytes);
  return (expected.bits === 32 ? crc : crc & 0xffff) === expected.stored;
}

/**
 * Turn set bits of a block bitmap into block runs. Whole 32-bit words of
 * zeros or ones are handled at once; only mixed words are walked bit by bit.
 */
function addBitmapRuns(
  bitmap: Buffer,
  clusters: number,
  firstBlock: number,
  clusterBlocks: number,
  add: (start: number, count: number) => void,
): void {
  let runStart = -1;
  const close = (end: number) => {
    if (runStart >= 0) add(firstBlock + runStart * clusterBlocks, (end - runStart) * clusterBlocks);
    runStart = -1;
  };
  let c = 0;
  while (c < clusters) {
    if ((c & 31) === 0 && c + 32 <= clusters) {
      const word = bitmap.readUInt32LE(c >>> 3);
      if (word === 0) {
        close(c);
        c += 32;
        continue;
      }
      if (word === 0xffffffff) {
        if (runStart < 0) runStart = c;
        c += 32;
        continue;
      }
    }
    const set = (bitmap[c >>> 3] >> (c & 7)) & 1;
    if (set) {
      if (runStart < 0) runStart = c;
    } else {
      close(c);
    }
    c++;
  }
  close(clusters);
}

function mergeToBytes(runs: number[], bs: number, volumeSize: number): ByteRange[] {
  const order: number[] = [];
  for (let i = 0; i < runs.length; i += 2) order.push(i);
  order.sort((a, b) => runs[a] - runs[b]);
  const out: ByteRange[] = [];
  let curStart = -1;
  let curEnd = -1;
  for (const i of order) {
    const start = runs[i];
    const end = start + runs[i + 1];
    if (curStart >= 0 && start <= curEnd) {
      if (end > curEnd) curEnd = end;
      continue;
    }
    if (curStart >= 0) out.push(toBytes(curStart, curEnd, bs, volumeSize));
    curStart = start;
    curEnd = end;
  }
  if (curStart >= 0) out.push(toBytes(curStart, curEnd, bs, volumeSize));
  return out;
}

function toBytes(startBlock: number, endBlock: number, bs: number, volumeSize: number): ByteRange {
  const start = startBlock * bs;
  const end = Math.min(endBlock * bs, volumeSize);
  return { start, length: end - start };
}
