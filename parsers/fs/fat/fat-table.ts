import { CorruptError } from '../../errors.js';
import type { ByteSource } from '../../source/types.js';
import { ClusterRuns, type ChainOwner } from './cluster-runs.js';
import { Lru } from '../../lru.js';

/**
 * The File Allocation Table of FAT12/16/32 and exFAT: one entry per cluster,
 * saying which cluster comes next in a file, or that the file ends there.
 *
 * A FAT32 FAT can be hundreds of megabytes, so it is never read whole: pages
 * of it are kept in a bounded LRU and chains are followed synchronously while
 * they stay inside cached pages (a contiguous file walks one page for
 * thousands of clusters).
 */
export interface FatLayout {
  /** Bits per entry. exFAT uses 32 with all bits significant. */
  bits: 12 | 16 | 32;
  exfat: boolean;
  /** Byte offset of the FAT in use within the volume. */
  offset: number;
  /** Valid data clusters are 2 .. clusterCount + 1. */
  clusterCount: number;
}

export type FatEntryKind = 'free' | 'next' | 'end' | 'bad' | 'invalid';

const PAGE_BYTES = 64 * 1024;
/** 64 pages of 64 KiB: 4 MiB of FAT cached, enough for the working set of any walk. */
const PAGE_BUDGET = 64;
/** FAT bytes read per step when scanning the whole table. */
const SCAN_CHUNK = 1024 * 1024;

export class FatTable {
  readonly layout: FatLayout;
  /** Bytes of FAT holding entries for clusters 0 .. clusterCount + 1. */
  readonly byteLength: number;
  private readonly pageBytes: number;
  private readonly pages = new Lru<number, Buffer>(PAGE_BUDGET);
  private readonly pending = new Map<number, Promise<Buffer>>();
  private lastPageIndex = -1;
  private lastPage: Buffer | undefined;
  private readonly mask: number;
  private readonly badValue: number;
  private readonly endMin: number;

  constructor(
    private readonly source: ByteSource,
    layout: FatLayout,
  ) {
    this.layout = layout;
    const entries = layout.clusterCount + 2;
    this.byteLength = layout.bits === 12 ? Math.ceil((entries * 3) / 2) : entries * (layout.bits / 8);
    // FAT12 entries straddle byte (and so page) boundaries; a FAT12 FAT is at most ~6 KiB, so it is one page.
    this.pageBytes = layout.bits === 12 ? this.byteLength : PAGE_BYTES;
    if (layout.exfat) {
      this.mask = 0xffffffff;
      this.badValue = 0xfffffff7;
      this.endMin = 0xfffffff8;
    } else {
      // FAT32 entries are 28 bits: the top 4 are reserved and must be ignored.
      this.mask = layout.bits === 12 ? 0xfff : layout.bits === 16 ? 0xffff : 0x0fffffff;
      this.badValue = this.mask - 8;
      this.endMin = this.mask - 7;
    }
  }

  get lastCluster(): number {
    return this.layout.clusterCount + 1;
  }

  isDataCluster(cluster: number): boolean {
    return Number.isInteger(cluster) && cluster >= 2 && cluster <= this.lastCluster;
  }

  /** Byte offset within the volume of the entry for `cluster` (for messages). */
  entryOffset(cluster: number): number {
    const b = this.layout.bits === 12 ? Math.floor((cluster * 3) / 2) : cluster * (this.layout.bits / 8);
    return this.layout.offset + b;
  }

  classify(value: number): FatEntryKind {
    if (value === 0) return 'free';
    if (value >= this.endMin) return 'end';
    if (value === this.badValue) return 'bad';
    if (value >= 2 && value <= this.lastCluster) return 'next';
    return 'invalid';
  }

  async entry(cluster: number): Promise<number> {
    const byte = this.entryByte(cluster);
    const pageIndex = Math.floor(byte / this.pageBytes);
    const page = this.pages.get(pageIndex) ?? (await this.loadPage(pageIndex));
    return this.decode(page, byte - pageIndex * this.pageBytes, cluster);
  }

  /**
   * Follow a chain from `first` for at most `maxClusters` clusters (the
   * clusters a file's size needs, or a directory's size limit), stopping at the
   * end mark. A free, bad or out-of-range link, or a cluster met twice (a
   * loop), is a CorruptError naming the FAT entry at fault.
   */
  async chain(first: number, maxClusters: number, owner: ChainOwner): Promise<ClusterRuns> {
    if (!this.isDataCluster(first)) {
      throw new CorruptError(
        owner.structure,
        owner.entryOffset,
        `${owner.name}: first cluster ${first} is outside the cluster heap (2..${this.lastCluster})`,
      );
    }
    const runs = new ClusterRuns();
    // A chain longer than the volume has clusters must loop: the walk is bounded either way.
    const limit = Math.max(1, Math.min(maxClusters, this.layout.clusterCount));
    let cluster = first;
    runs.append(cluster);
    while (runs.clusters < limit) {
      const value = this.entrySync(cluster) ?? (await this.entry(cluster));
      const kind = this.classify(value);
      if (kind === 'end') break;
      if (kind !== 'next') throw this.badLink(cluster, value, kind, owner);
      cluster = value;
      runs.append(cluster);
    }
    const repeated = runs.findRepeatedCluster();
    if (repeated !== null) {
      throw new CorruptError(
        'FAT chain',
        this.entryOffset(repeated),
        `${owner.name}: the cluster chain loops (cluster ${repeated} is reached twice)`,
      );
    }
    return runs;
  }

  /**
   * Visit every entry for clusters 2 .. clusterCount + 1 in order, reading the
   * FAT in 1 MiB steps outside the page cache (a full scan must not evict the
   * pages that walks use, nor hold the whole FAT).
   */
  async scan(visit: (cluster: number, value: number) => void): Promise<void> {
    const bits = this.layout.bits;
    if (bits === 12) {
      const page = this.pages.get(0) ?? (await this.loadPage(0));
      for (let c = 2; c <= this.lastCluster; c++) visit(c, this.decode(page, this.entryByte(c), c));
      return;
    }
    const width = bits / 8;
    const chunkEntries = SCAN_CHUNK / width;
    const buf = Buffer.allocUnsafe(SCAN_CHUNK);
    for (let base = 0; base <= this.lastCluster; base += chunkEntries) {
      const count = Math.min(chunkEntries, this.lastCluster + 1 - base);
      const position = this.layout.offset + base * width;
      const got = await this.source.read(buf, 0, count * width, position);
      if (got !== count * width) throw this.truncated(position + got);
      for (let i = base < 2 ? 2 - base : 0; i < count; i++) {
        const value = width === 2 ? buf.readUInt16LE(i * 2) : buf.readUInt32LE(i * 4) & this.mask;
        visit(base + i, value >>> 0);
      }
    }
  }

  clearCache(): void {
    this.pages.clear();
    this.lastPageIndex = -1;
    this.lastPage = undefined;
  }

  private entryByte(cluster: number): number {
    return this.layout.bits === 12 ? Math.floor((cluster * 3) / 2) : cluster * (this.layout.bits / 8);
  }

  private entrySync(cluster: number): number | undefined {
    const byte = this.entryByte(cluster);
    const pageIndex = Math.floor(byte / this.pageBytes);
    // Walks stay on one page for long stretches: skip the LRU bookkeeping then.
    let page = pageIndex === this.lastPageIndex ? this.lastPage : undefined;
    if (!page) {
      page = this.pages.get(pageIndex);
      if (!page) return undefined;
      this.lastPageIndex = pageIndex;
      this.lastPage = page;
    }
    return this.decode(page, byte - pageIndex * this.pageBytes, cluster);
  }

  private decode(page: Buffer, at: number, cluster: number): number {
    switch (this.layout.bits) {
      case 12: {
        const pair = page[at] | (page[at + 1] << 8);
        return cluster & 1 ? pair >> 4 : pair & 0xfff;
      }
      case 16:
        return page.readUInt16LE(at);
      default:
        return (page.readUInt32LE(at) & this.mask) >>> 0;
    }
  }

  private loadPage(index: number): Promise<Buffer> {
    const inFlight = this.pending.get(index);
    if (inFlight) return inFlight;
    const p = (async () => {
      const start = index * this.pageBytes;
      const length = Math.min(this.pageBytes, this.byteLength - start);
      const buf = Buffer.alloc(this.pageBytes);
      const got = await this.source.read(buf, 0, length, this.layout.offset + start);
      if (got !== length) throw this.truncated(this.layout.offset + start + got);
      this.pages.set(index, buf);
      return buf;
    })();
    this.pending.set(index, p);
    const clear = () => this.pending.delete(index);
    p.then(clear, clear);
    return p;
  }

  private truncated(at: number): CorruptError {
    return new CorruptError('FAT', at, 'the volume ends inside the FAT (truncated image?)');
  }

  private badLink(cluster: number, value: number, kind: FatEntryKind, owner: ChainOwner): CorruptError {
    const hex = `0x${value.toString(16)}`;
    const why =
      kind === 'free'
        ? 'is marked free in the middle of the chain'
        : kind === 'bad'
          ? 'is marked as a bad cluster in the middle of the chain'
          : `points to cluster ${value} (${hex}), outside the cluster heap (2..${this.lastCluster})`;
    return new CorruptError('FAT', this.entryOffset(cluster), `${owner.name}: the entry for cluster ${cluster} ${why}`);
  }
}
