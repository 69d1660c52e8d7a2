import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import type * as Pako from 'pako';
import { CorruptError, UnsupportedError } from '../../errors.js';
import type { ContainerFormat, OpenContext } from '../open.js';
import { readExact, readZeroPadded } from '../read.js';
import type { ByteRange, ByteSource } from '../types.js';
import { ChunkedSource, type ChunkIndex } from './chunked.js';
import { type IndexWriter, cacheDirectory, indexKey, loadOrBuildIndex } from './index-cache.js';
import { Progress, ZeroMap } from './progress.js';


/** pako, loaded by the first openGzip so that other images do not pay for it (the JavaScript decoders together took ~80 ms of every start-up, measured). */
let pako: typeof Pako;
/**
 * gzip with random access, after zlib's examples/zran.c: one full pass builds
 * checkpoints at deflate block boundaries about every SPAN bytes of output,
 * each with the 32 KiB window that precedes it. A read starts inflating at the
 * checkpoint before it, with that window as the dictionary.
 *
 * Blocks start at any bit, and Node's zlib cannot start at a bit offset (no
 * inflatePrime). pako (the pure-JS port of zlib) can: its state holds the bit
 * buffer, which we prime the way inflatePrime() does. Measured on a 50 MiB
 * disk image, pako inflates at ~340 MB/s against native zlib's ~570 MB/s; a
 * bit-shift trick to reuse native zlib breaks on stored blocks, whose
 * byte alignment is relative to the original stream.
 */
const SPAN = 1024 * 1024;
const WINDOW = 32 * 1024;
const INPUT_CHUNK = 1024 * 1024;
const OUTPUT_CHUNK = 256 * 1024;
/** One deflate block can expand without bound; a span longer than this is refused, not allocated. */
const MAX_SPAN = 256 * 1024 * 1024;
const INDEX_VERSION = 1;

interface GzipIndexHeader {
  format: 'gzip';
  version: number;
  size: number;
  inBit: number[];
  out: number[];
  windowAt: number[];
  windowLength: number[];
  allocated: [number, number][];
}

function isHeader(h: unknown): h is GzipIndexHeader {
  const x = h as GzipIndexHeader;
  if (!x || x.format !== 'gzip' || x.version !== INDEX_VERSION || !Array.isArray(x.out) || x.out.length < 1) return false;
  const n = x.out.length;
  if (x.inBit.length !== n || x.windowAt.length !== n || x.windowLength.length !== n) return false;
  for (let i = 1; i < n; i++) if (!(x.out[i] >= x.out[i - 1]) || !(x.inBit[i] > x.inBit[i - 1])) return false;
  return x.out[n - 1] === x.size && x.out[0] === 0;
}

/** Parse a gzip member header at `at`; returns the offset of its deflate data. */
async function memberHeader(inner: ByteSource, at: number): Promise<number> {
  const S = 'gzip member header';
  const h = await readZeroPadded(inner, at, 65536 + 1024);
  if (h[0] !== 0x1f || h[1] !== 0x8b) throw new CorruptError(S, at, 'bad magic');
  if (h[2] !== 8) throw new UnsupportedError(`gzip compression method ${h[2]} is not deflate`);
  const flags = h[3];
  let p = 10;
  if (flags & 4) p += 2 + h.readUInt16LE(p);
  for (const bit of [8, 16]) {
    if (!(flags & bit)) continue;
    const nul = h.indexOf(0, p);
    if (nul < 0) throw new CorruptError(S, at, 'file name or comment is not terminated within 64 KiB');
    p = nul + 1;
  }
  if (flags & 2) p += 2;
  if (at + p > inner.size) throw new CorruptError(S, at, 'truncated header (truncated file?)');
  return at + p;
}

/** The full pass: inflate everything once, recording checkpoints and windows. */
async function buildIndex(inner: ByteSource, context: OpenContext, writer: IndexWriter): Promise<GzipIndexHeader> {
  const header: GzipIndexHeader = { format: 'gzip', version: INDEX_VERSION, size: 0, inBit: [], out: [], windowAt: [], windowLength: [], allocated: [] };
  const progress = new Progress(context, 'indexing gzip', inner.size);
  const zeroMap = new ZeroMap();
  const strm = new pako.ZStream();
  pako.zlibInflateInit2(strm, -15);
  const out = new Uint8Array(WINDOW + OUTPUT_CHUNK);
  strm.output = out;
  strm.next_out = 0;
  strm.avail_out = out.length;
  let total = 0; // uncompressed bytes so far
  let memberStartOut = 0;
  let lastCheckpointOut = 0;
  let inputBase = 0; // absolute offset of strm.input[0]
  let memberCrc = 0;

  const addCheckpoint = async (bit: number) => {
    const windowLength = Math.min(WINDOW, total - memberStartOut);
    let windowAt = 0;
    if (windowLength > 0) {
      const window = out.subarray(strm.next_out - windowLength, strm.next_out);
      windowAt = await writer.append(deflateRawSync(window, { level: 1 }));
      header.windowLength.push(windowLength);
    } else {
      header.windowLength.push(0);
    }
    header.inBit.push(bit);
    header.out.push(total);
    header.windowAt.push(windowAt);
    lastCheckpointOut = total;
  };

  const feed = async (at: number) => {
    const n = Math.min(INPUT_CHUNK, inner.size - at);
    if (n <= 0) throw new CorruptError('gzip deflate stream', at, 'file ends inside the compressed data (truncated?)');
    strm.input = await readExact(inner, at, n, 'gzip deflate stream');
    strm.next_in = 0;
    strm.avail_in = n;
    inputBase = at;
    progress.update(at);
  };

  let memberAt = 0;
  for (;;) {
    // One gzip member: header, deflate stream, trailer.
    const dataAt = await memberHeader(inner, memberAt);
    pako.zlibInflateReset(strm);
    memberStartOut = total;
    memberCrc = 0;
    await feed(dataAt);
    await addCheckpoint(dataAt * 8);
    for (;;) {
      if (strm.avail_in === 0) await feed(inputBase + strm.input.length);
      const before = strm.next_out;
      const ret = pako.zlibInflate(strm, pako.Z_BLOCK);
      if (ret !== pako.Z_OK && ret !== pako.Z_STREAM_END && ret !== pako.Z_BUF_ERROR) {
        throw new CorruptError('gzip deflate stream', inputBase + strm.next_in, `invalid compressed data (${strm.msg || `zlib error ${ret}`})`);
      }
      const produced = out.subarray(before, strm.next_out);
      if (produced.length) {
        total += produced.length;
        memberCrc = crc32(produced, memberCrc);
        zeroMap.feed(produced);
      }
      if (ret === pako.Z_STREAM_END) break;
      const atBoundary = (strm.data_type & 128) !== 0 && (strm.data_type & 64) === 0;
      if (atBoundary && total - lastCheckpointOut >= SPAN) {
        await addCheckpoint((inputBase + strm.next_in) * 8 - (strm.data_type & 7));
      }
      if (total - lastCheckpointOut > MAX_SPAN) {
        throw new UnsupportedError(`gzip deflate block at byte ${inputBase + strm.next_in} expands past ${MAX_SPAN} bytes; too large for random access`);
      }
      if (strm.avail_out === 0) {
        // Keep the last 32 KiB (the next window) at the front and go on.
        out.copyWithin(0, out.length - WINDOW);
        strm.next_out = WINDOW;
        strm.avail_out = out.length - WINDOW;
      }
    }
    const deflateEnd = inputBase + strm.next_in;
    const trailer = await readExact(inner, deflateEnd, 8, 'gzip member trailer');
    if (trailer.readUInt32LE(0) !== memberCrc >>> 0) throw new CorruptError('gzip member trailer', deflateEnd, 'CRC-32 mismatch: the data is damaged');
    if (trailer.readUInt32LE(4) !== (total - memberStartOut) % 2 ** 32) throw new CorruptError('gzip member trailer', deflateEnd + 4, 'length mismatch');
    memberAt = deflateEnd + 8;
    const next = await readZeroPadded(inner, memberAt, 2);
    if (memberAt >= inner.size || next[0] !== 0x1f || next[1] !== 0x8b) {
      // End of the stream (trailing padding or garbage after the last member is ignored, as gzip -d does).
      header.inBit.push(deflateEnd * 8);
      header.out.push(total);
      header.windowAt.push(0);
      header.windowLength.push(0);
      break;
    }
  }
  progress.update(inner.size);
  header.size = total;
  header.allocated = zeroMap.result().map((r) => [r.start, r.length]);
  return header;
}

class GzipChunks implements ChunkIndex {
  readonly size: number;
  readonly count: number;
  readonly allocated: ByteRange[];

  constructor(
    private readonly inner: ByteSource,
    private readonly h: GzipIndexHeader,
    private readonly blobs: ByteSource,
  ) {
    this.size = h.size;
    // The last entry is the end sentinel, not a chunk.
    this.count = h.out.length - 1;
    this.allocated = h.allocated.map(([start, length]) => ({ start, length }));
  }

  start(i: number): number {
    return this.h.out[i];
  }

  async decode(i: number): Promise<Buffer> {
    const h = this.h;
    const length = h.out[i + 1] - h.out[i];
    if (length > MAX_SPAN) throw new UnsupportedError(`gzip span of ${length} bytes is too large`);
    const strm = new pako.ZStream();
    pako.zlibInflateInit2(strm, -15);
    if (h.windowLength[i] > 0) {
      const packed = await readExact(this.blobs, h.windowAt[i], Math.min(this.blobs.size - h.windowAt[i], WINDOW + 1024), 'gzip index window');
      const window = inflateRawSync(packed, { finishFlush: 2 });
      pako.zlibInflateSetDictionary(strm, window.subarray(0, h.windowLength[i]));
    }
    const firstByte = Math.floor(h.inBit[i] / 8);
    const shift = h.inBit[i] % 8;
    const lastByte = Math.min(this.inner.size, Math.ceil(h.inBit[i + 1] / 8) + 8);
    const input = await readExact(this.inner, firstByte, lastByte - firstByte, 'gzip deflate stream');
    let from = 0;
    if (shift) {
      // inflatePrime(): put the checkpoint byte's remaining high bits in the bit buffer.
      strm.state.hold = input[0] >> shift;
      strm.state.bits = 8 - shift;
      from = 1;
    }
    const output = Buffer.alloc(length);
    strm.input = input;
    strm.next_in = from;
    strm.avail_in = input.length - from;
    strm.output = output;
    strm.next_out = 0;
    strm.avail_out = length;
    const ret = length > 0 ? pako.zlibInflate(strm, pako.Z_NO_FLUSH) : pako.Z_OK;
    if ((ret !== pako.Z_OK && ret !== pako.Z_STREAM_END && ret !== pako.Z_BUF_ERROR) || strm.next_out !== length) {
      throw new CorruptError('gzip deflate stream', firstByte, `checkpoint ${i} decoded ${strm.next_out} of ${length} bytes (${strm.msg || `zlib ${ret}`}); stale index or changed file?`);
    }
    return output;
  }

  async close(): Promise<void> {
    await this.blobs.close();
  }
}

export async function openGzip(inner: ByteSource, path: string, context: OpenContext): Promise<ByteSource> {
  pako ??= await import('pako');
  const dir = cacheDirectory(context);
  const key = await indexKey('gzip', inner, path);
  const { cached, how } = await loadOrBuildIndex(dir, key, isHeader, (writer) => buildIndex(inner, context, writer));
  const chunks = new GzipChunks(inner, cached.header, cached.blobs);
  return new ChunkedSource(inner, chunks, `gzip-compressed image, ${chunks.count} checkpoints, ${how} (${inner.description})`);
}

export const gzipFormat: ContainerFormat = {
  name: 'gzip',
  detect: (head) => head.length >= 18 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 8,
  open: openGzip,
};
