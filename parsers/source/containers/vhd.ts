import { basename } from 'node:path';
import { CorruptError, NotFoundError, UnsupportedError, isLooplessError } from '../../errors.js';
import type { ContainerFormat, OpenContext } from '../open.js';
import { readExact } from '../read.js';
import type { ByteRange, ByteSource } from '../types.js';
import { openBackingFile } from './backing.js';
import { u64be, utf16 } from './binary.js';
import { Lru } from '../../lru.js';
import { MappedSource, type Extent } from './mapped.js';
import { RangeCollector } from './ranges.js';

/**
 * VHD (Microsoft's "Virtual Hard Disk Image Format Specification"): fixed
 * (raw data + a 512-byte footer), dynamic (footer copy, dynamic header, block
 * allocation table, blocks each led by a sector bitmap) and differencing
 * (dynamic, plus a parent found through the parent locators).
 */
const COOKIE = 'conectix';
const DYN_COOKIE = 'cxsparse';
const TYPE_FIXED = 2;
const TYPE_DYNAMIC = 3;
const TYPE_DIFFERENCING = 4;
const UNUSED = 0xffffffff;
/** Bound on the table we load whole: 2^26 entries covers the spec's 2040 GiB with 2 MiB blocks many times over. */
const MAX_BAT_ENTRIES = 2 ** 26;

export interface VhdFooter {
  diskType: number;
  dataOffset: number;
  currentSize: number;
  uniqueId: string;
}

function checksum(buf: Buffer, skipAt: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) if (i < skipAt || i >= skipAt + 4) sum += buf[i];
  return ~sum >>> 0;
}

export function parseVhdFooter(buf: Buffer, at: number): VhdFooter {
  const S = 'VHD footer';
  if (buf.toString('latin1', 0, 8) !== COOKIE) throw new CorruptError(S, at, 'bad cookie');
  const stored = buf.readUInt32BE(64);
  if (stored !== checksum(buf.subarray(0, 512), 64)) throw new CorruptError(S, at + 64, 'checksum mismatch');
  const diskType = buf.readUInt32BE(60);
  const dataOffset = diskType === TYPE_FIXED ? 0 : u64be(buf, 16, S, at);
  return { diskType, dataOffset, currentSize: u64be(buf, 48, S, at), uniqueId: buf.toString('hex', 68, 84) };
}

async function footerAtEnd(source: ByteSource): Promise<Buffer | null> {
  if (source.size < 512) return null;
  const tail = await readExact(source, source.size - 512, 512, 'VHD footer');
  // Versions before Virtual PC 2004 wrote a 511-byte footer.
  if (tail.toString('latin1', 0, 8) === COOKIE) return tail;
  if (tail.toString('latin1', 1, 9) === COOKIE) return Buffer.concat([tail.subarray(1), Buffer.alloc(1)]);
  return null;
}

export async function openVhd(inner: ByteSource, path: string, context: OpenContext): Promise<ByteSource> {
  let footerBuf = await footerAtEnd(inner);
  let footerAt = inner.size - 512;
  let footer: VhdFooter | undefined;
  try {
    if (footerBuf) footer = parseVhdFooter(footerBuf, footerAt);
  } catch (e) {
    if (!isLooplessError(e)) throw e;
  }
  if (!footer) {
    // A damaged or missing footer at the end: dynamic disks keep a copy at offset 0.
    footerBuf = await readExact(inner, 0, 512, 'VHD footer copy');
    footerAt = 0;
    footer = parseVhdFooter(footerBuf, 0);
  }
  const description = `VHD ${footer.diskType === TYPE_FIXED ? 'fixed' : footer.diskType === TYPE_DYNAMIC ? 'dynamic' : 'differencing'} image (${inner.description})`;
  if (footer.diskType === TYPE_FIXED) {
    const size = Math.min(footer.currentSize, Math.max(0, inner.size - 512));
    if (size < footer.currentSize) {
      throw new CorruptError('VHD footer', footerAt + 48, `disk of ${footer.currentSize} bytes does not fit the ${inner.size}-byte file (truncated?)`);
    }
    return new MappedSource({
      size,
      description,
      extentAt: async (pos) => ({ kind: 'data', length: size - pos, source: inner, offset: pos }),
      ownAllocated: async () => [{ start: 0, length: size }],
      closeOwn: () => inner.close(),
    });
  }
  if (footer.diskType !== TYPE_DYNAMIC && footer.diskType !== TYPE_DIFFERENCING) {
    throw new UnsupportedError(`VHD disk type ${footer.diskType} is not supported`);
  }
  return openDynamic(inner, path, context, footer, description);
}

async function openDynamic(inner: ByteSource, path: string, context: OpenContext, footer: VhdFooter, description: string): Promise<ByteSource> {
  const S = 'VHD dynamic header';
  const hdrAt = footer.dataOffset;
  const hdr = await readExact(inner, hdrAt, 1024, S);
  if (hdr.toString('latin1', 0, 8) !== DYN_COOKIE) throw new CorruptError(S, hdrAt, 'bad cookie');
  if (hdr.readUInt32BE(36) !== checksum(hdr, 36)) throw new CorruptError(S, hdrAt + 36, 'checksum mismatch');
  const batOffset = u64be(hdr, 16, S, hdrAt);
  const entries = hdr.readUInt32BE(28);
  const blockSize = hdr.readUInt32BE(32);
  if (blockSize < 512 || blockSize % 512 !== 0 || (blockSize & (blockSize - 1)) !== 0) {
    throw new CorruptError(S, hdrAt + 32, `block size ${blockSize} is not a power of two of at least 512`);
  }
  const size = footer.currentSize;
  if (entries * blockSize < size) {
    throw new CorruptError(S, hdrAt + 28, `${entries} blocks of ${blockSize} bytes cannot hold the ${size}-byte disk`);
  }
  if (entries > MAX_BAT_ENTRIES) throw new CorruptError(S, hdrAt + 28, `block table of ${entries} entries is implausibly large`);
  const usedEntries = Math.ceil(size / blockSize);
  const bat = await readExact(inner, batOffset, usedEntries * 4, 'VHD block allocation table');
  const sectorsPerBlock = blockSize / 512;
  const bitmapSize = Math.ceil(sectorsPerBlock / 8 / 512) * 512;
  const differencing = footer.diskType === TYPE_DIFFERENCING;
  const bitmaps = new Lru<number, Promise<Buffer>>(256);

  let parent: ByteSource | undefined;
  if (differencing) parent = await openParent(inner, path, context, hdr, hdrAt);

  const blockStart = (block: number): number | null => {
    const sector = bat.readUInt32BE(block * 4);
    if (sector === UNUSED) return null;
    const at = sector * 512;
    if (at + bitmapSize > inner.size) {
      throw new CorruptError('VHD block allocation table', batOffset + block * 4, `block ${block} at byte ${at} is past the end of the ${inner.size}-byte file`);
    }
    return at;
  };

  const extentAt = async (pos: number): Promise<Extent> => {
    const block = Math.floor(pos / blockSize);
    const inBlock = pos - block * blockSize;
    const toBlockEnd = blockSize - inBlock;
    const at = blockStart(block);
    if (at === null) return { kind: differencing ? 'backing' : 'zero', length: toBlockEnd };
    const data = { kind: 'data' as const, source: inner, offset: at + bitmapSize + inBlock };
    if (!differencing) return { ...data, length: toBlockEnd };
    // Differencing: the sector bitmap (most significant bit first) says which sectors are here.
    const bitmap = await bitmaps.getOrLoad(block, () => readExact(inner, at, bitmapSize, 'VHD sector bitmap'));
    const bit = (s: number) => (bitmap[s >> 3] >> (7 - (s & 7))) & 1;
    const first = Math.floor(inBlock / 512);
    const here = bit(first);
    let s = first + 1;
    while (s < sectorsPerBlock && bit(s) === here) s++;
    const length = s * 512 - inBlock;
    return here ? { ...data, length } : { kind: 'backing', length };
  };

  const ownAllocated = async (): Promise<ByteRange[]> => {
    const out = new RangeCollector();
    for (let b = 0; b < usedEntries; b++) {
      const at = blockStart(b);
      if (at === null) continue;
      if (!differencing) {
        out.add(b * blockSize, blockSize);
        continue;
      }
      const bitmap = await bitmaps.getOrLoad(b, () => readExact(inner, at, bitmapSize, 'VHD sector bitmap'));
      for (let s = 0; s < sectorsPerBlock; s++) {
        if ((bitmap[s >> 3] >> (7 - (s & 7))) & 1) out.add(b * blockSize + s * 512, 512);
      }
    }
    return out.result();
  };

  return new MappedSource({
    size,
    description,
    extentAt,
    backing: parent,
    ownAllocated,
    closeOwn: async () => {
      bitmaps.clear();
      await inner.close();
    },
  });
}

const LOCATOR_PLATFORMS: Record<string, 'utf16le' | 'url'> = { W2ru: 'utf16le', W2ku: 'utf16le', MacX: 'url' };

/**
 * Candidate parent paths, best first: each parent locator (relative Windows
 * path, absolute Windows path, Mac file URL), then the parent's bare file name
 * from the header, each tried as given and as a file next to the child.
 */
async function parentCandidates(inner: ByteSource, hdr: Buffer, hdrAt: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < 8; i++) {
    const e = 576 + i * 24;
    const code = hdr.toString('latin1', e, e + 4);
    const kind = LOCATOR_PLATFORMS[code];
    if (!kind) continue;
    const length = hdr.readUInt32BE(e + 8);
    const offset = u64be(hdr, e + 16, 'VHD parent locator', hdrAt);
    if (length === 0 || length > 4096 || offset + length > inner.size) continue;
    const raw = await readExact(inner, offset, length, 'VHD parent locator');
    let name = kind === 'utf16le' ? utf16(raw, false) : raw.toString('utf8').replace(/\0.*$/s, '');
    if (kind === 'url') name = decodeURIComponent(name.replace(/^file:\/\//, ''));
    names.push(name.replace(/\\/g, '/'));
  }
  const unicodeName = utf16(hdr.subarray(64, 576), true);
  if (unicodeName) names.push(unicodeName.replace(/\\/g, '/'));
  const out: string[] = [];
  for (const n of names) {
    const windowsAbsolute = /^[A-Za-z]:\//.test(n) || n.startsWith('//');
    if (!windowsAbsolute) out.push(n);
    out.push(basename(n));
  }
  return [...new Set(out.filter((n) => n.length > 0))];
}

async function openParent(inner: ByteSource, path: string, context: OpenContext, hdr: Buffer, hdrAt: number): Promise<ByteSource> {
  const candidates = await parentCandidates(inner, hdr, hdrAt);
  if (candidates.length === 0) throw new CorruptError('VHD parent locator', hdrAt + 576, 'differencing disk names no parent');
  let lastError: unknown;
  for (const name of candidates) {
    try {
      return await openBackingFile(context, path, name);
    } catch (e) {
      // Only "not there" moves on to the next candidate; a parent that is there but broken is reported.
      if (!(isLooplessError(e) && e.code === 'ENOENT')) throw e;
      lastError = e;
    }
  }
  throw new NotFoundError(path, `parent disk not found (tried ${candidates.join(', ')}; last: ${(lastError as Error).message})`);
}

export const vhdDynamicFormat: ContainerFormat = {
  name: 'vhd',
  detect: (head) => head.length >= 512 && head.toString('latin1', 0, 8) === COOKIE,
  open: openVhd,
};

/** Fixed VHDs are a raw disk with a footer: the only mark is at the end. */
export const vhdFixedFormat: ContainerFormat = {
  name: 'vhd',
  detect: async (_head, source) => {
    const tail = await footerAtEnd(source);
    if (!tail) return false;
    try {
      return parseVhdFooter(tail, source.size - 512).diskType === TYPE_FIXED;
    } catch {
      return false;
    }
  },
  open: openVhd,
};
