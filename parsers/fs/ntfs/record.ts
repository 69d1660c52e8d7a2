import { CorruptError } from '../../errors.js';
import { applyFixups } from './fixup.js';

/** Attribute type codes we use. */
export const AttrType = {
  standardInformation: 0x10,
  attributeList: 0x20,
  fileName: 0x30,
  volumeName: 0x60,
  data: 0x80,
  indexRoot: 0x90,
  indexAllocation: 0xa0,
  bitmap: 0xb0,
  reparsePoint: 0xc0,
  end: 0xffffffff,
} as const;

/** Attribute header flags. */
export const AttrFlag = { compressedMask: 0x00ff, encrypted: 0x4000, sparse: 0x8000 } as const;

/** MFT record header flags. */
export const RecordFlag = { inUse: 0x0001, directory: 0x0002 } as const;

interface AttributeCommon {
  type: number;
  /** UTF-16 name ("" for the unnamed attribute, "$I30" for directory indexes, the stream name for ADS). */
  name: string;
  flags: number;
  id: number;
  /** MFT record holding this attribute (the base record or an extension). */
  recordNumber: number;
  /** Byte offset of the attribute header within the volume, for error messages. */
  offset: number;
}

export interface ResidentAttribute extends AttributeCommon {
  resident: true;
  value: Buffer;
}

export interface NonResidentAttribute extends AttributeCommon {
  resident: false;
  lowestVcn: number;
  highestVcn: number;
  /** log2 of the clusters per compression unit (0: not compressed). */
  compressionUnitLog2: number;
  /** Sizes are only meaningful in the extent with lowestVcn 0. */
  allocatedSize: number;
  dataSize: number;
  initializedSize: number;
  /** Clusters really allocated, in bytes (compressed and sparse attributes only). */
  compressedSize: number | null;
  /** The mapping pairs bytes, decoded when first needed. */
  mappingPairs: Buffer;
  /** Volume offset of the mapping pairs, for error messages. */
  mappingPairsOffset: number;
}

export type Attribute = ResidentAttribute | NonResidentAttribute;

export interface FileReference {
  record: number;
  sequence: number;
}

export interface MftRecord {
  number: number;
  sequence: number;
  linkCount: number;
  flags: number;
  /** Non-null for an extension record: the base record it belongs to. */
  base: FileReference | null;
  attributes: Attribute[];
  /** Volume offset of the record, for error messages. */
  offset: number;
}

export function readFileReference(b: Buffer, at: number): FileReference {
  return { record: b.readUIntLE(at, 6), sequence: b.readUInt16LE(at + 6) };
}

/** Read a u64 size field; a value no JS number can hold exactly is corrupt. */
export function readSize(b: Buffer, at: number, structure: string, offset: number): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CorruptError(structure, offset + at, `size ${v} out of range`);
  return Number(v);
}

/**
 * Parse one MFT record (a FILE record of `buf.length` bytes read at volume
 * offset `offset`): verify and apply its fixups, then walk its attributes.
 * Every attribute must lie inside the record's used bytes; anything else
 * makes the whole record corrupt rather than half-trusted.
 */
export function parseMftRecord(buf: Buffer, number: number, offset: number): MftRecord {
  const structure = `NTFS MFT record ${number}`;
  applyFixups(buf, 'FILE', structure, offset);
  const fail = (at: number, detail: string): never => {
    throw new CorruptError(structure, offset + at, detail);
  };
  const bytesInUse = buf.readUInt32LE(0x18);
  const firstAttr = buf.readUInt16LE(0x14);
  if (bytesInUse > buf.length || bytesInUse < 0x30) fail(0x18, `bytes in use ${bytesInUse} outside the ${buf.length}-byte record`);
  if (firstAttr < 0x30 || firstAttr >= bytesInUse || firstAttr & 7) fail(0x14, `first attribute offset ${firstAttr} invalid`);
  const baseRef = readFileReference(buf, 0x20);
  const record: MftRecord = {
    number,
    sequence: buf.readUInt16LE(0x10),
    linkCount: buf.readUInt16LE(0x12),
    flags: buf.readUInt16LE(0x16),
    base: baseRef.record === 0 && baseRef.sequence === 0 ? null : baseRef,
    attributes: [],
    offset,
  };
  if (record.base && record.base.record === number) fail(0x20, 'base record reference points to the record itself');
  let at = firstAttr;
  // Each attribute takes at least 24 bytes, which bounds the loop.
  while (at + 4 <= bytesInUse) {
    const type = buf.readUInt32LE(at);
    if (type === AttrType.end) break;
    if (at + 0x18 > bytesInUse) fail(at, 'attribute header runs past the end of the record');
    const length = buf.readUInt32LE(at + 4);
    if (length < 0x18 || length & 7 || at + length > bytesInUse) {
      fail(at + 4, `attribute length ${length} overflows the record (${bytesInUse - at} bytes left)`);
    }
    record.attributes.push(parseAttribute(buf.subarray(at, at + length), number, offset + at, structure));
    at += length;
  }
  return record;
}

function parseAttribute(a: Buffer, recordNumber: number, offset: number, structure: string): Attribute {
  const fail = (at: number, detail: string): never => {
    throw new CorruptError(structure, offset + at, detail);
  };
  const type = a.readUInt32LE(0);
  const nonResident = a[8];
  const nameLength = a[9];
  const nameOffset = a.readUInt16LE(10);
  if (nameLength && nameOffset + nameLength * 2 > a.length) fail(10, 'attribute name outside the attribute');
  const common = {
    type,
    name: nameLength ? a.toString('utf16le', nameOffset, nameOffset + nameLength * 2) : '',
    flags: a.readUInt16LE(12),
    id: a.readUInt16LE(14),
    recordNumber,
    offset,
  };
  if (nonResident === 0) {
    const valueLength = a.readUInt32LE(0x10);
    const valueOffset = a.readUInt16LE(0x14);
    if (valueOffset + valueLength > a.length) fail(0x10, `resident value (${valueLength} bytes at ${valueOffset}) outside the attribute`);
    // A view, not a copy: each record is read into a buffer of its own.
    return { ...common, resident: true, value: a.subarray(valueOffset, valueOffset + valueLength) };
  }
  if (nonResident !== 1) fail(8, `invalid non-resident flag ${nonResident}`);
  if (a.length < 0x40) fail(4, `non-resident attribute of only ${a.length} bytes`);
  const lowestVcn = readSize(a, 0x10, structure, offset);
  const highestVcnRaw = a.readBigInt64LE(0x18);
  // An empty non-resident attribute has highest VCN -1.
  if (highestVcnRaw < -1n || highestVcnRaw > BigInt(Number.MAX_SAFE_INTEGER)) fail(0x18, `invalid last VCN ${highestVcnRaw}`);
  const highestVcn = Number(highestVcnRaw);
  if (highestVcn < lowestVcn - 1) fail(0x18, `last VCN ${highestVcn} before first VCN ${lowestVcn}`);
  const pairsOffset = a.readUInt16LE(0x20);
  const compressionUnitLog2 = a.readUInt16LE(0x22);
  const hasCompressedSize = (common.flags & (AttrFlag.compressedMask | AttrFlag.sparse)) !== 0;
  const headerEnd = hasCompressedSize && a.length >= 0x48 ? 0x48 : 0x40;
  if (pairsOffset < 0x40 || pairsOffset > a.length) fail(0x20, `mapping pairs offset ${pairsOffset} outside the attribute`);
  return {
    ...common,
    resident: false,
    lowestVcn,
    highestVcn,
    compressionUnitLog2,
    allocatedSize: readSize(a, 0x28, structure, offset),
    dataSize: readSize(a, 0x30, structure, offset),
    initializedSize: readSize(a, 0x38, structure, offset),
    compressedSize: headerEnd === 0x48 ? readSize(a, 0x40, structure, offset) : null,
    mappingPairs: a.subarray(pairsOffset),
    mappingPairsOffset: offset + pairsOffset,
  };
}
