import { CorruptError } from '../../errors.js';
import type { ByteSource } from '../../source/types.js';
import { AttrType, readFileReference, type Attribute, type FileReference, type MftRecord } from './record.js';
import { AttributeStream } from './stream.js';

/** Windows caps an attribute list at 256 KiB; allow some slack but stay bounded. */
const MAX_ATTRIBUTE_LIST = 1024 * 1024;

export interface AttributeListEntry {
  type: number;
  name: string;
  lowestVcn: number;
  holder: FileReference;
  id: number;
}

/**
 * Parse an $ATTRIBUTE_LIST value: one entry per attribute (or attribute
 * extent) of a file whose attributes do not fit in its base record, naming
 * the MFT record that holds it.
 */
export function parseAttributeList(b: Buffer, structure: string, offset: number): AttributeListEntry[] {
  const entries: AttributeListEntry[] = [];
  let at = 0;
  while (at + 0x1a <= b.length) {
    const type = b.readUInt32LE(at);
    const length = b.readUInt16LE(at + 4);
    if (type === 0 || type === AttrType.end) break;
    if (length < 0x1a || at + length > b.length) throw new CorruptError(structure, offset + at, `attribute list entry length ${length} invalid`);
    const nameLength = b[at + 6];
    const nameOffset = b[at + 7];
    if (nameLength && nameOffset + nameLength * 2 > length) throw new CorruptError(structure, offset + at, 'attribute list entry name outside the entry');
    const vcn = b.readBigUInt64LE(at + 8);
    entries.push({
      type,
      name: nameLength ? b.toString('utf16le', at + nameOffset, at + nameOffset + nameLength * 2) : '',
      lowestVcn: vcn > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(vcn),
      holder: readFileReference(b, at + 0x10),
      id: b.readUInt16LE(at + 0x18),
    });
    at += length;
  }
  return entries;
}

export interface AttributeLoader {
  clusterSize: number;
  totalClusters: number;
  metadata: ByteSource;
  readRecord(number: number): Promise<MftRecord>;
}

/**
 * All attributes of a file: those in its base record plus, when it has an
 * $ATTRIBUTE_LIST, those in the extension records the list names. Each
 * extension record is read once and must say it belongs to this base record;
 * the number of records is bounded by the list's size, so hostile lists cannot
 * make this loop.
 */
export async function loadAllAttributes(base: MftRecord, loader: AttributeLoader): Promise<Attribute[]> {
  const listAttr = base.attributes.find((a) => a.type === AttrType.attributeList);
  if (!listAttr) return base.attributes;
  const structure = `NTFS attribute list of MFT record ${base.number}`;
  const bytes = listAttr.resident
    ? listAttr.value
    : await new AttributeStream([listAttr], loader.clusterSize, loader.totalClusters, structure).readAll(loader.metadata, MAX_ATTRIBUTE_LIST);
  const entries = parseAttributeList(bytes, structure, listAttr.offset);
  const holders = [...new Set(entries.map((e) => e.holder.record))].filter((n) => n !== base.number);
  const attributes = [...base.attributes];
  for (const number of holders) {
    const ext = await loader.readRecord(number);
    if (!ext.base || ext.base.record !== base.number) {
      throw new CorruptError(structure, listAttr.offset, `names MFT record ${number} as an extension, but that record ${ext.base ? `belongs to record ${ext.base.record}` : 'is a base record'}`);
    }
    attributes.push(...ext.attributes);
  }
  return attributes;
}

/** The extents of one attribute (type and exact name) among a file's attributes. */
export function extentsOf(attributes: Attribute[], type: number, name: string): Attribute[] {
  return attributes.filter((a) => a.type === type && a.name === name);
}
