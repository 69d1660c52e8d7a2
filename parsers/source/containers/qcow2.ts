import { inflateRawSync } from 'node:zlib';
import { CorruptError, UnsupportedError } from '../../errors.js';
import type { ContainerFormat, OpenContext } from '../open.js';
import { readExact } from '../read.js';
import type { ByteRange, ByteSource } from '../types.js';
import { openBackingFile } from './backing.js';
import { u64be } from './binary.js';
import { Lru } from '../../lru.js';
import { MappedSource, type Extent } from './mapped.js';
import { RangeCollector } from './ranges.js';
import { decodeZstdFrames, loadZstd } from './zstd-frames.js';

/**
 * qcow2 (qemu's docs/interop/qcow2.txt), versions 2 and 3: a two-level table
 * (L1 -> L2 -> cluster), compressed clusters (deflate or zstd), extended L2
 * entries with 32 subclusters, and a backing file for unallocated clusters.
 * Snapshots are ignored: we read the active state. Encryption and external
 * data files are refused.
 */
const MAGIC = 0x514649fb;
const HEADER_V2_LENGTH = 72;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_DATA_FILE = 0x44415441;
const INCOMPAT_DIRTY = 1n << 0n;
const INCOMPAT_CORRUPT = 1n << 1n;
const INCOMPAT_DATA_FILE = 1n << 2n;
const INCOMPAT_COMPRESSION = 1n << 3n;
const INCOMPAT_EXTL2 = 1n << 4n;
const KNOWN_INCOMPAT = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
/** qemu's own limit on the L1 table (QCOW_MAX_L1_SIZE): we load it whole, so it must stay bounded. */
const MAX_L1_BYTES = 32 * 1024 * 1024;
const OFFSET_MASK = 0x00fffffffffffe00n;
const L2_CACHE_BYTES = 16 * 1024 * 1024;
const CLUSTER_CACHE_BYTES = 32 * 1024 * 1024;

export interface Qcow2Header {
  version: number;
  clusterBits: number;
  clusterSize: number;
  size: number;
  l1Size: number;
  l1Offset: number;
  backingFile?: string;
  backingFormat?: string;
  compression: 'deflate' | 'zstd';
  extendedL2: boolean;
}

export function parseQcow2Header(buf: Buffer, fileSize: number): Qcow2Header {
  const S = 'qcow2 header';
  if (buf.readUInt32BE(0) !== MAGIC) throw new CorruptError(S, 0, 'bad magic');
  const version = buf.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw new UnsupportedError(`qcow2 version ${version} is not supported (only 2 and 3)`);
  const clusterBits = buf.readUInt32BE(20);
  if (clusterBits < 9 || clusterBits > 21) throw new CorruptError(S, 20, `cluster_bits ${clusterBits} out of range 9..21`);
  const clusterSize = 2 ** clusterBits;
  const size = u64be(buf, 24, S, 0);
  const cryptMethod = buf.readUInt32BE(32);
  if (cryptMethod !== 0) {
    throw new UnsupportedError(`qcow2 image is encrypted (${cryptMethod === 1 ? 'AES' : cryptMethod === 2 ? 'LUKS' : `method ${cryptMethod}`}); encrypted images are not supported`);
  }
  const l1Size = buf.readUInt32BE(36);
  const l1Offset = u64be(buf, 40, S, 0);
  let incompat = 0n;
  let headerLength = HEADER_V2_LENGTH;
  let compression: Qcow2Header['compression'] = 'deflate';
  if (version === 3) {
    incompat = buf.readBigUInt64BE(72);
    headerLength = buf.readUInt32BE(100);
    if (headerLength < 104 || headerLength > clusterSize || headerLength > buf.length) {
      throw new CorruptError(S, 100, `header_length ${headerLength} is invalid`);
    }
    const unknown = incompat & ~KNOWN_INCOMPAT;
    if (unknown) throw new UnsupportedError(`qcow2 image uses unknown incompatible features 0x${unknown.toString(16)}`);
    if (incompat & INCOMPAT_DATA_FILE) throw new UnsupportedError('qcow2 image keeps its data in an external data file; not supported');
    if (incompat & INCOMPAT_COMPRESSION) {
      if (headerLength <= 104) throw new CorruptError(S, 104, 'compression type bit set but header has no compression_type field');
      const type = buf[104];
      if (type === 1) compression = 'zstd';
      else if (type !== 0) throw new UnsupportedError(`qcow2 compression type ${type} is not supported`);
    }
  }
  const extendedL2 = (incompat & INCOMPAT_EXTL2) !== 0n;
  if (extendedL2 && clusterBits < 14) throw new CorruptError(S, 20, 'extended L2 entries need clusters of at least 16 KiB');
  const l2Entries = clusterSize / (extendedL2 ? 16 : 8);
  const bytesPerL2 = l2Entries * clusterSize;
  const needed = Math.ceil(size / bytesPerL2);
  if (l1Size < needed) throw new CorruptError(S, 36, `L1 table has ${l1Size} entries but the ${size}-byte disk needs ${needed}`);
  if (l1Size * 8 > MAX_L1_BYTES) throw new CorruptError(S, 36, `L1 table of ${l1Size} entries exceeds qemu's 32 MiB limit`);
  if (l1Size > 0 && (l1Offset % clusterSize !== 0 || l1Offset + l1Size * 8 > fileSize)) {
    throw new CorruptError(S, 40, `L1 table at ${l1Offset} (${l1Size} entries) is misaligned or past the end of the ${fileSize}-byte file`);
  }

  let backingFile: string | undefined;
  const backingOffset = u64be(buf, 8, S, 0);
  const backingSize = buf.readUInt32BE(16);
  if (backingOffset !== 0 && backingSize !== 0) {
    if (backingSize > 1023 || backingOffset + backingSize > buf.length) {
      throw new CorruptError(S, 8, `backing file name (${backingSize} bytes at ${backingOffset}) is out of bounds`);
    }
    backingFile = buf.toString('utf8', backingOffset, backingOffset + backingSize);
  }

  // Header extensions: a bounded walk (each is at least 8 bytes, all in the first cluster).
  let backingFormat: string | undefined;
  let at = headerLength;
  while (at + 8 <= buf.length) {
    const type = buf.readUInt32BE(at);
    const len = buf.readUInt32BE(at + 4);
    if (type === 0) break;
    if (at + 8 + len > buf.length) throw new CorruptError('qcow2 header extension', at, `length ${len} runs past the first cluster`);
    if (type === EXT_BACKING_FORMAT) backingFormat = buf.toString('utf8', at + 8, at + 8 + len);
    if (type === EXT_DATA_FILE) throw new UnsupportedError('qcow2 image names an external data file; not supported');
    at += 8 + Math.ceil(len / 8) * 8;
  }
  return { version, clusterBits, clusterSize, size, l1Size, l1Offset, backingFile, backingFormat, compression, extendedL2 };
}

export async function openQcow2(inner: ByteSource, path: string, context: OpenContext): Promise<ByteSource> {
  const start = await readExact(inner, 0, Math.min(inner.size, 512), 'qcow2 header');
  if (start.length < 104) throw new CorruptError('qcow2 header', 0, `file of ${inner.size} bytes is too short for a header`);
  // The header and its extensions live in the first cluster; cluster_bits is checked before it sizes a read.
  const clusterBits = start.readUInt32BE(20);
  const headerCluster = clusterBits >= 9 && clusterBits <= 21 ? await readExact(inner, 0, Math.min(inner.size, 2 ** clusterBits), 'qcow2 header') : start;
  const h = parseQcow2Header(headerCluster, inner.size);
  if (h.compression === 'zstd') await loadZstd();
  const l1 = h.l1Size ? await readExact(inner, h.l1Offset, h.l1Size * 8, 'qcow2 L1 table') : Buffer.alloc(0);
  const entrySize = h.extendedL2 ? 16 : 8;
  const l2Entries = h.clusterSize / entrySize;
  const subclusterSize = h.extendedL2 ? h.clusterSize / 32 : h.clusterSize;
  const l2Cache = new Lru<number, Promise<Buffer>>(Math.max(1, Math.floor(L2_CACHE_BYTES / h.clusterSize)));
  const clusterCache = new Lru<number, Promise<Buffer>>(CLUSTER_CACHE_BYTES);
  // csize_shift / mask for compressed cluster descriptors (qcow2.txt "Compressed Clusters Descriptor").
  const csizeShift = 62 - (h.clusterBits - 8);
  const offsetMask = (1n << BigInt(csizeShift)) - 1n;
  const csizeMask = (1n << BigInt(h.clusterBits - 8)) - 1n;

  let backing: ByteSource | undefined;
  if (h.backingFile) backing = await openBackingFile(context, path, h.backingFile, h.backingFormat);

  const l2Table = (l1Index: number): Promise<Buffer | null> => {
    const entry = l1.readBigUInt64BE(l1Index * 8);
    const offset = Number(entry & OFFSET_MASK);
    if (offset === 0) return Promise.resolve(null);
    if (offset % h.clusterSize !== 0 || offset + h.clusterSize > inner.size) {
      return Promise.reject(new CorruptError('qcow2 L1 table', h.l1Offset + l1Index * 8, `L2 table offset ${offset} is misaligned or past the end of the ${inner.size}-byte file`));
    }
    return l2Cache.getOrLoad(offset, () => readExact(inner, offset, h.clusterSize, 'qcow2 L2 table'));
  };

  const decompressCluster = (l2Entry: bigint, entryOffset: number): Promise<Buffer> => {
    const hostOffset = Number(l2Entry & offsetMask);
    const sectors = Number((l2Entry >> BigInt(csizeShift)) & csizeMask) + 1;
    const compressedSize = sectors * 512 - (hostOffset & 511);
    return clusterCache.getOrLoad(
      hostOffset,
      async () => {
        if (hostOffset >= inner.size) {
          throw new CorruptError('qcow2 L2 table', entryOffset, `compressed cluster at ${hostOffset} is past the end of the ${inner.size}-byte file`);
        }
        // The descriptor rounds up to whole sectors; the file may end sooner.
        const data = await readExact(inner, hostOffset, Math.min(compressedSize, inner.size - hostOffset), 'qcow2 compressed cluster');
        return decodeCluster(data, h, hostOffset);
      },
      h.clusterSize,
    );
  };

  const extentAt = async (pos: number): Promise<Extent> => {
    const clusterIndex = Math.floor(pos / h.clusterSize);
    const inCluster = pos - clusterIndex * h.clusterSize;
    const l1Index = Math.floor(clusterIndex / l2Entries);
    const l2Index = clusterIndex % l2Entries;
    const toClusterEnd = h.clusterSize - inCluster;
    const table = await l2Table(l1Index);
    if (!table) return { kind: 'backing', length: toClusterEnd };
    const entryOffset = Number(l1.readBigUInt64BE(l1Index * 8) & OFFSET_MASK) + l2Index * entrySize;
    const entry = table.readBigUInt64BE(l2Index * entrySize);
    if (entry & (1n << 62n)) {
      return { kind: 'chunk', length: toClusterEnd, skip: inCluster, load: () => decompressCluster(entry, entryOffset) };
    }
    const host = Number(entry & OFFSET_MASK);
    if (h.extendedL2) {
      const bitmap = table.readBigUInt64BE(l2Index * entrySize + 8);
      const sub = Math.floor(inCluster / subclusterSize);
      const toSubEnd = subclusterSize - (inCluster % subclusterSize);
      if ((bitmap >> BigInt(32 + sub)) & 1n) return { kind: 'zero', length: toSubEnd };
      if ((bitmap >> BigInt(sub)) & 1n) {
        if (host === 0) throw new CorruptError('qcow2 L2 table', entryOffset, 'subcluster marked allocated in an unallocated cluster');
        return dataExtent(host, inCluster, toSubEnd, entryOffset);
      }
      return { kind: 'backing', length: toSubEnd };
    }
    if (entry & 1n) return { kind: 'zero', length: toClusterEnd };
    if (host === 0) return { kind: 'backing', length: toClusterEnd };
    return dataExtent(host, inCluster, toClusterEnd, entryOffset);
  };

  const dataExtent = (host: number, inCluster: number, length: number, entryOffset: number): Extent => {
    if (host % h.clusterSize !== 0 || host >= inner.size) {
      throw new CorruptError('qcow2 L2 table', entryOffset, `data cluster offset ${host} is misaligned or past the end of the ${inner.size}-byte file`);
    }
    return { kind: 'data', length, source: inner, offset: host + inCluster };
  };

  const ownAllocated = async (): Promise<ByteRange[]> => {
    const out = new RangeCollector();
    for (let i = 0; i < h.l1Size; i++) {
      const table = await l2Table(i);
      if (!table) continue;
      for (let j = 0; j < l2Entries; j++) {
        const start = (i * l2Entries + j) * h.clusterSize;
        if (start >= h.size) break;
        const entry = table.readBigUInt64BE(j * entrySize);
        const compressed = (entry & (1n << 62n)) !== 0n;
        if (h.extendedL2 && !compressed) {
          const bitmap = table.readBigUInt64BE(j * entrySize + 8);
          for (let s = 0; s < 32; s++) if ((bitmap >> BigInt(s)) & 1n) out.add(start + s * subclusterSize, subclusterSize);
        } else if (compressed || (Number(entry & OFFSET_MASK) !== 0 && !(entry & 1n))) {
          out.add(start, h.clusterSize);
        }
      }
    }
    return out.result();
  };

  return new MappedSource({
    size: h.size,
    description: `qcow2 v${h.version} image (${inner.description})`,
    extentAt,
    backing,
    ownAllocated,
    closeOwn: async () => {
      l2Cache.clear();
      clusterCache.clear();
      await inner.close();
    },
  });
}

function decodeCluster(data: Buffer, h: Qcow2Header, hostOffset: number): Buffer {
  const fail = (why: string) => new CorruptError('qcow2 compressed cluster', hostOffset, why);
  let out: Buffer;
  try {
    if (h.compression === 'zstd') {
      out = decodeZstdFrames(data, h.clusterSize);
    } else {
      // Raw deflate; the stream is followed by padding up to the sector end.
      out = inflateRawSync(data, { maxOutputLength: h.clusterSize, finishFlush: 2 /* Z_SYNC_FLUSH */ });
    }
  } catch (e) {
    throw fail(`cannot ${h.compression}-decompress: ${(e as Error).message}`);
  }
  if (out.length !== h.clusterSize) throw fail(`decompressed to ${out.length} bytes, expected a ${h.clusterSize}-byte cluster`);
  return out;
}

export const qcow2Format: ContainerFormat = {
  name: 'qcow2',
  detect: (head) => head.length >= 8 && head.readUInt32BE(0) === MAGIC,
  open: openQcow2,
};
