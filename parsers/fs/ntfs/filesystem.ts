import {
  CorruptError,
  InvalidArgumentError,
  IsADirectoryError,
  LooplessError,
  NotADirectoryError,
  UnsupportedError,
} from '../../errors.js';
import { CachedSource } from '../../source/cache.js';
import { readExact } from '../../source/read.js';
import type { ByteRange, ByteSource } from '../../source/types.js';
import type { DirEntry, FilePiece, FileSystem, FsInfo } from '../types.js';
import { extentsOf } from './attribute-list.js';
import { isNtfsBootSector, parseBootSector, serialToUuid, type NtfsGeometry } from './boot.js';
import { DirectoryIndex, IndexBlockCache, type IndexEntry } from './directory-index.js';
import { NameSpace } from './file-name.js';
import { Mft } from './mft.js';
import { buildNode, NtfsNode, placeholderNode, type NodeContext } from './node.js';
import { AttrType, RecordFlag } from './record.js';
import { AttributeStream } from './stream.js';
import { UpCase } from './upcase.js';

/** Well-known MFT record numbers. */
const Record = { mft: 0, volume: 3, bitmap: 6, root: 5, upcase: 10, extend: 11, firstUser: 24 } as const;
const NODE_CACHE_SIZE = 8192;
const LISTING_CACHE_SIZE = 32;
/** Children loaded in parallel while listing a directory. */
const LIST_BATCH = 64;
/** $Bitmap is read in chunks of this size. */
const BITMAP_CHUNK = 1024 * 1024;

/** Bits set in each byte value. */
const POPCOUNT = Uint8Array.from({ length: 256 }, (_, i) => {
  let n = 0;
  for (let v = i; v; v >>= 1) n += v & 1;
  return n;
});

/**
 * Locate and parse the boot sector: the primary in sector 0, or the backup in
 * the volume's last sector when the primary is damaged.
 */
async function readGeometry(source: ByteSource): Promise<NtfsGeometry> {
  const primary = await readExact(source, 0, Math.min(4096, source.size), 'NTFS boot sector');
  if (isNtfsBootSector(primary)) return parseBootSector(primary, 0);
  for (const bps of [512, 4096, 1024, 2048, 256]) {
    const at = source.size - bps;
    if (at <= 0 || source.size % bps !== 0) continue;
    const backup = await readExact(source, at, bps, 'NTFS backup boot sector');
    if (isNtfsBootSector(backup) && backup.readUInt16LE(11) === bps) return parseBootSector(backup, at);
  }
  return parseBootSector(primary, 0); // throws, saying what is wrong with the primary
}

/**
 * A read-only NTFS volume. Metadata (MFT records, index blocks, bitmaps) goes
 * through a page cache; file data is read straight from the volume in large
 * requests.
 */
export class NtfsFileSystem implements FileSystem<NtfsNode> {
  private readonly nodes = new Map<number, Promise<NtfsNode>>();
  private readonly listings = new Map<number, Promise<IndexEntry[]>>();
  private readonly blockCache = new IndexBlockCache();
  private ranges: Promise<ByteRange[]> | null = null;
  private readonly ctx: NodeContext;
  /** Collation table: the volume's $UpCase, or (when unreadable) a built-in one made on first use. */
  private upcaseTable: UpCase | null = null;

  private constructor(
    private readonly source: ByteSource,
    private readonly metadata: CachedSource,
    readonly geometry: NtfsGeometry,
    private readonly mft: Mft,
    private fsInfo: FsInfo,
  ) {
    this.ctx = { clusterSize: geometry.clusterSize, totalClusters: geometry.totalClusters, metadata, data: source };
  }

  static async open(source: ByteSource): Promise<NtfsFileSystem> {
    const geometry = await readGeometry(source);
    const metadata = new CachedSource(source, 64 * 1024, 256);
    const mft = await Mft.open(geometry, metadata);
    const info: FsInfo = {
      type: 'ntfs',
      label: null,
      uuid: serialToUuid(geometry.serialNumber),
      blockSize: geometry.clusterSize,
      totalBlocks: geometry.totalClusters,
      freeBlocks: 0,
      totalInodes: mft.recordCount,
      freeInodes: null,
      maxNameLength: 255,
    };
    const fs = new NtfsFileSystem(source, metadata, geometry, mft, info);
    // The root must work, or there is nothing to browse.
    const root = await fs.node(Record.root);
    if (root.stat.type !== 'dir') throw new CorruptError('NTFS MFT record 5', 0, 'the root directory record is not a directory');
    // The rest is best effort: a damaged $UpCase, $Volume or $Bitmap must not hide the files.
    fs.upcaseTable = await fs.loadUpcase().catch(() => null);
    info.label = await fs.loadLabel().catch(() => null);
    info.freeBlocks = await fs.countFreeClusters().catch(() => 0);
    info.freeInodes = await fs.countFreeRecords().catch(() => null);
    return fs;
  }

  private get upcase(): UpCase {
    return (this.upcaseTable ??= UpCase.builtin());
  }

  private async loadUpcase(): Promise<UpCase | null> {
    const node = await this.node(Record.upcase);
    return node.data ? UpCase.fromBytes(await node.data.readAll(this.metadata, 65536 * 2)) : null;
  }

  private async loadLabel(): Promise<string | null> {
    const record = await this.mft.readRecord(Record.volume);
    const attr = record.attributes.find((a) => a.type === AttrType.volumeName && a.resident);
    if (!attr?.resident || attr.value.length === 0) return null;
    return attr.value.toString('utf16le', 0, attr.value.length & ~1);
  }

  /** Calls `onRun(firstCluster, count)` for each run of clusters marked in use in $Bitmap, and returns the number in use. */
  private async scanBitmap(onRun?: (lcn: number, count: number) => void): Promise<number> {
    const node = await this.node(Record.bitmap);
    const total = this.geometry.totalClusters;
    if (!node.data || node.data.size * 8 < total) throw new CorruptError('NTFS $Bitmap', 0, `covers ${(node.data?.size ?? 0) * 8} clusters, the volume has ${total}`);
    const chunk = Buffer.alloc(Math.min(BITMAP_CHUNK, Math.ceil(total / 8)));
    let used = 0;
    let runStart = -1;
    for (let byteBase = 0; byteBase * 8 < total; byteBase += chunk.length) {
      const n = Math.min(chunk.length, Math.ceil(total / 8) - byteBase);
      await node.data.read(this.source, chunk, 0, n, byteBase);
      for (let i = 0; i < n; i++) {
        const byte = chunk[i];
        const lcn0 = (byteBase + i) * 8;
        const bits = Math.min(8, total - lcn0);
        if (bits === 8 && (byte === 0 || byte === 0xff)) {
          // Fast path for whole bytes.
          if (byte === 0xff) {
            used += 8;
            if (runStart < 0) runStart = lcn0;
          } else if (runStart >= 0) {
            onRun?.(runStart, lcn0 - runStart);
            runStart = -1;
          }
          continue;
        }
        for (let b = 0; b < bits; b++) {
          if (byte & (1 << b)) {
            used++;
            if (runStart < 0) runStart = lcn0 + b;
          } else if (runStart >= 0) {
            onRun?.(runStart, lcn0 + b - runStart);
            runStart = -1;
          }
        }
      }
    }
    if (runStart >= 0) onRun?.(runStart, total - runStart);
    return used;
  }

  private async countFreeClusters(): Promise<number> {
    return this.geometry.totalClusters - (await this.scanBitmap());
  }

  private async countFreeRecords(): Promise<number | null> {
    const extents = extentsOf(this.mft.attributes, AttrType.bitmap, '');
    if (!extents.length) return null;
    const bits = await new AttributeStream(extents, this.geometry.clusterSize, this.geometry.totalClusters, 'NTFS $MFT $BITMAP').readAll(
      this.metadata,
      Math.ceil(this.mft.recordCount / 8) + 8 * 1024 * 1024,
    );
    let used = 0;
    const count = this.mft.recordCount;
    for (let i = 0; i < Math.min(bits.length, Math.ceil(count / 8)); i++) {
      const valid = Math.min(8, count - i * 8);
      used += POPCOUNT[bits[i] & ((1 << valid) - 1)];
    }
    return count - used;
  }

  info(): FsInfo {
    return { ...this.fsInfo };
  }

  /** The node of base record `number` (cached; hard links share it). */
  private node(number: number): Promise<NtfsNode> {
    const hit = this.nodes.get(number);
    if (hit) {
      this.nodes.delete(number);
      this.nodes.set(number, hit);
      return hit;
    }
    const p = (async () => {
      const record = await this.mft.readRecord(number);
      const structure = `NTFS MFT record ${number}`;
      if (!(record.flags & RecordFlag.inUse)) throw new CorruptError(structure, record.offset, 'referenced, but the record is not in use (deleted file)');
      if (record.base) throw new CorruptError(structure, record.offset, `referenced as a file, but it is an extension of record ${record.base.record}`);
      return buildNode(this.ctx, record, await this.mft.fileAttributes(record));
    })();
    p.catch(() => this.nodes.delete(number));
    this.nodes.set(number, p);
    if (this.nodes.size > NODE_CACHE_SIZE) this.nodes.delete(this.nodes.keys().next().value as number);
    return p;
  }

  /** The node a directory entry names, checking the entry is not stale. */
  private async entryNode(entry: IndexEntry): Promise<NtfsNode> {
    const node = await this.node(entry.file.record);
    if (entry.file.sequence !== 0 && node.sequence !== entry.file.sequence) {
      throw new CorruptError(
        `NTFS MFT record ${entry.file.record}`,
        0,
        `directory entry "${entry.name}" expects sequence ${entry.file.sequence}, the record has ${node.sequence} (stale entry)`,
      );
    }
    return node;
  }

  root(): Promise<NtfsNode> {
    return this.node(Record.root);
  }

  private directoryIndex(dir: NtfsNode): DirectoryIndex {
    if (dir.stat.type !== 'dir') throw new NotADirectoryError(`MFT record ${dir.record}`);
    dir.index ??= new DirectoryIndex(
      {
        clusterSize: this.geometry.clusterSize,
        totalClusters: this.geometry.totalClusters,
        defaultBlockSize: this.geometry.indexRecordSize,
        metadata: this.metadata,
        upcase: this.upcase,
        blockCache: this.blockCache,
      },
      dir.indexAttributes,
      dir.record,
    );
    return dir.index;
  }

  private listing(dir: NtfsNode): Promise<IndexEntry[]> {
    const hit = this.listings.get(dir.record);
    if (hit) return hit;
    const p = (async () => (await this.directoryIndex(dir).list()).entries)();
    p.catch(() => this.listings.delete(dir.record));
    this.listings.set(dir.record, p);
    if (this.listings.size > LISTING_CACHE_SIZE) this.listings.delete(this.listings.keys().next().value as number);
    return p;
  }

  /** Metafiles: the $-files in the root (records below 24) and everything inside $Extend. */
  private isMetafile(dir: NtfsNode, entry: IndexEntry): boolean {
    return (dir.record === Record.root && entry.file.record < Record.firstUser && entry.name.startsWith('$')) || dir.record === Record.extend;
  }

  async readdir(dir: NtfsNode, options?: { all?: boolean }): Promise<DirEntry<NtfsNode>[]> {
    const entries = await this.listing(dir);
    const seen = new Set<string>();
    const wanted = entries.filter((e) => {
      const name = e.name;
      // DOS 8.3 aliases duplicate a long name; "." is the root's entry for itself.
      if (e.nameSpace === NameSpace.dos || name === '' || name === '.' || name === '..' || /[/\0]/.test(name)) return false;
      if (!options?.all && this.isMetafile(dir, e)) return false;
      const key = `${e.file.record}/${name}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    const out: DirEntry<NtfsNode>[] = [];
    for (let i = 0; i < wanted.length; i += LIST_BATCH) {
      const batch = wanted.slice(i, i + LIST_BATCH);
      const nodes = await Promise.all(
        batch.map((e) =>
          this.entryNode(e).catch((err: unknown) => {
            if (err instanceof LooplessError) return placeholderNode(e, err);
            throw err;
          }),
        ),
      );
      batch.forEach((e, j) => out.push({ name: e.name, node: nodes[j] }));
    }
    return out;
  }

  async lookup(dir: NtfsNode, name: string): Promise<NtfsNode | null> {
    if (name === '' || name === '.' || name === '..') return null;
    const candidates = await this.directoryIndex(dir).find(name);
    // Exact spelling first; otherwise Windows' case-insensitive match, which
    // POSIX-namespace names (case-sensitive by definition) do not take part in.
    const pick = candidates.find((c) => c.name === name) ?? candidates.find((c) => c.nameSpace !== NameSpace.posix);
    return pick ? this.entryNode(pick) : null;
  }

  async read(node: NtfsNode, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const what = `MFT record ${node.record}`;
    if (node.unreadable instanceof LooplessError) throw node.unreadable;
    if (node.stat.type === 'dir') throw new IsADirectoryError(what);
    if (node.stat.type === 'symlink') throw new InvalidArgumentError(`${what}: is a symbolic link; read its target with readlink`);
    if (node.unreadable) throw new UnsupportedError(`${what}: ${node.unreadable}`);
    if (!node.data) return 0;
    return node.data.read(this.source, buffer, offset, length, position);
  }

  async mapFile(node: NtfsNode, position: number, length: number): Promise<FilePiece[] | null> {
    if (node.stat.type !== 'file') return null;
    if (node.unreadable instanceof LooplessError) throw node.unreadable;
    if (node.unreadable) throw new UnsupportedError(`MFT record ${node.record}: ${node.unreadable}`);
    if (!Number.isSafeInteger(position) || position < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InvalidArgumentError(`read of MFT record ${node.record}: invalid range ${position}+${length}`);
    }
    if (!node.data) return [];
    return node.data.map(position, length);
  }

  async readlink(node: NtfsNode): Promise<string> {
    if (node.target === null) throw new InvalidArgumentError(`MFT record ${node.record}: not a symbolic link`);
    return node.target;
  }

  /**
   * A named alternate data stream ("Zone.Identifier") as a readable file
   * node. The name matches case-insensitively, as on Windows; a trailing
   * ":$DATA" type is accepted. It shares the file's inode number and times.
   */
  async openStream(node: NtfsNode, streamName: string): Promise<NtfsNode | null> {
    const name = streamName.replace(/:\$DATA$/i, '');
    if (name === '') return node;
    const match = node.namedStreams.has(name) ? name : [...node.namedStreams.keys()].find((n) => this.upcase.equal(n, name));
    if (match === undefined) return null;
    const stream = new AttributeStream(node.namedStreams.get(match)!, this.geometry.clusterSize, this.geometry.totalClusters, `NTFS $DATA:${match} of MFT record ${node.record}`);
    const { streams: _streams, otherKind: _other, rdev: _rdev, ...base } = node.stat;
    const flags = [...(node.stat.flags ?? []).filter((f) => f !== 'compressed' && f !== 'sparse' && f !== 'encrypted')];
    if (stream.compressed) flags.push('compressed');
    if (stream.sparse) flags.push('sparse');
    if (stream.encrypted) flags.push('encrypted');
    const stat = { ...base, type: 'file' as const, size: stream.size, allocatedSize: stream.allocatedSize, mode: node.stat.mode & 0o222 ? 0o644 : 0o444 };
    if (flags.length) Object.assign(stat, { flags });
    return new NtfsNode(stat, node.record, node.sequence, stream, new Map(), [], null, null);
  }

  /** Clusters in use per $Bitmap, plus the boot sector and its backup, as sorted, merged byte ranges. */
  allocatedRanges(): Promise<ByteRange[]> {
    this.ranges ??= (async () => {
      const cs = this.geometry.clusterSize;
      const bps = this.geometry.bytesPerSector;
      const ranges: ByteRange[] = [{ start: 0, length: Math.min(this.source.size, Math.max(bps, 8192)) }];
      await this.scanBitmap((lcn, count) => ranges.push({ start: lcn * cs, length: count * cs }));
      const backup = this.geometry.totalSectors * bps;
      if (backup < this.source.size) ranges.push({ start: backup, length: Math.min(bps, this.source.size - backup) });
      ranges.sort((a, b) => a.start - b.start);
      const merged: ByteRange[] = [];
      for (const r of ranges) {
        const last = merged[merged.length - 1];
        if (last && r.start <= last.start + last.length) last.length = Math.max(last.length, r.start + r.length - last.start);
        else merged.push({ ...r });
      }
      return merged;
    })();
    this.ranges.catch(() => (this.ranges = null));
    return this.ranges;
  }

  async close(): Promise<void> {
    this.nodes.clear();
    this.listings.clear();
    this.blockCache.clear();
    await this.metadata.close();
  }
}
