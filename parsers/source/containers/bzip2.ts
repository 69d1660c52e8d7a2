import type BunzipModule from 'seek-bzip';
import { CorruptError } from '../../errors.js';
import type { ContainerFormat, OpenContext } from '../open.js';
import { readZeroPadded } from '../read.js';
import type { ByteSource } from '../types.js';
import { ChunkedSource, type ChunkIndex } from './chunked.js';
import { IndexWriter, cacheDirectory, indexKey, loadIndex } from './index-cache.js';
import { Progress, ZeroMap } from './progress.js';

/**
 * bzip2 with random access: every block is independent and starts with the
 * 48-bit magic 0x314159265359 at any bit position. One pass finds the
 * candidates (a byte search for each of the 8 alignments), decodes each to
 * learn its size (a magic-like pattern inside compressed data fails its block
 * CRC and is dropped), and caches the map. Decoding is seek-bzip (pure JS,
 * made for decoding single blocks).
 */
const BLOCK_MAGIC = 0x314159265359n;
const END_MAGIC = 0x177245385090n;
const SCAN_CHUNK = 4 * 1024 * 1024;
/** A block holds at most 900 kB before Huffman coding: its compressed form fits in this. */
const MAX_COMPRESSED_BLOCK = 2 * 1024 * 1024;
const INDEX_VERSION = 1;

interface Bz2IndexHeader {
  format: 'bzip2';
  version: number;
  size: number;
  bit: number[];
  out: number[];
  allocated: [number, number][];
}

function isHeader(h: unknown): h is Bz2IndexHeader {
  const x = h as Bz2IndexHeader;
  if (!x || x.format !== 'bzip2' || x.version !== INDEX_VERSION || !Array.isArray(x.bit) || x.bit.length !== x.out.length) return false;
  for (let i = 1; i < x.out.length; i++) if (!(x.out[i] > x.out[i - 1]) || !(x.bit[i] > x.bit[i - 1])) return false;
  return x.bit.length > 0 && x.out[0] === 0;
}

/** For each bit alignment, the 5 bytes of a 48-bit magic that are whole bytes there (bytes 1..5 of 7). */
function patterns(magic: bigint): Buffer[] {
  return Array.from({ length: 8 }, (_, shift) => {
    const v = magic << BigInt(8 - shift);
    const bytes = Buffer.alloc(7);
    for (let i = 0; i < 7; i++) bytes[i] = Number((v >> BigInt(8 * (6 - i))) & 0xffn);
    return bytes.subarray(1, 6);
  });
}
const BLOCK_PATTERNS = patterns(BLOCK_MAGIC);
const END_PATTERNS = patterns(END_MAGIC);

function magicAt(buf: Buffer, bit: number, magic = BLOCK_MAGIC): boolean {
  const byte = Math.floor(bit / 8);
  if (byte + 7 > buf.length) return false;
  let v = 0n;
  for (let i = 0; i < 7; i++) v = (v << 8n) | BigInt(buf[byte + i]);
  return ((v >> BigInt(8 - (bit % 8))) & 0xffffffffffffn) === magic;
}

/** Bit positions in `buf` (which starts at byte `base` of the file) where `magic` appears, below `limitBit`. */
function findMagic(buf: Buffer, base: number, magic: bigint, table: Buffer[], limitBit: number): number[] {
  const hits: number[] = [];
  for (let shift = 0; shift < 8; shift++) {
    for (let i = buf.indexOf(table[shift], 1); i >= 0; i = buf.indexOf(table[shift], i + 1)) {
      const bitInBuf = (i - 1) * 8 + shift;
      if (bitInBuf < limitBit && magicAt(buf, bitInBuf, magic)) hits.push(base * 8 + bitInBuf);
    }
  }
  return hits.sort((a, b) => a - b);
}

/** Every bit position where the block magic appears, in order. */
async function scanCandidates(inner: ByteSource, progress: Progress): Promise<number[]> {
  const found: number[] = [];
  for (let base = 0; base < inner.size; base += SCAN_CHUNK) {
    // Overlap by 8 bytes so a magic across the chunk edge is seen once.
    const buf = await readZeroPadded(inner, base, Math.min(SCAN_CHUNK + 8, inner.size - base));
    found.push(...findMagic(buf, base, BLOCK_MAGIC, BLOCK_PATTERNS, SCAN_CHUNK * 8));
    progress.update(Math.floor(Math.min(inner.size, base + SCAN_CHUNK) / 2));
  }
  return found;
}

/** seek-bzip, loaded on first use so that other images do not pay for it (the JavaScript decoders together took ~80 ms of every start-up, measured). */
let Bunzip: typeof BunzipModule | undefined;

async function decodeBlockAt(inner: ByteSource, bit: number, size?: number): Promise<Buffer> {
  Bunzip ??= (await import('seek-bzip')).default;
  const first = Math.floor(bit / 8);
  const bytes = await readZeroPadded(inner, first, Math.min(MAX_COMPRESSED_BLOCK, inner.size - first));
  // seek-bzip wants a stream header in front; level 9 allows the largest blocks.
  const input = Buffer.concat([Buffer.from('BZh9'), bytes]);
  try {
    return Bunzip.decodeBlock(input, 32 + (bit % 8), size);
  } catch (e) {
    throw new CorruptError('bzip2 block', first, (e as Error).message || String(e));
  }
}

async function buildIndex(inner: ByteSource, context: OpenContext): Promise<Bz2IndexHeader> {
  const progress = new Progress(context, 'indexing bzip2', inner.size);
  const candidates = await scanCandidates(inner, progress);
  const header: Bz2IndexHeader = { format: 'bzip2', version: INDEX_VERSION, size: 0, bit: [], out: [], allocated: [] };
  const zeroMap = new ZeroMap();
  let total = 0;
  for (const bit of candidates) {
    // A 48-bit pattern inside compressed data by chance is about as rare as a
    // hash collision; a block that does not decode is reported, not skipped,
    // since skipping a real block would shift every byte after it.
    const data = await decodeBlockAt(inner, bit);
    if (data.length === 0) throw new CorruptError('bzip2 block', Math.floor(bit / 8), 'block decodes to nothing');
    header.bit.push(bit);
    header.out.push(total);
    total += data.length;
    zeroMap.feed(data);
    progress.update(Math.floor(inner.size / 2 + bit / 16));
  }
  if (header.bit.length === 0) throw new CorruptError('bzip2 stream', 0, 'no decodable block');
  // A stream cut between two blocks still decodes: only the end-of-stream marker tells.
  const lastByte = Math.floor(header.bit[header.bit.length - 1] / 8);
  const tail = await readZeroPadded(inner, lastByte, Math.min(inner.size - lastByte, 2 * MAX_COMPRESSED_BLOCK));
  if (findMagic(tail, lastByte, END_MAGIC, END_PATTERNS, tail.length * 8).length === 0) {
    throw new CorruptError('bzip2 stream', inner.size, 'no end-of-stream marker after the last block (truncated file?)');
  }
  header.size = total;
  header.allocated = zeroMap.result().map((r) => [r.start, r.length]);
  progress.update(inner.size);
  return header;
}

export async function openBzip2(inner: ByteSource, path: string, context: OpenContext): Promise<ByteSource> {
  const dir = cacheDirectory(context);
  const key = await indexKey('bzip2', inner, path);
  const cached = await loadIndex(dir, key, isHeader);
  let header: Bz2IndexHeader;
  if (cached) {
    header = cached.header;
    await cached.blobs.close();
  } else {
    header = await buildIndex(inner, context);
    const writer = await IndexWriter.create(dir, key);
    const done = await writer.finish(header);
    await done.blobs.close();
  }
  const h = header;
  const index: ChunkIndex = {
    size: h.size,
    count: h.bit.length,
    start: (i) => h.out[i],
    decode: (i) => decodeBlockAt(inner, h.bit[i], (i + 1 < h.out.length ? h.out[i + 1] : h.size) - h.out[i]),
    allocated: h.allocated.map(([start, length]) => ({ start, length })),
  };
  return new ChunkedSource(inner, index, `bzip2-compressed image, ${h.bit.length} blocks (${inner.description})`);
}

export const bzip2Format: ContainerFormat = {
  name: 'bzip2',
  detect: (head) => head.length >= 10 && head.toString('latin1', 0, 3) === 'BZh' && head[3] >= 0x31 && head[3] <= 0x39 && magicAt(head, 32),
  open: openBzip2,
};
