import { CorruptError, InvalidArgumentError, IsADirectoryError, LooplessError, NotADirectoryError } from '../../errors.js';
import { CachedSource } from '../../source/cache.js';
import { readExact } from '../../source/read.js';
import type { ByteRange, ByteSource } from '../../source/types.js';
import type { DirEntry, FilePiece, FileSystem, FsInfo, FsNode, Stat } from '../types.js';
import { findBackupBootSector, formatSerial, parseBpb, type FatGeometry } from './bpb.js';
import { clusterOffset, mapRuns, readRuns, type ChainOwner, type ClusterHeap, type ClusterRuns } from './cluster-runs.js';
import { parseFatDirectory, type FatDirRecord } from './dir-entries.js';
import { readDirectoryRuns, type DirectoryBytes } from './directory-bytes.js';
import { ATTR_DIRECTORY, entryStat, rootDirectoryStat } from './entry-stat.js';
import { DOS_EPOCH_NS, dosTimestampNs } from './dos-time.js';
import { FatTable } from './fat-table.js';
import { DirectoryIndex } from './directory-index.js';
import { Lru } from '../../lru.js';
import { RangeCollector } from './ranges.js';

/** FAT directories are limited to 65536 entries of 32 bytes (fatgen103; Linux enforces the same). */
const MAX_DIR_BYTES = 65536 * 32;
/** Scanning a FAT for the free count when FSInfo has none is bounded: past this, the count is reported unknown (0). */
const MAX_FAT_SCAN_BYTES = 256 * 1024 * 1024;

export interface FatNode extends FsNode {
  readonly stat: Stat;
  /** First cluster of the file or directory (0: none; the FAT12/16 root lives outside the heap). */
  readonly firstCluster: number;
  readonly isRoot: boolean;
  /** Path from the root, for messages. */
  readonly path: string;
  readonly entryOffset: number;
}

export class FatFileSystem implements FileSystem<FatNode> {
  private readonly heap: ClusterHeap;
  private readonly listings = new Lru<string, DirectoryIndex<FatNode>>(64);
  /** Cluster runs of recently read files, keyed by directory entry offset; budget in bytes. */
  private readonly runsCache = new Lru<number, ClusterRuns>(32 * 1024 * 1024);
  private readonly rootNode: FatNode;

  private constructor(
    private readonly volume: ByteSource,
    private readonly meta: CachedSource,
    readonly geometry: FatGeometry,
    private readonly fat: FatTable,
    private label: string | null,
    private freeClusters: number,
    private readonly warnings: string[],
  ) {
    this.heap = { heapOffset: geometry.heapOffset, clusterSize: geometry.clusterSize };
    this.rootNode = {
      stat: rootDirectoryStat(geometry.type === 'fat32' ? geometry.clusterSize : geometry.rootDirBytes),
      firstCluster: geometry.rootCluster,
      isRoot: true,
      path: '/',
      entryOffset: 0,
    };
  }

  static async open(volume: ByteSource): Promise<FatFileSystem> {
    const meta = new CachedSource(volume, 64 * 1024, 128);
    const sector = await readExact(meta, 0, Math.min(512, volume.size), 'FAT boot sector (BPB)');
    let geometry: FatGeometry;
    const bootWarnings: string[] = [];
    try {
      geometry = parseBpb(sector, volume.size);
    } catch (primaryError) {
      // A FAT32 volume keeps a copy of its boot sector in sector 6 (TestDisk's "Backup BS"); fsck.fat gives up here.
      const backup = await findBackupBootSector(volume);
      if (!backup) throw primaryError;
      geometry = backup.geometry;
      bootWarnings.push(`${(primaryError as Error).message}; using the backup boot sector at byte ${backup.offset}`);
    }
    const fat = new FatTable(volume, {
      bits: geometry.type === 'fat12' ? 12 : geometry.type === 'fat16' ? 16 : 32,
      exfat: false,
      offset: geometry.activeFatOffset,
      clusterCount: geometry.clusterCount,
    });
    const warnings = [...bootWarnings, ...geometry.warnings];
    const fs = new FatFileSystem(volume, meta, geometry, fat, geometry.bpbLabel, 0, warnings);
    // The label entry in the root directory is what Windows shows and writes; the BPB copy is often stale.
    try {
      const root = await fs.listing(fs.rootNode);
      if (root.label !== null) fs.label = root.label;
    } catch (e) {
      if (!(e instanceof CorruptError)) throw e;
      warnings.push(`root directory unreadable: ${e.message}`);
    }
    fs.freeClusters = await fs.countFreeClusters();
    return fs;
  }

  info(): FsInfo {
    const g = this.geometry;
    return {
      type: g.type,
      label: this.label,
      uuid: g.serial === null ? null : formatSerial(g.serial),
      blockSize: g.clusterSize,
      totalBlocks: g.clusterCount,
      freeBlocks: this.freeClusters,
      totalInodes: null,
      freeInodes: null,
      maxNameLength: 255,
      // The live list: warnings found later (FAT copies that disagree) reach Disk.warnings too.
      warnings: this.warnings,
    };
  }

  async root(): Promise<FatNode> {
    return this.rootNode;
  }

  async lookup(dir: FatNode, name: string): Promise<FatNode | null> {
    return (await this.listing(dir)).find(name);
  }

  async readdir(dir: FatNode): Promise<DirEntry<FatNode>[]> {
    return [...(await this.listing(dir)).entries];
  }

  async read(node: FatNode, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (node.stat.type === 'dir') throw new IsADirectoryError(node.path);
    const size = node.stat.size;
    if (position >= size || length <= 0) return 0;
    const want = Math.min(length, size - position);
    const runs = await this.fileRuns(node);
    return readRuns(this.volume, this.heap, runs, buffer, offset, want, position, this.owner(node));
  }

  async mapFile(node: FatNode, position: number, length: number): Promise<FilePiece[] | null> {
    if (node.stat.type !== 'file') return null;
    const want = Math.min(length, node.stat.size - position);
    if (want <= 0) return [];
    return mapRuns(this.heap, await this.fileRuns(node), want, position, this.owner(node));
  }

  async readlink(node: FatNode): Promise<string> {
    throw new InvalidArgumentError(`${node.path}: not a symbolic link (FAT has none)`);
  }

  /**
   * Everything before the cluster heap (boot sector, reserved sectors, all
   * FATs, the FAT12/16 root directory) plus every cluster whose FAT entry is in
   * use. Bad clusters hold nothing worth copying and are left out. With
   * mirrored FATs, a cluster any copy marks in use counts: when the copies
   * disagree, one is damaged, and copying too much is safe where copying too
   * little loses data.
   */
  async allocatedRanges(): Promise<ByteRange[]> {
    const g = this.geometry;
    const ranges = new RangeCollector(this.volume.size);
    ranges.add(0, g.heapOffset);
    const cs = g.clusterSize;
    const used = (value: number) => {
      const kind = this.fat.classify(value);
      return kind !== 'free' && kind !== 'bad';
    };
    const marked = new Uint8Array(Math.ceil((g.clusterCount + 2) / 8));
    await this.fat.scan((cluster, value) => {
      if (!used(value)) return;
      marked[cluster >>> 3] |= 1 << (cluster & 7);
      ranges.add(clusterOffset(this.heap, cluster), cs);
    });
    if (!g.mirrored) return ranges.result();
    const bits = g.type === 'fat12' ? 12 : g.type === 'fat16' ? 16 : 32;
    for (let copy = 0; copy < g.fatCount; copy++) {
      const offset = (g.reservedSectors + copy * g.fatSectors) * g.bytesPerSector;
      if (offset === g.activeFatOffset) continue;
      const table = new FatTable(this.volume, { bits, exfat: false, offset, clusterCount: g.clusterCount });
      let extra = 0;
      try {
        await table.scan((cluster, value) => {
          if (!used(value) || marked[cluster >>> 3] & (1 << (cluster & 7))) return;
          marked[cluster >>> 3] |= 1 << (cluster & 7);
          ranges.add(clusterOffset(this.heap, cluster), cs);
          extra++;
        });
      } catch (e) {
        // Truncated or unreadable: the FAT in use alone decides, as before.
        if (!(e instanceof LooplessError)) throw e;
        this.warnOnce(`FAT copy ${copy + 1} unreadable (${e.message}); only the FAT in use says what is allocated`);
        continue;
      }
      if (extra) this.warnOnce(`FAT copy ${copy + 1} at byte ${offset} marks ${extra} cluster(s) in use that the FAT in use marks free: the copies disagree, and restore copies those clusters too`);
    }
    return ranges.result();
  }

  private warnOnce(message: string): void {
    if (!this.warnings.includes(message)) this.warnings.push(message);
  }

  async close(): Promise<void> {
    this.listings.clear();
    this.runsCache.clear();
    this.fat.clearCache();
    await this.meta.close();
  }

  private owner(node: FatNode): ChainOwner {
    return { name: node.path, structure: 'FAT directory entry', entryOffset: node.entryOffset };
  }

  private async fileRuns(node: FatNode): Promise<ClusterRuns> {
    const cached = this.runsCache.get(node.entryOffset);
    if (cached) return cached;
    if (node.firstCluster === 0) {
      throw new CorruptError('FAT directory entry', node.entryOffset, `${node.path}: a ${node.stat.size}-byte file with no first cluster`);
    }
    const needed = Math.ceil(node.stat.size / this.geometry.clusterSize);
    const runs = await this.fat.chain(node.firstCluster, needed, this.owner(node));
    this.runsCache.set(node.entryOffset, runs, runs.bytes);
    return runs;
  }

  private async listing(dir: FatNode): Promise<DirectoryIndex<FatNode>> {
    if (dir.stat.type !== 'dir') throw new NotADirectoryError(dir.path);
    const key = dir.isRoot ? 'root' : `${dir.firstCluster}`;
    const cached = this.listings.get(key);
    if (cached) return cached;
    const { bytes, offsetOf } = await this.directoryBytes(dir);
    const parsed = parseFatDirectory(bytes, offsetOf);
    const prefix = dir.isRoot ? '' : dir.path;
    const index = new DirectoryIndex<FatNode>(
      parsed.records.map((r) => ({ name: r.name, node: this.nodeFor(r, `${prefix}/${r.name}`), altName: r.shortName })),
      parsed.label,
    );
    this.listings.set(key, index);
    return index;
  }

  /** A directory's raw entries, read up to its end-of-directory mark. */
  private async directoryBytes(dir: FatNode): Promise<DirectoryBytes> {
    const g = this.geometry;
    if (dir.isRoot && g.type !== 'fat32') {
      const bytes = await readExact(this.meta, g.rootDirOffset, g.rootDirBytes, 'FAT root directory');
      return { bytes, offsetOf: (i) => g.rootDirOffset + i * 32 };
    }
    if (dir.firstCluster === 0) {
      throw new CorruptError('FAT directory entry', dir.entryOffset, `${dir.path}: a directory with no first cluster`);
    }
    const runs = await this.fat.chain(dir.firstCluster, Math.ceil(MAX_DIR_BYTES / g.clusterSize), this.owner(dir));
    return readDirectoryRuns(this.meta, this.heap, runs, `directory ${dir.path}`);
  }

  private nodeFor(r: FatDirRecord, path: string): FatNode {
    const isDir = (r.attributes & ATTR_DIRECTORY) !== 0;
    const cs = this.geometry.clusterSize;
    const mtime = dosTimestampNs(r.writeDate, r.writeTime) ?? DOS_EPOCH_NS;
    const size = isDir ? 0 : r.size;
    return {
      stat: entryStat({
        attributes: r.attributes,
        size,
        allocatedSize: r.firstCluster === 0 ? 0 : isDir ? cs : Math.ceil(size / cs) * cs,
        ino: r.entryOffset,
        mtimeNs: mtime,
        // FAT keeps only the date of the last access.
        atimeNs: dosTimestampNs(r.accessDate, 0) ?? mtime,
        birthtimeNs: dosTimestampNs(r.creationDate, r.creationTime, r.creationCentiseconds),
      }),
      firstCluster: r.firstCluster,
      isRoot: false,
      path,
      entryOffset: r.entryOffset,
    };
  }

  private async countFreeClusters(): Promise<number> {
    const g = this.geometry;
    if (g.fsInfoSector) {
      const free = await this.fsInfoFreeCount();
      if (free !== null) return free;
    }
    if (this.fat.byteLength > MAX_FAT_SCAN_BYTES) {
      this.warnings.push('free space unknown: FSInfo holds no free count and the FAT is too large to scan at open');
      return 0;
    }
    let free = 0;
    try {
      await this.fat.scan((_, value) => {
        if (value === 0) free++;
      });
    } catch (e) {
      if (!(e instanceof CorruptError)) throw e;
      this.warnings.push(`free space unknown: ${e.message}`);
    }
    return free;
  }

  /** FAT32's FSInfo sector caches the free cluster count; 0xFFFFFFFF (or a count above the total) means unknown. */
  private async fsInfoFreeCount(): Promise<number | null> {
    const g = this.geometry;
    const at = g.fsInfoSector * g.bytesPerSector;
    if (at + 512 > this.volume.size) return null;
    const s = await readExact(this.meta, at, 512, 'FAT32 FSInfo sector');
    if (s.readUInt32LE(0) !== 0x41615252 || s.readUInt32LE(484) !== 0x61417272) return null;
    const free = s.readUInt32LE(488);
    return free <= g.clusterCount ? free : null;
  }
}
