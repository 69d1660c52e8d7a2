import { basename } from 'node:path';
import { CorruptError, NotFoundError, UnsupportedError, isLooplessError } from '../../errors.js';
import type { ContainerFormat, OpenContext } from '../open.js';
import { readExact } from '../read.js';
import type { ByteRange, ByteSource } from '../types.js';
import { openBackingFile } from './backing.js';
import { guidLE, isAllZero, u64le, utf16 } from './binary.js';
import { crc32c } from './crc32c.js';
import { Lru } from '../../lru.js';
import { MappedSource, type Extent } from './mapped.js';
import { RangeCollector } from './ranges.js';
import { replayVhdxLog } from './vhdx-log.js';

/**
 * VHDX (MS-VHDX): two headers (the valid one with the higher sequence number
 * wins), a region table pointing at the block allocation table (BAT) and the
 * metadata region, payload blocks, and for differencing disks sector bitmap
 * blocks interleaved in the BAT. A pending log is replayed in memory first.
 */
const KiB = 1024;
const MiB = 1024 * KiB;
const BAT_GUID = '2DC27766-F623-4200-9D64-115E9BFD4A08';
const METADATA_GUID = '8B7CA206-4790-4B9A-B8FE-575F050F886E';
const META_FILE_PARAMETERS = 'CAA16737-FA36-4D43-B3B6-33F0AA44E76B';
const META_VIRTUAL_DISK_SIZE = '2FA54224-CD1B-4876-B211-5DBED83BF4B8';
const META_VIRTUAL_DISK_ID = 'BECA12AB-B2E6-4523-93EF-C309E000C746';
const META_LOGICAL_SECTOR = '8141BF1D-A96F-4709-BA47-F233A8FAAB5F';
const META_PHYSICAL_SECTOR = 'CDA348C7-445D-4471-9CC9-E9885251C556';
const META_PAGE83 = 'BECA12AB-B2E6-4523-93EF-C309E000C746';
const META_PARENT_LOCATOR = 'A8D35F2D-B30B-454D-ABF7-D3D84834AB0C';
const KNOWN_METADATA = new Set([META_FILE_PARAMETERS, META_VIRTUAL_DISK_SIZE, META_VIRTUAL_DISK_ID, META_LOGICAL_SECTOR, META_PHYSICAL_SECTOR, META_PAGE83, META_PARENT_LOCATOR]);

const PAYLOAD_NOT_PRESENT = 0;
const PAYLOAD_FULLY_PRESENT = 6;
const PAYLOAD_PARTIALLY_PRESENT = 7;
const SB_PRESENT = 6;
const BAT_PAGE = 64 * KiB;

interface Header {
  sequence: bigint;
  logGuid: Buffer;
  logVersion: number;
  version: number;
  logLength: number;
  logOffset: number;
}

async function readHeader(file: ByteSource, at: number): Promise<Header | null> {
  if (file.size < at + 4 * KiB) return null;
  const buf = Buffer.from(await readExact(file, at, 4 * KiB, 'VHDX header'));
  if (buf.toString('latin1', 0, 4) !== 'head') return null;
  const stored = buf.readUInt32LE(4);
  buf.writeUInt32LE(0, 4);
  if (crc32c(buf) !== stored) return null;
  return {
    sequence: buf.readBigUInt64LE(8),
    logGuid: Buffer.from(buf.subarray(48, 64)),
    logVersion: buf.readUInt16LE(64),
    version: buf.readUInt16LE(66),
    logLength: buf.readUInt32LE(68),
    logOffset: u64le(buf, 72, 'VHDX header', at),
  };
}

interface Region {
  offset: number;
  length: number;
}

async function readRegionTable(file: ByteSource): Promise<Map<string, Region>> {
  for (const at of [192 * KiB, 256 * KiB]) {
    if (file.size < at + 64 * KiB) continue;
    const buf = Buffer.from(await readExact(file, at, 64 * KiB, 'VHDX region table'));
    if (buf.toString('latin1', 0, 4) !== 'regi') continue;
    const stored = buf.readUInt32LE(4);
    buf.writeUInt32LE(0, 4);
    if (crc32c(buf) !== stored) continue;
    const count = buf.readUInt32LE(8);
    if (count > 2047) throw new CorruptError('VHDX region table', at + 8, `${count} entries (at most 2047)`);
    const regions = new Map<string, Region>();
    for (let i = 0; i < count; i++) {
      const e = 16 + i * 32;
      const guid = guidLE(buf, e);
      const region = { offset: u64le(buf, e + 16, 'VHDX region table', at), length: buf.readUInt32LE(e + 24) };
      const required = (buf.readUInt32LE(e + 28) & 1) === 1;
      if (guid !== BAT_GUID && guid !== METADATA_GUID && required) {
        throw new UnsupportedError(`VHDX file needs unknown region ${guid}`);
      }
      if (region.offset + region.length > file.size) {
        throw new CorruptError('VHDX region table', at + e, `region ${guid} (${region.length} bytes at ${region.offset}) runs past the end of the ${file.size}-byte file`);
      }
      regions.set(guid, region);
    }
    return regions;
  }
  throw new CorruptError('VHDX region table', 192 * KiB, 'neither copy has a valid signature and checksum');
}

interface Metadata {
  blockSize: number;
  hasParent: boolean;
  size: number;
  logicalSectorSize: number;
  parentLocator?: Map<string, string>;
}

async function readMetadata(file: ByteSource, region: Region): Promise<Metadata> {
  const S = 'VHDX metadata table';
  const table = await readExact(file, region.offset, Math.min(64 * KiB, region.length), S);
  if (table.toString('latin1', 0, 8) !== 'metadata') throw new CorruptError(S, region.offset, 'bad signature');
  const count = table.readUInt16LE(10);
  if (count > 2047 || 32 + count * 32 > table.length) throw new CorruptError(S, region.offset + 10, `${count} entries do not fit the table`);
  const items = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const e = 32 + i * 32;
    const id = guidLE(table, e);
    const offset = table.readUInt32LE(e + 16);
    const length = table.readUInt32LE(e + 20);
    const required = (table.readUInt32LE(e + 24) & 4) !== 0;
    if (!KNOWN_METADATA.has(id)) {
      if (required) throw new UnsupportedError(`VHDX file needs unknown metadata item ${id}`);
      continue;
    }
    if (length > MiB || offset + length > region.length) {
      throw new CorruptError(S, region.offset + e, `item ${id} (${length} bytes at ${offset}) runs past the metadata region`);
    }
    items.set(id, await readExact(file, region.offset + offset, length, `VHDX metadata item ${id}`));
  }
  const need = (id: string, name: string, min: number): Buffer => {
    const item = items.get(id);
    if (!item || item.length < min) throw new CorruptError(S, region.offset, `missing ${name}`);
    return item;
  };
  const params = need(META_FILE_PARAMETERS, 'file parameters', 8);
  const blockSize = params.readUInt32LE(0);
  if (blockSize < MiB || blockSize > 256 * MiB || (blockSize & (blockSize - 1)) !== 0) {
    throw new CorruptError(S, region.offset, `block size ${blockSize} is not a power of two between 1 MiB and 256 MiB`);
  }
  const hasParent = (params.readUInt32LE(4) & 2) !== 0;
  const size = u64le(need(META_VIRTUAL_DISK_SIZE, 'virtual disk size', 8), 0, S, region.offset);
  const logicalSectorSize = need(META_LOGICAL_SECTOR, 'logical sector size', 4).readUInt32LE(0);
  if (logicalSectorSize !== 512 && logicalSectorSize !== 4096) {
    throw new CorruptError(S, region.offset, `logical sector size ${logicalSectorSize} (must be 512 or 4096)`);
  }
  if (size > 64 * 1024 ** 4 || size % logicalSectorSize !== 0) throw new CorruptError(S, region.offset, `virtual disk size ${size} is invalid`);
  let parentLocator: Map<string, string> | undefined;
  const loc = items.get(META_PARENT_LOCATOR);
  if (hasParent && loc) parentLocator = parseParentLocator(loc);
  return { blockSize, hasParent, size, logicalSectorSize, parentLocator };
}

function parseParentLocator(item: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  if (item.length < 20) return out;
  const count = item.readUInt16LE(18);
  for (let i = 0; i < count && 20 + (i + 1) * 12 <= item.length; i++) {
    const e = 20 + i * 12;
    const ko = item.readUInt32LE(e);
    const vo = item.readUInt32LE(e + 4);
    const kl = item.readUInt16LE(e + 8);
    const vl = item.readUInt16LE(e + 10);
    if (ko + kl > item.length || vo + vl > item.length) continue;
    out.set(utf16(item.subarray(ko, ko + kl), false), utf16(item.subarray(vo, vo + vl), false));
  }
  return out;
}

export async function openVhdx(inner: ByteSource, path: string, context: OpenContext): Promise<ByteSource> {
  const headers = (await Promise.all([readHeader(inner, 64 * KiB), readHeader(inner, 128 * KiB)])).filter((h): h is Header => h !== null);
  if (headers.length === 0) throw new CorruptError('VHDX header', 64 * KiB, 'neither header has a valid signature and checksum');
  const header = headers.reduce((a, b) => (b.sequence > a.sequence ? b : a));
  if (header.version !== 1) throw new UnsupportedError(`VHDX version ${header.version} is not supported`);

  let file: ByteSource = inner;
  if (!isAllZero(header.logGuid)) {
    if (header.logVersion !== 0) throw new UnsupportedError(`VHDX log version ${header.logVersion} must be replayed but is unknown`);
    file = await replayVhdxLog(inner, header.logGuid, header.logOffset, header.logLength);
  }

  const regions = await readRegionTable(file);
  const batRegion = regions.get(BAT_GUID);
  const metaRegion = regions.get(METADATA_GUID);
  if (!batRegion || !metaRegion) throw new CorruptError('VHDX region table', 192 * KiB, 'BAT or metadata region missing');
  const meta = await readMetadata(file, metaRegion);
  const { blockSize, size } = meta;
  const chunkRatio = (2 ** 23 * meta.logicalSectorSize) / blockSize;
  const dataBlocks = Math.ceil(size / blockSize);
  const batEntries = meta.hasParent
    ? Math.ceil(dataBlocks / chunkRatio) * (chunkRatio + 1)
    : dataBlocks + Math.floor(Math.max(0, dataBlocks - 1) / chunkRatio);
  if (batEntries * 8 > batRegion.length) {
    throw new CorruptError('VHDX BAT', batRegion.offset, `${batEntries} entries needed but the region holds ${Math.floor(batRegion.length / 8)}`);
  }

  const batPages = new Lru<number, Promise<Buffer>>(256);
  const batEntry = async (index: number): Promise<{ state: number; offset: number }> => {
    const byte = index * 8;
    const page = Math.floor(byte / BAT_PAGE);
    const buf = await batPages.getOrLoad(page, () => {
      const start = batRegion.offset + page * BAT_PAGE;
      return readExact(file, start, Math.min(BAT_PAGE, batRegion.offset + batRegion.length - start), 'VHDX BAT');
    });
    const v = buf.readBigUInt64LE(byte % BAT_PAGE);
    const offset = Number(v >> 20n) * MiB;
    if (offset > Number.MAX_SAFE_INTEGER) throw new CorruptError('VHDX BAT', batRegion.offset + byte, 'offset out of range');
    return { state: Number(v & 7n), offset };
  };

  const bitmapPages = new Lru<number, Promise<Buffer>>(256);
  const sectorsPerBlock = blockSize / meta.logicalSectorSize;

  let parent: ByteSource | undefined;
  if (meta.hasParent) parent = await openParent(path, context, meta.parentLocator);

  const checkData = (offset: number, entryIndex: number, length: number) => {
    if (offset < MiB || offset + length > file.size) {
      throw new CorruptError('VHDX BAT', batRegion.offset + entryIndex * 8, `block at ${offset} is past the end of the ${file.size}-byte file`);
    }
  };

  const extentAt = async (pos: number): Promise<Extent> => {
    const block = Math.floor(pos / blockSize);
    const inBlock = pos - block * blockSize;
    const toBlockEnd = blockSize - inBlock;
    const index = block + Math.floor(block / chunkRatio);
    const { state, offset } = await batEntry(index);
    if (state === PAYLOAD_FULLY_PRESENT) {
      checkData(offset, index, 0);
      return { kind: 'data', length: toBlockEnd, source: file, offset: offset + inBlock };
    }
    if (state === PAYLOAD_NOT_PRESENT) return { kind: meta.hasParent ? 'backing' : 'zero', length: toBlockEnd };
    if (state !== PAYLOAD_PARTIALLY_PRESENT || !meta.hasParent) return { kind: 'zero', length: toBlockEnd };
    // Partially present: the chunk's sector bitmap (least significant bit first) says which sectors are here.
    const chunk = Math.floor(block / chunkRatio);
    const sbIndex = chunk * (chunkRatio + 1) + chunkRatio;
    const sb = await batEntry(sbIndex);
    if (sb.state !== SB_PRESENT) throw new CorruptError('VHDX BAT', batRegion.offset + sbIndex * 8, 'partially present block without a sector bitmap');
    checkData(sb.offset, sbIndex, MiB);
    const sectorInBlock = Math.floor(inBlock / meta.logicalSectorSize);
    const bitBase = (block % chunkRatio) * sectorsPerBlock;
    const bitAt = async (s: number) => {
      const bit = bitBase + s;
      const pageIndex = Math.floor(bit / 8 / 4096);
      const page = await bitmapPages.getOrLoad(sb.offset + pageIndex * 4096, () => readExact(file, sb.offset + pageIndex * 4096, 4096, 'VHDX sector bitmap'));
      return (page[(bit >> 3) % 4096] >> (bit & 7)) & 1;
    };
    const here = await bitAt(sectorInBlock);
    let s = sectorInBlock + 1;
    while (s < sectorsPerBlock && (await bitAt(s)) === here) s++;
    const length = s * meta.logicalSectorSize - inBlock;
    if (!here) return { kind: 'backing', length };
    checkData(offset, index, 0);
    return { kind: 'data', length, source: file, offset: offset + inBlock };
  };

  const ownAllocated = async (): Promise<ByteRange[]> => {
    const out = new RangeCollector();
    for (let block = 0; block < dataBlocks; block++) {
      const { state } = await batEntry(block + Math.floor(block / chunkRatio));
      if (state === PAYLOAD_FULLY_PRESENT || state === PAYLOAD_PARTIALLY_PRESENT) out.add(block * blockSize, blockSize);
    }
    return out.result();
  };

  return new MappedSource({
    size,
    description: `VHDX ${meta.hasParent ? 'differencing ' : ''}image (${inner.description})`,
    extentAt,
    backing: parent,
    ownAllocated,
    closeOwn: async () => {
      batPages.clear();
      bitmapPages.clear();
      await file.close();
    },
  });
}

async function openParent(path: string, context: OpenContext, locator: Map<string, string> | undefined): Promise<ByteSource> {
  if (!locator) throw new CorruptError('VHDX parent locator', 0, 'differencing disk has no parent locator');
  const names: string[] = [];
  for (const key of ['relative_path', 'volume_path', 'absolute_win32_path']) {
    const v = locator.get(key);
    if (!v) continue;
    const n = v.replace(/\\/g, '/');
    if (key === 'relative_path') names.push(n);
    names.push(basename(n));
  }
  const candidates = [...new Set(names.filter((n) => n.length > 0))];
  if (candidates.length === 0) throw new CorruptError('VHDX parent locator', 0, 'no usable parent path');
  let last: unknown;
  for (const name of candidates) {
    try {
      return await openBackingFile(context, path, name);
    } catch (e) {
      if (!(isLooplessError(e) && e.code === 'ENOENT')) throw e;
      last = e;
    }
  }
  throw new NotFoundError(path, `parent disk not found (tried ${candidates.join(', ')}; last: ${(last as Error).message})`);
}

export const vhdxFormat: ContainerFormat = {
  name: 'vhdx',
  detect: (head) => head.length >= 8 && head.toString('latin1', 0, 8) === 'vhdxfile',
  open: openVhdx,
};
