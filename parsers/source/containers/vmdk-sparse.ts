import { inflateSync } from 'node:zlib';
import { CorruptError, UnsupportedError } from '../../errors.js';
import { readExact } from '../read.js';
import type { ByteRange, ByteSource } from '../types.js';
import { u64le } from './binary.js';
import { Lru } from '../../lru.js';
import type { Extent } from './mapped.js';
import { RangeCollector } from './ranges.js';

/**
 * A VMware hosted sparse extent ("KDMV", VMDK spec 5.0 "Hosted Sparse
 * Extents"): grain directory -> grain tables -> grains. streamOptimized
 * extents deflate each grain behind a marker and keep the real grain directory
 * offset in a footer near the end of the file.
 */
export const SPARSE_MAGIC = 0x564d444b; // "KDMV" little-endian
const GD_AT_END = 0xffffffffffffffffn;
const FLAG_ZEROED_GTE = 1 << 2;
const FLAG_COMPRESSED = 1 << 16;
const FLAG_MARKERS = 1 << 17;
const GT_CACHE = 256;
const GRAIN_CACHE_BYTES = 32 * 1024 * 1024;

export interface SparseHeader {
  flags: number;
  capacity: number; // bytes
  grainSize: number; // bytes
  descriptorOffset: number; // bytes
  descriptorSize: number; // bytes
  numGTEsPerGT: number;
  gdOffset: number; // bytes
  compressed: boolean;
  markers: boolean;
}

export function parseSparseHeader(buf: Buffer, at: number): SparseHeader & { gdAtEnd: boolean } {
  const S = 'VMDK sparse header';
  if (buf.readUInt32LE(0) !== SPARSE_MAGIC) throw new CorruptError(S, at, 'bad magic');
  const version = buf.readUInt32LE(4);
  if (version < 1 || version > 3) throw new UnsupportedError(`VMDK sparse extent version ${version} is not supported`);
  const flags = buf.readUInt32LE(8);
  const capacitySectors = u64le(buf, 12, S, at);
  const grainSectors = u64le(buf, 20, S, at);
  if (grainSectors < 1 || grainSectors > 2 ** 16 || (grainSectors & (grainSectors - 1)) !== 0) {
    throw new CorruptError(S, at + 20, `grain size of ${grainSectors} sectors is not a power of two up to 65536`);
  }
  const numGTEsPerGT = buf.readUInt32LE(44);
  if (numGTEsPerGT < 1 || numGTEsPerGT > 4096) throw new CorruptError(S, at + 44, `${numGTEsPerGT} entries per grain table (expected 1..4096)`);
  const gdAtEnd = buf.readBigUInt64LE(56) === GD_AT_END;
  const gdOffset = gdAtEnd ? 0 : u64le(buf, 56, S, at) * 512;
  const compressed = (flags & FLAG_COMPRESSED) !== 0;
  if (compressed && buf.readUInt16LE(77) !== 1) throw new UnsupportedError(`VMDK compression algorithm ${buf.readUInt16LE(77)} is not supported`);
  if (capacitySectors * 512 > Number.MAX_SAFE_INTEGER) throw new CorruptError(S, at + 12, 'capacity out of range');
  return {
    flags,
    capacity: capacitySectors * 512,
    grainSize: grainSectors * 512,
    descriptorOffset: u64le(buf, 28, S, at) * 512,
    descriptorSize: u64le(buf, 36, S, at) * 512,
    numGTEsPerGT,
    gdOffset,
    gdAtEnd,
    compressed,
    markers: (flags & FLAG_MARKERS) !== 0,
  };
}

export interface SparseExtent {
  header: SparseHeader;
  /** Map a position within the extent; 'backing' means unallocated here. */
  extentAt(pos: number): Promise<Extent>;
  allocated(): Promise<ByteRange[]>;
}

export async function openSparseExtent(file: ByteSource, name: string): Promise<SparseExtent> {
  const first = await readExact(file, 0, 512, 'VMDK sparse header');
  let h = parseSparseHeader(first, 0);
  if (h.gdAtEnd) {
    // streamOptimized: the footer (a header copy with the real GD offset) sits 1024 bytes before the end.
    if (file.size < 1536) throw new CorruptError('VMDK footer', 0, 'file too short for a footer');
    const footer = await readExact(file, file.size - 1024, 512, 'VMDK footer');
    h = parseSparseHeader(footer, file.size - 1024);
    if (h.gdAtEnd) throw new CorruptError('VMDK footer', file.size - 1024 + 56, 'footer does not give the grain directory offset');
  }
  const header: SparseHeader = h;
  const grainsPerGT = header.numGTEsPerGT;
  const bytesPerGT = grainsPerGT * header.grainSize;
  const gdEntries = Math.ceil(header.capacity / bytesPerGT);
  if (gdEntries * 4 > file.size) throw new CorruptError('VMDK grain directory', header.gdOffset, `${gdEntries} entries cannot fit the ${file.size}-byte file`);
  const gd = gdEntries ? await readExact(file, header.gdOffset, gdEntries * 4, `VMDK grain directory of ${name}`) : Buffer.alloc(0);
  const tables = new Lru<number, Promise<Buffer>>(GT_CACHE);
  const grains = new Lru<number, Promise<Buffer>>(GRAIN_CACHE_BYTES);

  const table = (gdIndex: number): Promise<Buffer | null> => {
    const sector = gd.readUInt32LE(gdIndex * 4);
    if (sector === 0) return Promise.resolve(null);
    const at = sector * 512;
    if (at + grainsPerGT * 4 > file.size) {
      return Promise.reject(new CorruptError('VMDK grain directory', header.gdOffset + gdIndex * 4, `grain table at ${at} is past the end of the ${file.size}-byte file`));
    }
    return tables.getOrLoad(at, () => readExact(file, at, grainsPerGT * 4, 'VMDK grain table'));
  };

  const loadCompressed = (at: number, gteOffset: number): Promise<Buffer> =>
    grains.getOrLoad(
      at,
      async () => {
        let dataAt = at;
        let length: number;
        if (header.markers) {
          const marker = await readExact(file, at, 12, 'VMDK grain marker');
          length = marker.readUInt32LE(8);
          dataAt = at + 12;
          if (length === 0 || length > header.grainSize * 2 + 1024) {
            throw new CorruptError('VMDK grain marker', at, `compressed grain of ${length} bytes is implausible for ${header.grainSize}-byte grains`);
          }
        } else {
          length = Math.min(header.grainSize * 2 + 1024, file.size - at);
        }
        const data = await readExact(file, dataAt, length, 'VMDK compressed grain');
        let out: Buffer;
        try {
          out = inflateSync(data, { maxOutputLength: header.grainSize, finishFlush: 2 /* Z_SYNC_FLUSH */ });
        } catch (e) {
          throw new CorruptError('VMDK compressed grain', at, `cannot inflate: ${(e as Error).message} (grain table entry at ${gteOffset})`);
        }
        return out;
      },
      header.grainSize,
    );

  const extentAt = async (pos: number): Promise<Extent> => {
    const grain = Math.floor(pos / header.grainSize);
    const inGrain = pos - grain * header.grainSize;
    const length = header.grainSize - inGrain;
    const gdIndex = Math.floor(grain / grainsPerGT);
    const gt = await table(gdIndex);
    if (!gt) return { kind: 'backing', length };
    const gte = gt.readUInt32LE((grain % grainsPerGT) * 4);
    if (gte === 0) return { kind: 'backing', length };
    if (gte === 1 && (header.flags & FLAG_ZEROED_GTE || header.compressed)) return { kind: 'zero', length };
    const at = gte * 512;
    if (at >= file.size) {
      throw new CorruptError('VMDK grain table', gd.readUInt32LE(gdIndex * 4) * 512 + (grain % grainsPerGT) * 4, `grain at ${at} is past the end of the ${file.size}-byte file`);
    }
    if (header.compressed) return { kind: 'chunk', length, skip: inGrain, load: () => loadCompressed(at, gdIndex) };
    return { kind: 'data', length, source: file, offset: at + inGrain };
  };

  const allocated = async (): Promise<ByteRange[]> => {
    const out = new RangeCollector();
    for (let i = 0; i < gdEntries; i++) {
      const gt = await table(i);
      if (!gt) continue;
      for (let j = 0; j < grainsPerGT; j++) {
        const gte = gt.readUInt32LE(j * 4);
        if (gte > 1 || (gte === 1 && !(header.flags & FLAG_ZEROED_GTE) && !header.compressed)) {
          out.add((i * grainsPerGT + j) * header.grainSize, header.grainSize);
        }
      }
    }
    return out.result();
  };

  return { header, extentAt, allocated };
}
