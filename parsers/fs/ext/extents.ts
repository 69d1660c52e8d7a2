/**
 * Extent trees (Documentation/filesystems/ext4/dynamic.rst, "Extent Tree").
 * The root lives in i_block; deeper nodes fill whole blocks. Every node is
 * checked (magic 0xF30A, entry counts within what the node can hold, depth
 * exactly one less than its parent's), so a node pointing back at itself or
 * at an ancestor is caught as a depth mismatch and a descent never takes
 * more than MAX_DEPTH + 1 steps.
 */
import { CorruptError } from '../../errors.js';
import { crc32cRaw } from '../../source/containers/crc32c.js';
import { Lru } from '../../lru.js';
import { MAX_LOGICAL_BLOCKS, type BlockMapper, type BlockRun } from './mapper.js';

const EXTENT_MAGIC = 0xf30a;
const HEADER_SIZE = 12;
const ENTRY_SIZE = 12;
/** The kernel's EXT4_MAX_EXTENT_DEPTH. */
const MAX_DEPTH = 5;
/** An ee_len above this marks an unwritten (preallocated) extent of ee_len - 32768 blocks. */
const MAX_INIT_LEN = 32768;

export interface ExtentNode {
  depth: number;
  count: number;
  /** First logical block of each entry, ascending. */
  keys: Uint32Array;
  /** Leaves: first physical block of each extent. Index nodes: the child node's block. */
  physical: Float64Array;
  /** Leaves only: block count of each extent. */
  lengths: Uint16Array | null;
  /** Leaves only: 1 where the extent is unwritten. */
  unwritten: Uint8Array | null;
}

export interface ExtentContext {
  ino: number;
  blockSize: number;
  blocksCount: number;
  /** Read one filesystem block of metadata (through the cache). */
  readBlock(block: number, structure: string): Promise<Buffer>;
  /** Parsed nodes shared by all inodes, keyed by physical block. */
  nodeCache: Lru<number, ExtentNode>;
  /** The inode's checksum seed (metadata_csum), or null: each node block read is checked against its tail. */
  csumSeed: number | null;
  /** Reports a node whose checksum fails; it is still used (its entries are checked on their own). */
  warn(message: string): void;
}

export function newExtentNodeCache(): Lru<number, ExtentNode> {
  // Weighted by entries: ~14 bytes each, so this keeps a few MB of parsed nodes.
  return new Lru<number, ExtentNode>(256 * 1024, (n) => n.count + 1);
}

/**
 * Parse one extent node at `buf[0..byteLength)`. `where` is the node's byte
 * offset in the volume (for messages), `structure` names it.
 */
export function parseExtentNode(buf: Buffer, byteLength: number, where: number, structure: string, blocksCount: number): ExtentNode {
  if (byteLength < HEADER_SIZE) throw new CorruptError(structure, where, 'too small for an extent header');
  const magic = buf.readUInt16LE(0);
  if (magic !== EXTENT_MAGIC) throw new CorruptError(structure, where, `bad extent header magic 0x${magic.toString(16)} (expected 0xf30a)`);
  const count = buf.readUInt16LE(2);
  const max = buf.readUInt16LE(4);
  const depth = buf.readUInt16LE(6);
  const capacity = Math.floor((byteLength - HEADER_SIZE) / ENTRY_SIZE);
  if (max > capacity) throw new CorruptError(structure, where, `extent header claims room for ${max} entries, the node holds ${capacity}`);
  if (count > max) throw new CorruptError(structure, where, `${count} extent entries but room for only ${max}`);
  if (depth > MAX_DEPTH) throw new CorruptError(structure, where, `extent tree depth ${depth} exceeds ${MAX_DEPTH}`);
  const keys = new Uint32Array(count);
  const physical = new Float64Array(count);
  const leaf = depth === 0;
  const lengths = leaf ? new Uint16Array(count) : null;
  const unwritten = leaf ? new Uint8Array(count) : null;
  let previousEnd = 0;
  for (let i = 0; i < count; i++) {
    const at = HEADER_SIZE + i * ENTRY_SIZE;
    const key = buf.readUInt32LE(at);
    // Binary search below needs ascending keys; overlapping leaves would map one block twice.
    if (i > 0 && key < previousEnd) throw new CorruptError(structure, where + at, `extent entries out of order at logical block ${key}`);
    keys[i] = key;
    if (leaf) {
      let len = buf.readUInt16LE(at + 4);
      if (len > MAX_INIT_LEN) {
        len -= MAX_INIT_LEN;
        unwritten![i] = 1;
      }
      const start = buf.readUInt16LE(at + 6) * 2 ** 32 + buf.readUInt32LE(at + 8);
      if (len === 0) throw new CorruptError(structure, where + at, `zero-length extent at logical block ${key}`);
      if (key + len > MAX_LOGICAL_BLOCKS) throw new CorruptError(structure, where + at, `extent at logical block ${key} runs past 2^32 blocks`);
      if (start === 0 || start + len > blocksCount) {
        throw new CorruptError(structure, where + at, `extent maps to blocks ${start}..${start + len - 1}, outside the ${blocksCount}-block filesystem`);
      }
      lengths![i] = len;
      physical[i] = start;
      previousEnd = key + len;
    } else {
      const child = buf.readUInt16LE(at + 8) * 2 ** 32 + buf.readUInt32LE(at + 4);
      if (child === 0 || child >= blocksCount) {
        throw new CorruptError(structure, where + at, `extent index points to block ${child}, outside the ${blocksCount}-block filesystem`);
      }
      physical[i] = child;
      previousEnd = key + 1;
    }
  }
  return { depth, count, keys, physical, lengths, unwritten };
}

/** Index of the last key <= value, or -1. */
function lastAtOrBefore(keys: Uint32Array, count: number, value: number): number {
  let lo = 0;
  let hi = count; // first index with key > value lies in [lo, hi]
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

export class ExtentMapper implements BlockMapper {
  /** The leaf used last and the logical range it is responsible for: sequential reads skip the descent. */
  private lastLeaf: { node: ExtentNode; from: number; to: number } | null = null;

  constructor(
    private readonly root: ExtentNode,
    private readonly ctx: ExtentContext,
  ) {}

  async map(logical: number): Promise<BlockRun> {
    let leaf: ExtentNode;
    let bound: number;
    const last = this.lastLeaf;
    if (last && logical >= last.from && logical < last.to) {
      leaf = last.node;
      bound = last.to;
    } else {
      let node = this.root;
      let from = 0;
      bound = MAX_LOGICAL_BLOCKS;
      while (node.depth > 0) {
        const i = lastAtOrBefore(node.keys, node.count, logical);
        if (i < 0) {
          // Before the first child (or an empty index): a hole up to where mapping starts.
          const next = node.count > 0 ? Math.min(node.keys[0], bound) : bound;
          return hole(logical, next);
        }
        from = node.keys[i];
        if (i + 1 < node.count) bound = Math.min(bound, node.keys[i + 1]);
        node = await this.child(node.physical[i], node.depth - 1);
      }
      leaf = node;
      if (node !== this.root) this.lastLeaf = { node, from, to: bound };
    }
    const i = lastAtOrBefore(leaf.keys, leaf.count, logical);
    if (i >= 0) {
      const start = leaf.keys[i];
      const len = leaf.lengths![i];
      if (logical < start + len) {
        return {
          kind: leaf.unwritten![i] ? 'unwritten' : 'data',
          logical,
          physical: leaf.physical[i] + (logical - start),
          count: start + len - logical,
        };
      }
    }
    const next = i + 1 < leaf.count ? Math.min(leaf.keys[i + 1], bound) : bound;
    return hole(logical, next);
  }

  private async child(block: number, expectedDepth: number): Promise<ExtentNode> {
    const structure = `ext extent tree node of inode ${this.ctx.ino}`;
    let node = this.ctx.nodeCache.get(block);
    if (!node) {
      const buf = await this.ctx.readBlock(block, structure);
      node = parseExtentNode(buf, buf.length, block * this.ctx.blockSize, structure, this.ctx.blocksCount);
      if (this.ctx.csumSeed !== null && !extentTailMatches(buf, this.ctx.csumSeed)) {
        this.ctx.warn(`${structure} at byte ${block * this.ctx.blockSize}: checksum mismatch (the node may be damaged)`);
      }
      this.ctx.nodeCache.set(block, node);
    }
    if (node.depth !== expectedDepth) {
      throw new CorruptError(
        structure,
        block * this.ctx.blockSize,
        `node has depth ${node.depth} where ${expectedDepth} was expected (a loop or misdirected pointer in the extent tree)`,
      );
    }
    return node;
  }
}

/** ext4_extent_block_csum: crc32c from the inode's seed over the header and all eh_max slots; the tail follows them. */
function extentTailMatches(buf: Buffer, inodeSeed: number): boolean {
  const tailAt = 12 + 12 * buf.readUInt16LE(4);
  if (tailAt + 4 > buf.length) return true; // no room for a tail: nothing to check (parseExtentNode bounds eh_max)
  return crc32cRaw(inodeSeed, buf, 0, tailAt) === buf.readUInt32LE(tailAt);
}

function hole(logical: number, next: number): BlockRun {
  // At or past MAX_LOGICAL_BLOCKS (a corrupt i_size can claim petabytes) nothing is mapped:
  // the rest is one hole, as in indirect.ts, not one block per call.
  if (next <= logical) return { kind: 'hole', logical, physical: 0, count: Number.MAX_SAFE_INTEGER - logical };
  return { kind: 'hole', logical, physical: 0, count: next - logical };
}
