import { CorruptError, UnsupportedError } from '../../errors.js';
import type { ByteSource } from '../../source/types.js';
import type { FilePiece } from '../types.js';
import { decompressLznt1 } from './lznt1.js';
import { AttrFlag, type Attribute, type NonResidentAttribute } from './record.js';
import { decodeRunlist, findRun, type Run } from './runlist.js';

/** Compression units larger than this are not something Windows writes (it compresses only clusters <= 4 KiB). */
const MAX_COMPRESSION_UNIT = 4 * 1024 * 1024;

/**
 * The bytes of one attribute (a $DATA stream, an index allocation, the MFT
 * itself...), resident or not, possibly spread over several extents (from an
 * attribute list), sparse, compressed (LZNT1), or only partly initialized.
 * Reads map VCN ranges through the runlist and issue one source read per
 * physically contiguous stretch, however many runs it spans.
 */
export class AttributeStream {
  readonly size: number;
  /** Bytes past this read as zeros (valid data length). */
  readonly initializedSize: number;
  /** Bytes the stream occupies on disk. */
  readonly allocatedSize: number;
  readonly compressed: boolean;
  readonly sparse: boolean;
  readonly encrypted: boolean;
  private readonly resident: Buffer | null;
  private readonly extents: NonResidentAttribute[];
  private runs: Run[] | null = null;

  constructor(
    extents: Attribute[],
    private readonly clusterSize: number,
    private readonly totalClusters: number,
    /** Names the stream in errors, e.g. "NTFS $DATA of MFT record 67". */
    readonly structure: string,
  ) {
    const first = extents.find((e) => e.resident || e.lowestVcn === 0) ?? extents[0];
    this.encrypted = (first.flags & AttrFlag.encrypted) !== 0;
    this.sparse = (first.flags & AttrFlag.sparse) !== 0;
    this.compressed = (first.flags & AttrFlag.compressedMask) !== 0;
    if (first.resident) {
      this.resident = first.value;
      this.extents = [];
      this.size = this.initializedSize = first.value.length;
      this.allocatedSize = 0;
      return;
    }
    this.resident = null;
    this.extents = (extents.filter((e) => !e.resident) as NonResidentAttribute[]).sort((a, b) => a.lowestVcn - b.lowestVcn);
    this.size = first.lowestVcn === 0 ? first.dataSize : 0;
    this.initializedSize = Math.min(this.size, first.initializedSize);
    this.allocatedSize = first.compressedSize ?? first.allocatedSize;
  }

  get isResident(): boolean {
    return this.resident !== null;
  }

  /** Decode (once) the runlists of all extents into one sorted, gap-checked runlist. */
  private runlist(): Run[] {
    if (this.runs) return this.runs;
    const runs: Run[] = [];
    let nextVcn = 0;
    for (const e of this.extents) {
      if (e.lowestVcn !== nextVcn) {
        throw new CorruptError(this.structure, e.offset, `extent starts at VCN ${e.lowestVcn}, expected ${nextVcn} (missing or overlapping extent)`);
      }
      const decoded = decodeRunlist(e.mappingPairs, 0, e.mappingPairs.length, e.lowestVcn, e.highestVcn, this.totalClusters, this.structure, e.mappingPairsOffset);
      for (const r of decoded) {
        const prev = runs[runs.length - 1];
        if (prev && prev.vcn + prev.length === r.vcn && ((prev.lcn === null && r.lcn === null) || (prev.lcn !== null && r.lcn !== null && prev.lcn + prev.length === r.lcn))) {
          prev.length += r.length;
        } else runs.push({ ...r });
      }
      nextVcn = e.highestVcn + 1;
    }
    this.runs = runs;
    return runs;
  }

  /** The runlist, for callers that need physical locations (allocated ranges, tests). */
  mapping(): Run[] {
    return this.resident ? [] : this.runlist();
  }

  /** Volume byte offset of stream byte `pos`, or null when resident, sparse or unmapped (for error messages). */
  physicalOffset(pos: number): number | null {
    if (this.resident) return null;
    const runs = this.runlist();
    const vcn = Math.floor(pos / this.clusterSize);
    const i = findRun(runs, vcn);
    if (i < 0 || runs[i].lcn === null) return null;
    return runs[i].lcn! * this.clusterSize + (pos - runs[i].vcn * this.clusterSize);
  }

  /**
   * Read stream bytes [position, position + length) into buffer[offset..] from
   * `source` (the volume, or a cache over it for metadata). Returns the bytes
   * read: fewer than asked only at the end of the stream.
   */
  async read(source: ByteSource, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (this.encrypted) throw new UnsupportedError(`${this.structure}: EFS-encrypted data cannot be read without the user's key`);
    const end = Math.min(this.size, position + length);
    if (position < 0 || position >= end) return 0;
    if (this.resident) {
      buffer.set(this.resident.subarray(position, end), offset);
      return end - position;
    }
    const initEnd = Math.max(position, Math.min(end, this.initializedSize));
    if (this.compressed) await this.readCompressed(source, buffer, offset, position, initEnd);
    else await this.readMapped(source, buffer, offset, position, initEnd);
    if (initEnd < end) buffer.fill(0, offset + (initEnd - position), offset + (end - position));
    return end - position;
  }

  /**
   * Where stream bytes [position, position + length) lie on the volume, for
   * synchronous reads straight from the page cache (FileSystem.mapFile):
   * volume byte offsets, null for sparse runs and bytes past the valid data
   * length. Null when the bytes are not stored plainly (resident, LZNT1).
   */
  map(position: number, length: number): FilePiece[] | null {
    if (this.encrypted) throw new UnsupportedError(`${this.structure}: EFS-encrypted data cannot be read without the user's key`);
    if (this.resident || this.compressed) return null;
    const end = Math.min(this.size, position + length);
    if (position < 0 || position >= end) return [];
    const initEnd = Math.max(position, Math.min(end, this.initializedSize));
    const out = this.pieces(position, initEnd);
    if (initEnd < end) {
      const last = out[out.length - 1];
      if (last && last.at === null) last.length += end - initEnd;
      else out.push({ at: null, length: end - initEnd });
    }
    return out;
  }

  /**
   * Volume locations of stream bytes [start, end) of uncompressed data: runs
   * that continue on disk merge into one piece, sparse runs are null.
   */
  private pieces(start: number, end: number): FilePiece[] {
    const runs = this.runlist();
    const cs = this.clusterSize;
    const out: FilePiece[] = [];
    let pos = start;
    let i = -1;
    while (pos < end) {
      const vcn = Math.floor(pos / cs);
      if (i < 0 || i >= runs.length || vcn < runs[i].vcn || vcn >= runs[i].vcn + runs[i].length) i = findRun(runs, vcn);
      if (i < 0) throw new CorruptError(this.structure, this.physicalOffset(0) ?? 0, `byte ${pos} (VCN ${vcn}) is not mapped by the runlist`);
      const run = runs[i];
      const stop = Math.min((run.vcn + run.length) * cs, end);
      const at = run.lcn === null ? null : run.lcn * cs + (pos - run.vcn * cs);
      const last = out.length ? out[out.length - 1] : null;
      if (last && (at === null ? last.at === null : last.at !== null && last.at + last.length === at)) last.length += stop - pos;
      else out.push({ at, length: stop - pos });
      pos = stop;
      i++;
    }
    return out;
  }

  /** Read a whole (small, metadata) stream, refusing more than `limit` bytes. */
  async readAll(source: ByteSource, limit: number): Promise<Buffer> {
    if (this.size > limit) throw new CorruptError(this.structure, this.physicalOffset(0) ?? 0, `${this.size} bytes, more than the ${limit} such a structure can hold`);
    const buf = Buffer.alloc(this.size);
    await this.read(source, buf, 0, this.size, 0);
    return buf;
  }

  /** Uncompressed mapping: sparse runs read as zeros, contiguous runs coalesce into one source read. */
  private async readMapped(source: ByteSource, buffer: Uint8Array, offset: number, start: number, end: number): Promise<void> {
    let at = offset;
    for (const piece of this.pieces(start, end)) {
      if (piece.at === null) buffer.fill(0, at, at + piece.length);
      else {
        const got = await source.read(buffer, at, piece.length, piece.at);
        if (got !== piece.length) throw new CorruptError(this.structure, piece.at + got, `volume ends inside the data (read ${got} of ${piece.length} bytes; truncated image?)`);
      }
      at += piece.length;
    }
  }

  private unitGeometry(): { clusters: number; bytes: number } {
    const log2 = this.extents[0]?.compressionUnitLog2 ?? 0;
    if (log2 === 0 || log2 > 16) throw new CorruptError(this.structure, this.extents[0]?.offset ?? 0, `compressed, but compression unit 2^${log2} clusters is invalid`);
    const clusters = 2 ** log2;
    const bytes = clusters * this.clusterSize;
    if (bytes > MAX_COMPRESSION_UNIT) throw new UnsupportedError(`${this.structure}: compression units of ${bytes} bytes (clusters of ${this.clusterSize} bytes) are not supported`);
    return { clusters, bytes };
  }

  /** How a compression unit is stored: all sparse, stored as is (every cluster allocated), or LZNT1. */
  private unitKind(unit: number, clusters: number): 'sparse' | 'stored' | 'compressed' {
    const runs = this.runlist();
    let vcn = unit * clusters;
    const endVcn = vcn + clusters;
    let i = findRun(runs, vcn);
    if (i < 0) throw new CorruptError(this.structure, this.physicalOffset(0) ?? 0, `compression unit ${unit} (VCN ${vcn}) is not mapped by the runlist`);
    if (runs[i].lcn === null) return 'sparse';
    while (vcn < endVcn) {
      if (i >= runs.length || runs[i].vcn > vcn || runs[i].lcn === null) return 'compressed';
      vcn = runs[i].vcn + runs[i].length;
      i++;
    }
    return 'stored';
  }

  private async readCompressed(source: ByteSource, buffer: Uint8Array, offset: number, start: number, end: number): Promise<void> {
    const unit = this.unitGeometry();
    let pos = start;
    while (pos < end) {
      const index = Math.floor(pos / unit.bytes);
      const kind = this.unitKind(index, unit.clusters);
      if (kind === 'stored') {
        // Gather following stored units too: one large mapped read.
        let stop = Math.min((index + 1) * unit.bytes, end);
        while (stop < end && this.unitKind(Math.floor(stop / unit.bytes), unit.clusters) === 'stored') stop = Math.min(stop + unit.bytes, end);
        await this.readMapped(source, buffer, offset + (pos - start), pos, stop);
        pos = stop;
        continue;
      }
      const stop = Math.min((index + 1) * unit.bytes, end);
      if (kind === 'sparse') buffer.fill(0, offset + (pos - start), offset + (stop - start));
      else {
        const data = await this.decompressedUnit(source, index, unit);
        buffer.set(data.subarray(pos - index * unit.bytes, stop - index * unit.bytes), offset + (pos - start));
      }
      pos = stop;
    }
  }

  private async decompressedUnit(source: ByteSource, index: number, unit: { clusters: number; bytes: number }): Promise<Buffer> {
    const scratch = scratchFor(this);
    if (scratch.unit?.index === index) return scratch.unit.data;
    const unitStart = index * unit.bytes;
    const unitEnd = unitStart + unit.bytes;
    // The compressed bytes are the unit's leading allocated clusters; the sparse tail reads as zeros.
    const packed = Buffer.alloc(unit.bytes);
    const runs = this.runlist();
    let filled = 0;
    for (let i = findRun(runs, index * unit.clusters); i >= 0 && i < runs.length && runs[i].lcn !== null; i++) {
      const r = runs[i];
      const from = Math.max(unitStart, r.vcn * this.clusterSize);
      const to = Math.min(unitEnd, (r.vcn + r.length) * this.clusterSize);
      if (from >= to || from !== unitStart + filled) break;
      await this.readPhysical(source, scratch, packed, filled, r.lcn! * this.clusterSize + (from - r.vcn * this.clusterSize), to - from);
      filled += to - from;
    }
    const data = Buffer.alloc(unit.bytes);
    decompressLznt1(packed.subarray(0, filled), data, this.physicalOffset(unitStart) ?? 0);
    scratch.unit = { index, data };
    return data;
  }

  /**
   * Read compressed clusters through a read-ahead window: Windows and ntfs-3g
   * store consecutive compression units one after another, so one large read
   * serves many units instead of one small read each.
   */
  private async readPhysical(source: ByteSource, scratch: Scratch, target: Buffer, at: number, physical: number, length: number): Promise<void> {
    let w = scratch.window;
    if (!w || physical < w.start || physical + length > w.start + w.data.length) {
      const want = Math.min(Math.max(length, READ_AHEAD), source.size - physical);
      const data = Buffer.allocUnsafe(Math.max(0, want));
      const got = want > 0 ? await source.read(data, 0, want, physical) : 0;
      if (got < length) throw new CorruptError(this.structure, physical + got, `volume ends inside the compressed data (read ${got} of ${length} bytes; truncated image?)`);
      w = scratch.window = { start: physical, data: data.subarray(0, got) };
    }
    w.data.copy(target, at, physical - w.start, physical - w.start + length);
  }
}

/** Compressed data read ahead per stream. */
const READ_AHEAD = 256 * 1024;

/** Per-stream scratch for compressed reads: the last decompressed unit and the read-ahead window. */
interface Scratch {
  unit?: { index: number; data: Buffer };
  window?: { start: number; data: Buffer };
}

/**
 * Kept for the few streams read most recently (not on every stream: nodes are
 * cached by the thousand), so memory stays bounded at a few MiB.
 */
const scratches = new Map<AttributeStream, Scratch>();
const MAX_SCRATCHES = 16;

function scratchFor(stream: AttributeStream): Scratch {
  let s = scratches.get(stream);
  if (s) scratches.delete(stream);
  else s = {};
  scratches.set(stream, s);
  if (scratches.size > MAX_SCRATCHES) scratches.delete(scratches.keys().next().value as AttributeStream);
  return s;
}
