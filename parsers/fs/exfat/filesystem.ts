import { CorruptError, InvalidArgumentError, IsADirectoryError, NotADirectoryError } from '../../errors.js';
import { CachedSource } from '../../source/cache.js';
import type { ByteRange, ByteSource } from '../../source/types.js';
import type { DirEntry, FilePiece, FileSystem, FsInfo, FsNode, Stat } from '../types.js';
import { formatSerial } from '../fat/bpb.js';
import { ClusterRuns, clusterOffset, mapRuns, readRuns, type ChainOwner, type ClusterHeap } from '../fat/cluster-runs.js';
import { readDirectoryRuns, type DirectoryBytes } from '../fat/directory-bytes.js';
import { DirectoryIndex } from '../fat/directory-index.js';
import { DOS_EPOCH_NS, dosTimestampNs } from '../fat/dos-time.js';
import { ATTR_DIRECTORY, entryStat, rootDirectoryStat } from '../fat/entry-stat.js';
import { FatTable } from '../fat/fat-table.js';
import { Lru } from '../../lru.js';
import { RangeCollector } from '../fat/ranges.js';
import { readBootRegion, type ExfatGeometry } from './boot.js';
import { parseExfatDirectory, type AllocationEntry, type ExfatFileRecord, type ExfatTime, type SkippedSet } from './entry-sets.js';

/** exFAT directories are at most 256 MiB (spec §6.2.2). */
const MAX_DIR_BYTES = 256 * 1024 * 1024;
/** Bitmap bytes read per step when counting free clusters or listing allocated ranges. */
const BITMAP_CHUNK = 1024 * 1024;

export interface ExfatNode extends FsNode {
  readonly stat: Stat;
  readonly isRoot: boolean;
  readonly path: string;
  readonly entryOffset: number;
  readonly firstCluster: number;
  readonly noFatChain: boolean;
  readonly dataLength: number;
  readonly validDataLength: number;
}

interface RootMetadata {
  label: string | null;
  bitmap: AllocationEntry | null;
  upcase: AllocationEntry | null;
}

/** A parsed directory, with what parsing left out and (for the root) the volume's metadata entries. */
type ExfatListing = DirectoryIndex<ExfatNode> & { skipped: SkippedSet[]; rootMeta: RootMetadata };

export class ExfatFileSystem implements FileSystem<ExfatNode> {
  private readonly heap: ClusterHeap;
  private readonly listings = new Lru<string, ExfatListing>(64);
  private readonly runsCache = new Lru<number, ClusterRuns>(32 * 1024 * 1024);
  private readonly rootNode: ExfatNode;
  private rootMeta: RootMetadata = { label: null, bitmap: null, upcase: null };
  private freeClusters = 0;

  private constructor(
    private readonly volume: ByteSource,
    private readonly meta: CachedSource,
    readonly geometry: ExfatGeometry,
    private readonly fat: FatTable,
    private readonly warnings: string[],
  ) {
    this.heap = { heapOffset: geometry.heapOffset, clusterSize: geometry.clusterSize };
    this.rootNode = {
      stat: rootDirectoryStat(geometry.clusterSize),
      isRoot: true,
      path: '/',
      entryOffset: 0,
      firstCluster: geometry.rootCluster,
      noFatChain: false,
      dataLength: 0,
      validDataLength: 0,
    };
  }

  static async open(volume: ByteSource): Promise<ExfatFileSystem> {
    const geometry = await readBootRegion(volume);
    const meta = new CachedSource(volume, 64 * 1024, 128);
    const fat = new FatTable(volume, { bits: 32, exfat: true, offset: geometry.activeFatOffset, clusterCount: geometry.clusterCount });
    const fs = new ExfatFileSystem(volume, meta, geometry, fat, [...geometry.warnings]);
    try {
      const root = await fs.listing(fs.rootNode);
      fs.rootMeta = root.rootMeta;
      if (root.skipped.length) fs.warnings.push(`root directory: ${root.skipped.length} damaged entry set(s) skipped`);
    } catch (e) {
      if (!(e instanceof CorruptError)) throw e;
      fs.warnings.push(`root directory unreadable: ${e.message}`);
    }
    fs.freeClusters = await fs.countFreeClusters();
    return fs;
  }

  info(): FsInfo {
    const g = this.geometry;
    return {
      type: 'exfat',
      label: this.rootMeta.label,
      uuid: formatSerial(g.serial),
      blockSize: g.clusterSize,
      totalBlocks: g.clusterCount,
      freeBlocks: this.freeClusters,
      totalInodes: null,
      freeInodes: null,
      maxNameLength: 255,
      ...(this.warnings.length ? { warnings: [...this.warnings] } : {}),
    };
  }

  async root(): Promise<ExfatNode> {
    return this.rootNode;
  }

  async lookup(dir: ExfatNode, name: string): Promise<ExfatNode | null> {
    return (await this.listing(dir)).find(name);
  }

  async readdir(dir: ExfatNode): Promise<DirEntry<ExfatNode>[]> {
    return [...(await this.listing(dir)).entries];
  }

  /** Bytes past ValidDataLength were never written: they read as zeros whatever the clusters hold. */
  async read(node: ExfatNode, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (node.stat.type === 'dir') throw new IsADirectoryError(node.path);
    const size = node.dataLength;
    if (position >= size || length <= 0) return 0;
    const want = Math.min(length, size - position);
    const fromDisk = position < node.validDataLength ? Math.min(want, node.validDataLength - position) : 0;
    if (fromDisk > 0) {
      const runs = await this.fileRuns(node);
      await readRuns(this.volume, this.heap, runs, buffer, offset, fromDisk, position, this.owner(node));
    }
    if (fromDisk < want) buffer.fill(0, offset + fromDisk, offset + want);
    return want;
  }

  /** Bytes past the valid data length read as zeros: a piece with no place on disk. */
  async mapFile(node: ExfatNode, position: number, length: number): Promise<FilePiece[] | null> {
    if (node.stat.type !== 'file') return null;
    const want = Math.min(length, node.dataLength - position);
    if (want <= 0) return [];
    const fromDisk = position < node.validDataLength ? Math.min(want, node.validDataLength - position) : 0;
    const pieces: FilePiece[] = fromDisk > 0 ? mapRuns(this.heap, await this.fileRuns(node), fromDisk, position, this.owner(node)) : [];
    if (fromDisk < want) pieces.push({ at: null, length: want - fromDisk });
    return pieces;
  }

  async readlink(node: ExfatNode): Promise<string> {
    throw new InvalidArgumentError(`${node.path}: not a symbolic link (exFAT has none)`);
  }

  /**
   * Both boot regions, all FATs, and every cluster the allocation bitmap marks
   * in use (which covers the bitmap, up-case table and directories; they are
   * added explicitly too in case the bitmap forgot them).
   */
  async allocatedRanges(): Promise<ByteRange[]> {
    const g = this.geometry;
    const ranges = new RangeCollector(this.volume.size);
    ranges.add(0, 24 * g.bytesPerSector);
    ranges.add(g.fatRegionOffset, g.fatRegionBytes);
    const cs = g.clusterSize;
    await this.scanBitmap((cluster, used) => {
      if (used) ranges.add(clusterOffset(this.heap, cluster), cs);
    });
    for (const entry of [this.rootMeta.bitmap, this.rootMeta.upcase]) {
      if (!entry) continue;
      const runs = await this.metadataRuns(entry, 'allocation bitmap or up-case table');
      for (let i = 0; i < runs.length; i++) {
        const r = runs.run(i);
        ranges.add(clusterOffset(this.heap, r.first), r.count * cs);
      }
    }
    const rootRuns = await this.fat.chain(g.rootCluster, Math.ceil(MAX_DIR_BYTES / cs), this.owner(this.rootNode));
    for (let i = 0; i < rootRuns.length; i++) {
      const r = rootRuns.run(i);
      ranges.add(clusterOffset(this.heap, r.first), r.count * cs);
    }
    return ranges.result();
  }

  async close(): Promise<void> {
    this.listings.clear();
    this.runsCache.clear();
    this.fat.clearCache();
    await this.meta.close();
  }

  private owner(node: ExfatNode): ChainOwner {
    return node.isRoot
      ? { name: '/', structure: 'exFAT boot sector (root directory cluster)', entryOffset: 96 }
      : { name: node.path, structure: 'exFAT directory entry set', entryOffset: node.entryOffset };
  }

  /**
   * The clusters of a file or directory: one run for NoFatChain (checked to lie
   * inside the heap), else the FAT chain. Only the clusters that `bytes` needs
   * are looked at.
   */
  private async runsFor(node: ExfatNode, bytes: number): Promise<ClusterRuns> {
    const cs = this.geometry.clusterSize;
    const needed = Math.ceil(bytes / cs);
    if (node.firstCluster === 0) {
      throw new CorruptError('exFAT directory entry set', node.entryOffset, `${node.path}: ${bytes} bytes of data but no first cluster`);
    }
    if (!node.noFatChain) return this.fat.chain(node.firstCluster, needed, this.owner(node));
    const last = node.firstCluster + needed - 1;
    if (node.firstCluster < 2 || last > this.fat.lastCluster) {
      throw new CorruptError(
        'exFAT directory entry set',
        node.entryOffset,
        `${node.path}: contiguous clusters ${node.firstCluster}..${last} are outside the cluster heap (2..${this.fat.lastCluster})`,
      );
    }
    const runs = new ClusterRuns();
    runs.append(node.firstCluster, needed);
    return runs;
  }

  private async fileRuns(node: ExfatNode): Promise<ClusterRuns> {
    const cached = this.runsCache.get(node.entryOffset);
    if (cached) return cached;
    const runs = await this.runsFor(node, node.validDataLength);
    this.runsCache.set(node.entryOffset, runs, runs.bytes);
    return runs;
  }

  /** Clusters of the bitmap or up-case table: a FAT chain, or contiguous when the FAT leaves them unchained. */
  private async metadataRuns(entry: AllocationEntry, what: string): Promise<ClusterRuns> {
    const cs = this.geometry.clusterSize;
    const needed = Math.ceil(entry.dataLength / cs);
    const owner = { name: what, structure: 'exFAT root directory entry', entryOffset: 0 };
    if (needed === 0) return new ClusterRuns();
    if (this.fat.isDataCluster(entry.firstCluster) && (await this.fat.entry(entry.firstCluster)) === 0) {
      const last = entry.firstCluster + needed - 1;
      if (last > this.fat.lastCluster) throw new CorruptError(owner.structure, 0, `${what} runs past the cluster heap`);
      const runs = new ClusterRuns();
      runs.append(entry.firstCluster, needed);
      return runs;
    }
    return this.fat.chain(entry.firstCluster, needed, owner);
  }

  private async listing(dir: ExfatNode): Promise<ExfatListing> {
    if (dir.stat.type !== 'dir') throw new NotADirectoryError(dir.path);
    const key = dir.isRoot ? 'root' : `${dir.entryOffset}`;
    const cached = this.listings.get(key);
    if (cached) return cached;
    const { bytes, offsetOf } = await this.directoryBytes(dir);
    const parsed = parseExfatDirectory(bytes, offsetOf);
    const prefix = dir.isRoot ? '' : dir.path;
    const index: ExfatListing = Object.assign(
      new DirectoryIndex<ExfatNode>(parsed.records.map((r) => ({ name: r.name, node: this.nodeFor(r, `${prefix}/${r.name}`) }))),
      {
        skipped: parsed.skipped,
        rootMeta: {
          label: parsed.label,
          bitmap: parsed.bitmaps.find((b) => (b.flags & 1) === this.geometry.activeFat) ?? parsed.bitmaps[0] ?? null,
          upcase: parsed.upcase,
        },
      },
    );
    this.listings.set(key, index);
    return index;
  }

  private async directoryBytes(dir: ExfatNode): Promise<DirectoryBytes> {
    const cs = this.geometry.clusterSize;
    let runs: ClusterRuns;
    if (dir.isRoot) {
      runs = await this.fat.chain(dir.firstCluster, Math.ceil(MAX_DIR_BYTES / cs), this.owner(dir));
    } else {
      if (dir.dataLength > MAX_DIR_BYTES) {
        throw new CorruptError('exFAT directory entry set', dir.entryOffset, `${dir.path}: directory of ${dir.dataLength} bytes exceeds the 256 MiB limit`);
      }
      if (dir.dataLength === 0) return { bytes: Buffer.alloc(0), offsetOf: () => 0 };
      runs = await this.runsFor(dir, dir.dataLength);
    }
    // In pieces of at most 1 MiB: clusters can be 32 MiB.
    return readDirectoryRuns(this.meta, this.heap, runs, `exFAT directory ${dir.path}`, BITMAP_CHUNK);
  }

  private nodeFor(r: ExfatFileRecord, path: string): ExfatNode {
    const isDir = (r.attributes & ATTR_DIRECTORY) !== 0;
    const cs = this.geometry.clusterSize;
    const mtime = exfatTimeNs(r.modified) ?? DOS_EPOCH_NS;
    const stat = entryStat({
      attributes: r.attributes,
      size: r.dataLength,
      allocatedSize: r.allocationPossible ? Math.ceil(r.dataLength / cs) * cs : 0,
      ino: r.entryOffset,
      mtimeNs: mtime,
      atimeNs: exfatTimeNs(r.accessed) ?? mtime,
      birthtimeNs: exfatTimeNs(r.created),
    });
    if (!isDir && r.validDataLength < r.dataLength) stat.flags.push('unwritten-tail');
    return {
      stat,
      isRoot: false,
      path,
      entryOffset: r.entryOffset,
      firstCluster: r.firstCluster,
      noFatChain: r.noFatChain,
      dataLength: r.dataLength,
      validDataLength: r.validDataLength,
    };
  }

  private async countFreeClusters(): Promise<number> {
    try {
      let free = 0;
      await this.scanBitmap((_, used) => {
        if (!used) free++;
      });
      return free;
    } catch (e) {
      if (!(e instanceof CorruptError)) throw e;
      this.warnings.push(`allocation bitmap unreadable, free space estimated from PercentInUse: ${e.message}`);
      const pct = this.geometry.percentInUse;
      return pct === null ? 0 : Math.round((this.geometry.clusterCount * (100 - pct)) / 100);
    }
  }

  /** Visit every cluster's bit in the active allocation bitmap, reading it in 1 MiB steps. */
  private async scanBitmap(visit: (cluster: number, used: boolean) => void): Promise<void> {
    const bitmap = this.rootMeta.bitmap;
    if (!bitmap) throw new CorruptError('exFAT root directory', 0, 'no allocation bitmap entry in the root directory');
    const count = this.geometry.clusterCount;
    const bytesNeeded = Math.ceil(count / 8);
    if (bitmap.dataLength < bytesNeeded) {
      throw new CorruptError('exFAT allocation bitmap entry', 0, `bitmap of ${bitmap.dataLength} bytes cannot cover ${count} clusters`);
    }
    const runs = await this.metadataRuns({ ...bitmap, dataLength: bytesNeeded }, 'allocation bitmap');
    const owner = { name: 'allocation bitmap', structure: 'exFAT allocation bitmap entry', entryOffset: 0 };
    const buf = Buffer.allocUnsafe(BITMAP_CHUNK);
    for (let pos = 0; pos < bytesNeeded; pos += BITMAP_CHUNK) {
      const n = Math.min(BITMAP_CHUNK, bytesNeeded - pos);
      await readRuns(this.volume, this.heap, runs, buf, 0, n, pos, owner);
      for (let i = 0; i < n; i++) {
        const byte = buf[i];
        const firstBit = (pos + i) * 8;
        for (let bit = 0; bit < 8 && firstBit + bit < count; bit++) visit(firstBit + bit + 2, ((byte >> bit) & 1) === 1);
      }
    }
  }
}

/** exFAT times are local time plus a UtcOffset; when the offset is marked valid, convert to UTC, else take the time as UTC. */
export function exfatTimeNs(t: ExfatTime): bigint | null {
  let offsetMinutes = 0;
  if (t.utcOffset & 0x80) {
    const units = t.utcOffset & 0x7f;
    // A signed 7-bit count of 15-minute units (-48..+56 in practice).
    offsetMinutes = (units >= 0x40 ? units - 0x80 : units) * 15;
  }
  return dosTimestampNs(t.stamp >>> 16, t.stamp & 0xffff, t.centiseconds, offsetMinutes);
}
