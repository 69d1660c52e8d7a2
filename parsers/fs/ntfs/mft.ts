import { CorruptError } from '../../errors.js';
import { readExact } from '../../source/read.js';
import type { ByteSource } from '../../source/types.js';
import { extentsOf, loadAllAttributes, parseAttributeList } from './attribute-list.js';
import type { NtfsGeometry } from './boot.js';
import { AttrType, parseMftRecord, type Attribute, type MftRecord } from './record.js';
import { AttributeStream } from './stream.js';

/** Parsed records kept in memory; a record is ~1 KiB parsed. */
const RECORD_CACHE_SIZE = 4096;
/** Records 0..3 ($MFT, $MFTMirr, $LogFile, $Volume) have a copy in $MFTMirr. */
const MIRRORED_RECORDS = 4;

/**
 * The Master File Table: every file is a record in it. The MFT is itself a
 * file (record 0) whose $DATA may be fragmented, so record 0 is read first at
 * the boot sector's $MFT cluster and the rest located through its runlist.
 */
/** Extension records of $MFT followed (each holds a $DATA extent of hundreds of runs; real volumes need a handful). */
const MAX_MFT_EXTENSIONS = 1024;

export class Mft {
  private readonly cache = new Map<number, Promise<MftRecord>>();
  readonly recordCount: number;

  private constructor(
    private readonly geometry: NtfsGeometry,
    private readonly metadata: ByteSource,
    readonly stream: AttributeStream,
    /** All attributes of record 0 (for $BITMAP: free records). */
    readonly attributes: Attribute[],
  ) {
    this.recordCount = Math.floor(stream.size / geometry.mftRecordSize);
  }

  static async open(geometry: NtfsGeometry, metadata: ByteSource): Promise<Mft> {
    const size = geometry.mftRecordSize;
    const at = geometry.mftLcn * geometry.clusterSize;
    const record0 = await readRecordAt(metadata, at, size, 0).catch(async (primaryError: unknown) => {
      if (!(primaryError instanceof CorruptError)) throw primaryError;
      try {
        return await readRecordAt(metadata, geometry.mftMirrLcn * geometry.clusterSize, size, 0);
      } catch {
        throw primaryError;
      }
    });
    const structure = 'NTFS $MFT $DATA';
    const dataExtents = (attrs: Attribute[]) => extentsOf(attrs, AttrType.data, '');
    let extents = dataExtents(record0.attributes);
    if (!extents.some((e) => !e.resident && e.lowestVcn === 0)) {
      throw new CorruptError('NTFS MFT record 0', record0.offset, '$MFT has no non-resident $DATA attribute starting at VCN 0');
    }
    let stream = new AttributeStream(extents, geometry.clusterSize, geometry.totalClusters, structure);
    let attributes = record0.attributes;
    const list = record0.attributes.find((a) => a.type === AttrType.attributeList);
    if (list) {
      // A fragmented MFT keeps further $DATA extents in extension records. Take
      // them in VCN order: each extent maps the records holding the next ones.
      const listBytes = list.resident
        ? list.value
        : await new AttributeStream([list], geometry.clusterSize, geometry.totalClusters, 'NTFS $MFT attribute list').readAll(metadata, 1024 * 1024);
      const entries = parseAttributeList(listBytes, 'NTFS $MFT attribute list', list.offset)
        .filter((e) => e.type === AttrType.data && e.name === '' && e.holder.record !== 0)
        .sort((a, b) => a.lowestVcn - b.lowestVcn);
      // Each extension record is read once, as for any other file (attribute-list.ts): a
      // hostile list naming one record 32,000 times must not grow the attributes quadratically.
      const holders = new Set<number>();
      attributes = [...attributes];
      for (const entry of entries) {
        if (holders.has(entry.holder.record)) continue;
        if (holders.size >= MAX_MFT_EXTENSIONS) throw new CorruptError('NTFS $MFT attribute list', list.offset, `names more than ${MAX_MFT_EXTENSIONS} extension records`);
        holders.add(entry.holder.record);
        const pos = entry.holder.record * size;
        const physical = stream.physicalOffset(pos);
        if (physical === null) throw new CorruptError(structure, list.offset, `extension record ${entry.holder.record} is not mapped by the extents before it`);
        const ext = parseMftRecord(await readExact(metadata, physical, size, `NTFS MFT record ${entry.holder.record}`), entry.holder.record, physical);
        if (ext.base?.record !== 0) throw new CorruptError(`NTFS MFT record ${entry.holder.record}`, physical, 'listed as an $MFT extension but does not belong to record 0');
        const before = extents.length;
        for (const a of dataExtents(ext.attributes)) {
          if (!extents.some((e) => !e.resident && !a.resident && e.lowestVcn === a.lowestVcn)) extents = [...extents, a];
        }
        for (const a of ext.attributes) if (!(a.type === AttrType.data && a.name === '')) attributes.push(a);
        if (extents.length !== before) stream = new AttributeStream(extents, geometry.clusterSize, geometry.totalClusters, structure);
      }
      attributes = [...attributes.filter((a) => !(a.type === AttrType.data && a.name === '')), ...extents];
    }
    const mft = new Mft(geometry, metadata, stream, attributes);
    if (mft.recordCount < 16) throw new CorruptError(structure, record0.offset, `$MFT holds only ${mft.recordCount} records`);
    return mft;
  }

  /** Read and parse record `number` (fixups verified), falling back to $MFTMirr for the first records. */
  readRecord(number: number): Promise<MftRecord> {
    const hit = this.cache.get(number);
    if (hit) {
      this.cache.delete(number);
      this.cache.set(number, hit);
      return hit;
    }
    const p = this.load(number);
    // Failures are cached too: a corrupt record stays corrupt, no need to reread it.
    p.catch(() => undefined);
    this.cache.set(number, p);
    if (this.cache.size > RECORD_CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as number);
    return p;
  }

  private async load(number: number): Promise<MftRecord> {
    const size = this.geometry.mftRecordSize;
    if (!Number.isSafeInteger(number) || number < 0 || number >= this.recordCount) {
      throw new CorruptError('NTFS MFT', this.stream.physicalOffset(0) ?? 0, `record ${number} referenced, but the MFT holds ${this.recordCount} records`);
    }
    // A buffer per record: parsed attributes keep views into it.
    const buf = Buffer.allocUnsafe(size);
    if ((await this.stream.read(this.metadata, buf, 0, size, number * size)) !== size) {
      throw new CorruptError('NTFS MFT', this.stream.physicalOffset(0) ?? 0, `record ${number} lies past the end of the MFT data`);
    }
    const offset = this.stream.physicalOffset(number * size) ?? 0;
    try {
      return parseMftRecord(buf, number, offset);
    } catch (e) {
      if (!(e instanceof CorruptError) || number >= MIRRORED_RECORDS) throw e;
      try {
        return await readRecordAt(this.metadata, this.geometry.mftMirrLcn * this.geometry.clusterSize + number * size, size, number);
      } catch {
        throw e;
      }
    }
  }

  /** All attributes of the file whose base record is `number` (following its attribute list). */
  async fileAttributes(record: MftRecord): Promise<Attribute[]> {
    return loadAllAttributes(record, {
      clusterSize: this.geometry.clusterSize,
      totalClusters: this.geometry.totalClusters,
      metadata: this.metadata,
      readRecord: (n) => this.readRecord(n),
    });
  }
}

async function readRecordAt(source: ByteSource, at: number, size: number, number: number): Promise<MftRecord> {
  return parseMftRecord(await readExact(source, at, size, `NTFS MFT record ${number}`), number, at);
}
