import { CorruptError } from '../../errors.js';
import type { ByteSource } from '../../source/types.js';
import { extentsOf } from './attribute-list.js';
import { applyFixups } from './fixup.js';
import { parseFileName, type FileName } from './file-name.js';
import { AttrType, readFileReference, type Attribute, type FileReference } from './record.js';
import { AttributeStream } from './stream.js';
import type { UpCase } from './upcase.js';

/** The directory index of file names is the one named $I30. */
export const I30 = '$I30';
/** No real directory B+ tree is this deep; a deeper walk is a corrupt (looping) tree. */
const MAX_DEPTH = 32;
/** The index $BITMAP has one bit per index block; bound what we load. */
const MAX_BITMAP = 16 * 1024 * 1024;

export interface IndexEntry {
  file: FileReference;
  name: string;
  nameSpace: number;
  /** The whole $FILE_NAME key (sizes, times), decoded only when needed. */
  key: Buffer;
}

/** The full $FILE_NAME of an entry (times and sizes as the directory last recorded them). */
export function entryFileName(entry: IndexEntry): FileName {
  return parseFileName(entry.key)!;
}

/** Parsed index blocks shared by all directories of a volume, least recently used first. */
export class IndexBlockCache {
  private readonly blocks = new Map<string, NodeEntry[]>();
  constructor(private readonly capacity = 512) {}
  get(key: string): NodeEntry[] | undefined {
    const hit = this.blocks.get(key);
    if (hit) {
      this.blocks.delete(key);
      this.blocks.set(key, hit);
    }
    return hit;
  }
  set(key: string, value: NodeEntry[]): void {
    this.blocks.set(key, value);
    if (this.blocks.size > this.capacity) this.blocks.delete(this.blocks.keys().next().value as string);
  }
  clear(): void {
    this.blocks.clear();
  }
}

interface NodeEntry {
  entry: IndexEntry | null;
  /** VCN of the index block holding the entries that sort before this one. */
  child: number | null;
}

export interface IndexContext {
  clusterSize: number;
  totalClusters: number;
  defaultBlockSize: number;
  metadata: ByteSource;
  upcase: UpCase;
  blockCache: IndexBlockCache;
}

/**
 * A directory's $I30 index: a B+ tree whose root lives in $INDEX_ROOT (in the
 * MFT record) and whose other nodes are fixed-size INDX blocks in
 * $INDEX_ALLOCATION, with $BITMAP saying which blocks are in use. Entries are
 * $FILE_NAME keys in NTFS collation order (upper-cased through $UpCase).
 */
export class DirectoryIndex {
  private readonly rootEntries: NodeEntry[];
  private readonly allocation: AttributeStream | null;
  private readonly bitmapAttr: Attribute[];
  private bitmap: Promise<Buffer | null> | null = null;
  private readonly blockSize: number;
  /** Index VCNs count in clusters, or in 512-byte (or "sector") units when blocks are smaller than a cluster. */
  private readonly vcnUnit: number;

  constructor(
    private readonly ctx: IndexContext,
    attributes: Attribute[],
    private readonly recordNumber: number,
  ) {
    const root = extentsOf(attributes, AttrType.indexRoot, I30).find((a) => a.resident);
    const structure = this.structure('$INDEX_ROOT');
    if (!root || !root.resident) throw new CorruptError(structure, 0, 'directory has no resident $I30 index root');
    const v = root.value;
    if (v.length < 0x20) throw new CorruptError(structure, root.offset, `index root of only ${v.length} bytes`);
    const blockSize = v.readUInt32LE(8);
    this.blockSize = blockSize >= 512 && blockSize <= 65536 && (blockSize & (blockSize - 1)) === 0 ? blockSize : ctx.defaultBlockSize;
    const perBlock = v[12];
    this.vcnUnit =
      this.blockSize >= ctx.clusterSize ? ctx.clusterSize : perBlock > 0 && this.blockSize % perBlock === 0 ? this.blockSize / perBlock : 512;
    this.rootEntries = parseNode(v, 0x10, v.length, structure, root.offset);
    const alloc = extentsOf(attributes, AttrType.indexAllocation, I30);
    this.allocation = alloc.length ? new AttributeStream(alloc, ctx.clusterSize, ctx.totalClusters, this.structure('$INDEX_ALLOCATION')) : null;
    this.bitmapAttr = extentsOf(attributes, AttrType.bitmap, I30);
  }

  private structure(what: string): string {
    return `NTFS ${what} of directory record ${this.recordNumber}`;
  }

  /** Bytes used by the index (what ls shows as a directory's size). */
  get allocatedBytes(): number {
    return this.allocation?.size ?? 0;
  }

  /**
   * Every entry in collation order (an in-order walk of the tree). A corrupt
   * or unused index block, or a VCN reached twice (a loop), is skipped and
   * reported in `problems`, so the rest of the directory stays listable.
   */
  async list(): Promise<{ entries: IndexEntry[]; problems: CorruptError[] }> {
    const entries: IndexEntry[] = [];
    const problems: CorruptError[] = [];
    const visited = new Set<number>();
    const walk = async (nodes: NodeEntry[], depth: number): Promise<void> => {
      for (const n of nodes) {
        if (n.child !== null) {
          try {
            await walk(await this.block(n.child, visited, depth + 1), depth + 1);
          } catch (e) {
            if (!(e instanceof CorruptError)) throw e;
            problems.push(e);
          }
        }
        if (n.entry) entries.push(n.entry);
      }
    };
    await walk(this.rootEntries, 0);
    return { entries, problems };
  }

  /**
   * Entries whose name equals `name` ignoring case (per $UpCase), found by
   * descending the tree: only nodes that can hold such names are read.
   */
  async find(name: string): Promise<IndexEntry[]> {
    const found: IndexEntry[] = [];
    const visited = new Set<number>();
    const search = async (nodes: NodeEntry[], depth: number): Promise<void> => {
      for (const n of nodes) {
        const c = n.entry ? this.ctx.upcase.compare(name, n.entry.name) : -1;
        if (c > 0) continue;
        if (c === 0) found.push(n.entry!);
        if (n.child !== null) {
          try {
            await search(await this.block(n.child, visited, depth + 1), depth + 1);
          } catch (e) {
            // Below an equal name only other case variants can hide: with a
            // match in hand, a damaged subtree there need not fail the lookup.
            if (c < 0 || !(e instanceof CorruptError)) throw e;
          }
        }
        if (c < 0) return;
      }
    };
    await search(this.rootEntries, 0);
    return found;
  }

  private async usedBlocks(): Promise<Buffer | null> {
    this.bitmap ??= (async () => {
      if (!this.bitmapAttr.length) return null;
      const s = new AttributeStream(this.bitmapAttr, this.ctx.clusterSize, this.ctx.totalClusters, this.structure('index $BITMAP'));
      return s.readAll(this.ctx.metadata, MAX_BITMAP);
    })();
    return this.bitmap;
  }

  /** Read, verify and parse the index block at `vcn`. */
  private async block(vcn: number, visited: Set<number>, depth: number): Promise<NodeEntry[]> {
    const alloc = this.allocation;
    const structure = this.structure(`index block VCN ${vcn}`);
    if (!alloc) throw new CorruptError(structure, 0, 'entry points to a sub-node but the directory has no $INDEX_ALLOCATION');
    const pos = vcn * this.vcnUnit;
    const where = alloc.physicalOffset(pos) ?? 0;
    if (visited.has(vcn)) throw new CorruptError(structure, where, 'index loop: block reached twice');
    if (depth > MAX_DEPTH) throw new CorruptError(structure, where, `index tree deeper than ${MAX_DEPTH} levels`);
    visited.add(vcn);
    const cacheKey = `${this.recordNumber}:${vcn}`;
    const cached = this.ctx.blockCache.get(cacheKey);
    if (cached) return cached;
    if (!Number.isSafeInteger(pos) || pos % this.blockSize !== 0 || pos + this.blockSize > alloc.size) {
      throw new CorruptError(structure, where, `VCN outside the ${alloc.size}-byte index allocation`);
    }
    const bits = await this.usedBlocks();
    const blockNumber = pos / this.blockSize;
    if (bits && !(blockNumber >> 3 < bits.length && bits[blockNumber >> 3] & (1 << (blockNumber & 7)))) {
      throw new CorruptError(structure, where, 'entry points to an index block marked unused in the index $BITMAP');
    }
    const b = Buffer.alloc(this.blockSize);
    await alloc.read(this.ctx.metadata, b, 0, this.blockSize, pos);
    applyFixups(b, 'INDX', structure, where);
    const ownVcn = b.readBigUInt64LE(0x10);
    if (ownVcn !== BigInt(vcn)) throw new CorruptError(structure, where + 0x10, `block says it is VCN ${ownVcn}`);
    const nodes = parseNode(b, 0x18, b.length, structure, where);
    this.ctx.blockCache.set(cacheKey, nodes);
    return nodes;
  }
}

/**
 * Parse the entries of one index node whose header (entries offset, bytes in
 * use, allocated, flags) sits at `header`. The last entry carries no key,
 * only (maybe) the VCN of the node holding the greatest names.
 */
function parseNode(b: Buffer, header: number, limit: number, structure: string, offset: number): NodeEntry[] {
  if (header + 0x10 > limit) throw new CorruptError(structure, offset + header, 'index node header cut short');
  const start = header + b.readUInt32LE(header);
  const end = Math.min(limit, header + b.readUInt32LE(header + 4));
  if (start < header + 0x10 || start > end) throw new CorruptError(structure, offset + header, `index entries offset ${start - header} invalid`);
  const nodes: NodeEntry[] = [];
  let at = start;
  while (at + 0x10 <= end) {
    const length = b.readUInt16LE(at + 8);
    const keyLength = b.readUInt16LE(at + 10);
    const flags = b.readUInt32LE(at + 12);
    if (length < 0x10 || length & 7 || at + length > end) throw new CorruptError(structure, offset + at, `index entry length ${length} invalid`);
    let child: number | null = null;
    if (flags & 1) {
      if (length < 0x18 + (flags & 2 ? 0 : keyLength)) throw new CorruptError(structure, offset + at, 'index entry too short for its sub-node VCN');
      const vcn = b.readBigUInt64LE(at + length - 8);
      child = vcn > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(vcn);
    }
    if (flags & 2) {
      nodes.push({ entry: null, child });
      return nodes;
    }
    const key = at + 0x10;
    const nameLength = keyLength >= 0x42 ? b[key + 0x40] : 0;
    if (keyLength < 0x42 || 0x10 + keyLength > length || 0x42 + nameLength * 2 > keyLength) {
      throw new CorruptError(structure, offset + at, `index entry key of ${keyLength} bytes is not a valid $FILE_NAME`);
    }
    nodes.push({
      entry: {
        file: readFileReference(b, at),
        name: b.toString('utf16le', key + 0x42, key + 0x42 + nameLength * 2),
        nameSpace: b[key + 0x41],
        key: b.subarray(key, key + keyLength),
      },
      child,
    });
    at += length;
  }
  // No end marker within the bytes in use: keep what was read.
  return nodes;
}
