import { createHash, type Hash } from 'node:crypto';
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import { CorruptError, UnsupportedError } from '../../errors.js';
import type { OpenContext } from '../open.js';
import { readExact, readZeroPadded } from '../read.js';
import type { ByteRange, ByteSource } from '../types.js';
import type { ChunkIndex } from './chunked.js';
import { Crc64 } from './crc64.js';
import { type IndexWriter, cacheDirectory, indexKey, loadOrBuildIndex } from './index-cache.js';
import { Lzma2Decoder, PROBS_SIZE, lzma2DictSize, parseChunkHeader, type Lzma2State } from './lzma2.js';
import { Progress, ZeroMap } from './progress.js';

/**
 * Random access into a single-block .xz (plain `xz`, which writes one block
 * however big the input), the way gzip.ts does it for deflate: one full pass
 * with our own LZMA2 decoder (lzma2.ts) records checkpoints at LZMA2 chunk
 * boundaries, each with the decoder's whole state (probabilities, reps and the
 * dictionary, deflated), in the on-disk index cache. A read restores the
 * checkpoint before it and decodes forward; a decoder left where the last read
 * ended serves the next forward read without a restore.
 *
 * The pass also verifies the block's check (CRC32, CRC64 or SHA-256) and its
 * sizes against the stream index.
 *
 * Only a lone LZMA2 filter is handled (BCJ and delta filters before it would
 * need their own state saved): other chains are an UnsupportedError, and the
 * caller falls back to streaming them.
 */

const LZMA2_FILTER = 0x21;
/**
 * Checkpoint spacing: four dictionaries' worth of output, between 4 MiB and
 * 64 MiB. Each checkpoint stores a dictionary, so the index is about a
 * deflated dictionary per span (xz -6: 8 MiB dictionary, a checkpoint every 32 MiB).
 */
const MIN_SPAN = 4 * 1024 * 1024;
const MAX_SPAN = 64 * 1024 * 1024;
/** Reads decode pieces of this size (the unit cached by ChunkedSource). */
const PIECE = 2 * 1024 * 1024;
/**
 * Largest dictionary we hold (the smaller of the filter's dictionary size and
 * the block's output; it is allocated as output fills it). xz -9 uses 64 MiB
 * and xz's own maximum is 1.5 GiB; beyond this bound the image is streamed by
 * xz-decompress instead (see openXz).
 */
export const MAX_RING = 1024 * 1024 * 1024;
const INPUT_CHUNK = 1024 * 1024;
const INDEX_VERSION = 1;
const CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];

const FILTER_NAMES: Record<number, string> = { 0x03: 'delta', 0x04: 'x86 BCJ', 0x05: 'PowerPC BCJ', 0x06: 'IA-64 BCJ', 0x07: 'ARM BCJ', 0x08: 'ARM-Thumb BCJ', 0x09: 'SPARC BCJ', 0x0a: 'ARM64 BCJ', 0x21: 'LZMA2' };

/** A filter chain neither our decoder nor xz-decompress can decode: refused, not streamed. */
export class XzFilterChainError extends UnsupportedError {}

export interface XzBlock {
  at: number;
  unpadded: number;
  uncompressed: number;
  checkType: number;
}

interface Checkpoint {
  /** File offset of the next LZMA2 chunk header, and the output offset there. */
  in: number;
  out: number;
  /** Deflated probabilities + dictionary in the index file; length 0 = a fresh decoder. */
  blobAt: number;
  blobLength: number;
  state: Lzma2State | null;
}

interface XzIndexHeader {
  format: 'xz';
  version: number;
  size: number;
  ringSize: number;
  checkpoints: Checkpoint[];
  allocated: [number, number][];
}

function isHeader(h: unknown): h is XzIndexHeader {
  const x = h as XzIndexHeader;
  if (!x || x.format !== 'xz' || x.version !== INDEX_VERSION || !Array.isArray(x.checkpoints) || x.checkpoints.length < 1) return false;
  if (!(x.ringSize > 0 && x.ringSize <= MAX_RING)) return false;
  for (let i = 1; i < x.checkpoints.length; i++) {
    if (!(x.checkpoints[i].out > x.checkpoints[i - 1].out) || !(x.checkpoints[i].in > x.checkpoints[i - 1].in)) return false;
  }
  return x.checkpoints[0].out === 0 && x.checkpoints[0].blobLength === 0 && Array.isArray(x.allocated);
}

function readVarint(buf: Buffer, pos: { p: number }, end: number, at: number): number {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    if (pos.p >= end) throw new CorruptError('xz block header', at, 'truncated number');
    const b = buf[pos.p++];
    value += (b & 0x7f) * 2 ** (7 * i);
    if (!(b & 0x80)) return value;
  }
  throw new CorruptError('xz block header', at, 'number longer than 9 bytes');
}

/** Parse a block header (xz-file-format 3.1); returns where its data starts and the dictionary size. */
export async function blockHeader(inner: ByteSource, block: XzBlock): Promise<{ dataAt: number; dictSize: number; compressed?: number }> {
  const S = 'xz block header';
  const first = await readExact(inner, block.at, 1, S);
  if (first[0] === 0) throw new CorruptError(S, block.at, 'index indicator where a block was expected');
  const size = (first[0] + 1) * 4;
  const h = await readExact(inner, block.at, size, S);
  if (crc32(h.subarray(0, size - 4)) !== h.readUInt32LE(size - 4)) throw new CorruptError(S, block.at, 'CRC mismatch');
  const flags = h[1];
  if (flags & 0x3c) throw new UnsupportedError('xz block header with reserved flags set');
  const pos = { p: 2 };
  const end = size - 4;
  const compressed = flags & 0x40 ? readVarint(h, pos, end, block.at) : undefined;
  const uncompressed = flags & 0x80 ? readVarint(h, pos, end, block.at) : undefined;
  if (uncompressed !== undefined && uncompressed !== block.uncompressed) throw new CorruptError(S, block.at, 'uncompressed size differs from the stream index');
  const filters: { id: number; props: Buffer }[] = [];
  for (let i = 0; i < (flags & 3) + 1; i++) {
    const id = readVarint(h, pos, end, block.at);
    const propsSize = readVarint(h, pos, end, block.at);
    if (pos.p + propsSize > end) throw new CorruptError(S, block.at, 'filter properties run past the header');
    filters.push({ id, props: h.subarray(pos.p, pos.p + propsSize) });
    pos.p += propsSize;
  }
  for (let p = pos.p; p < end; p++) if (h[p] !== 0) throw new CorruptError(S, block.at, 'non-zero header padding');
  if (filters.length !== 1 || filters[0].id !== LZMA2_FILTER) {
    // xz-decompress (our stream decoder) is built without BCJ and delta too, so there is nothing to fall back to.
    const names = filters.map((f) => FILTER_NAMES[f.id] ?? `0x${f.id.toString(16)}`).join(' + ');
    throw new XzFilterChainError(`xz filter chain ${names} is not supported, only LZMA2 alone (decompress it, or recompress with plain xz)`);
  }
  if (filters[0].props.length !== 1) throw new CorruptError(S, block.at, 'LZMA2 filter properties are not one byte');
  let dictSize: number;
  try {
    dictSize = lzma2DictSize(filters[0].props[0]);
  } catch (e) {
    throw new CorruptError(S, block.at, (e as CorruptError).detail ?? 'invalid LZMA2 dictionary size');
  }
  return { dataAt: block.at + size, dictSize, compressed };
}

/** A decoder positioned in the block's compressed data, pulling its input in 1 MiB reads. */
class BlockCursor {
  private buf: Buffer = Buffer.alloc(0);
  /** File offset of buf[0]; read position in buf. */
  private bufAt: number;
  private p = 0;
  ended = false;

  constructor(
    private readonly inner: ByteSource,
    readonly dec: Lzma2Decoder,
    inAt: number,
    /** Output offset of the next byte the decoder produces. */
    public out: number,
  ) {
    this.bufAt = inAt;
  }

  /** File offset of the next unread byte (at a chunk boundary: the next chunk header). */
  get inOffset(): number {
    return this.bufAt + this.p;
  }

  get atBoundary(): boolean {
    return !this.dec.inChunk;
  }

  /** Make n bytes available at buf[p]; a new buffer each time, so a chunk being decoded keeps its input. */
  private async ensure(n: number): Promise<void> {
    if (this.buf.length - this.p >= n) return;
    const at = this.inOffset;
    const want = Math.min(Math.max(n, INPUT_CHUNK), this.inner.size - at);
    if (want < n) throw new CorruptError('xz LZMA2 chunk', at, 'file ends inside the compressed data (truncated?)');
    this.buf = await readExact(this.inner, at, want, 'xz block');
    this.bufAt = at;
    this.p = 0;
  }

  /** The next piece of output (a view valid until the next call), at most `max` bytes; null at the LZMA2 end marker. */
  async next(max = Infinity): Promise<Uint8Array | null> {
    if (this.ended) return null;
    if (!this.dec.inChunk) {
      const at = this.inOffset;
      await this.ensure(Math.min(6, this.inner.size - at)).catch(() => {
        throw new CorruptError('xz LZMA2 chunk', at, 'file ends where a chunk header was expected (truncated?)');
      });
      const h = parseChunkHeader(this.buf, this.p, this.buf.length, at);
      if (!h) throw new CorruptError('xz LZMA2 chunk', at, 'truncated chunk header');
      if (h.control === 0) {
        this.p += 1;
        this.ended = true;
        return null;
      }
      const dataLength = h.control >= 0x80 ? h.compressed : h.uncompressed;
      await this.ensure(h.headerLength + dataLength);
      this.dec.startChunk(h, this.buf, this.p + h.headerLength, at);
      this.p += h.headerLength + dataLength;
    }
    const n = this.dec.step(max);
    const bytes = this.dec.dict.subarray(this.dec.pos - n, this.dec.pos);
    this.dec.wrap();
    this.out += n;
    return bytes;
  }
}

/** The block's check, computed as its output streams by. */
function checker(type: number): { update(d: Uint8Array): void; digest(): Buffer } | null {
  if (type === 0) return null;
  if (type === 1) {
    let c = 0;
    return {
      update: (d) => (c = crc32(d, c)),
      digest: () => {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(c >>> 0);
        return b;
      },
    };
  }
  if (type === 4) return new Crc64();
  if (type === 10) {
    const h: Hash = createHash('sha256');
    return { update: (d) => h.update(d), digest: () => h.digest() };
  }
  throw new UnsupportedError(`xz check type ${type} is not supported`);
}

function spanFor(dictSize: number): number {
  return Math.min(MAX_SPAN, Math.max(MIN_SPAN, 4 * dictSize));
}

/** The full pass: decode the block once, verify it, and record checkpoints. */
async function buildIndex(inner: ByteSource, block: XzBlock, dataAt: number, dictSize: number, dec: Lzma2Decoder, context: OpenContext, writer: IndexWriter): Promise<XzIndexHeader> {
  const span = spanFor(dictSize);
  const checkpoints: Checkpoint[] = [{ in: dataAt, out: 0, blobAt: 0, blobLength: 0, state: null }];
  const progress = new Progress(context, 'indexing xz', inner.size);
  const zeroMap = new ZeroMap();
  const check = checker(block.checkType);
  const cursor = new BlockCursor(inner, dec, dataAt, 0);
  let last = 0;
  for (;;) {
    if (cursor.atBoundary && cursor.out - last >= span && cursor.out < block.uncompressed) {
      const saved = dec.save();
      const ring = dec.ring();
      const blob = deflateRawSync(Buffer.concat([saved.probs, ring]), { level: 1 });
      const blobAt = await writer.append(blob);
      checkpoints.push({ in: cursor.inOffset, out: cursor.out, blobAt, blobLength: blob.length, state: saved.state });
      last = cursor.out;
    }
    const at = cursor.inOffset;
    progress.update(at);
    const bytes = await cursor.next();
    if (!bytes) break;
    if (cursor.out > block.uncompressed) throw new CorruptError('xz block', at, `decodes to more than the ${block.uncompressed} bytes its index says`);
    check?.update(bytes);
    zeroMap.feed(bytes);
  }
  if (cursor.out !== block.uncompressed) throw new CorruptError('xz block', block.at, `decoded ${cursor.out} of the ${block.uncompressed} bytes its index says`);
  const dataEnd = cursor.inOffset;
  const headerSize = dataAt - block.at;
  const checkSize = CHECK_SIZES[block.checkType];
  if (headerSize + (dataEnd - dataAt) + checkSize !== block.unpadded) throw new CorruptError('xz block', block.at, 'compressed size differs from the stream index');
  const paddedEnd = Math.ceil((dataEnd - block.at) / 4) * 4 + block.at;
  const tail = await readZeroPadded(inner, dataEnd, paddedEnd - dataEnd + checkSize);
  for (let i = 0; i < paddedEnd - dataEnd; i++) if (tail[i] !== 0) throw new CorruptError('xz block', dataEnd, 'non-zero block padding');
  if (check && !check.digest().equals(tail.subarray(paddedEnd - dataEnd))) {
    throw new CorruptError('xz block', paddedEnd, `${block.checkType === 10 ? 'SHA-256' : block.checkType === 4 ? 'CRC64' : 'CRC32'} check mismatch: the data is damaged`);
  }
  progress.update(inner.size);
  return {
    format: 'xz',
    version: INDEX_VERSION,
    size: block.uncompressed,
    ringSize: dec.ringSize,
    checkpoints,
    allocated: zeroMap.result().map((r) => [r.start, r.length]),
  };
}

export class XzCheckpointChunks implements ChunkIndex {
  readonly size: number;
  readonly count: number;
  readonly allocated: ByteRange[];
  /** How many times a read restored a checkpoint (for tests and the curious). */
  restores = 0;
  /** Bytes the decoder produced for reads (with what was skipped between a checkpoint and a read). */
  decodedBytes = 0;
  private live: BlockCursor | null = null;
  private busy: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly inner: ByteSource,
    private readonly h: XzIndexHeader,
    private readonly blobs: ByteSource,
    private readonly dec: Lzma2Decoder,
  ) {
    this.size = h.size;
    this.count = Math.max(1, Math.ceil(h.size / PIECE));
    this.allocated = h.allocated.map(([start, length]) => ({ start, length }));
  }

  /** Output bytes between checkpoints at most (for tests). */
  get span(): number {
    const cps = this.h.checkpoints;
    let max = this.size - cps[cps.length - 1].out;
    for (let i = 1; i < cps.length; i++) max = Math.max(max, cps[i].out - cps[i - 1].out);
    return max;
  }

  get checkpoints(): number {
    return this.h.checkpoints.length;
  }

  start(i: number): number {
    return i * PIECE;
  }

  /** One decoder: reads take turns. */
  decode(i: number): Promise<Buffer> {
    const run = this.busy.then(() => this.decodeNow(i));
    this.busy = run.catch(() => {});
    return run;
  }

  private checkpointBefore(pos: number): number {
    const cps = this.h.checkpoints;
    let lo = 0;
    let hi = cps.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (cps[mid].out <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private async restore(c: number): Promise<BlockCursor> {
    const cp = this.h.checkpoints[c];
    const dec = this.dec;
    if (cp.blobLength === 0 || !cp.state) {
      // The block's start: a fresh decoder (the first chunk resets everything).
      dec.restore({ state: 0, reps: [0, 0, 0, 0], lc: 0, lp: 0, pb: 0, needDictReset: true, needProps: true, pos: 0, full: 0 }, new Uint8Array(PROBS_SIZE * 2), new Uint8Array(0));
    } else {
      const packed = await readExact(this.blobs, cp.blobAt, cp.blobLength, 'xz index checkpoint');
      let raw: Buffer;
      try {
        raw = inflateRawSync(packed, { maxOutputLength: PROBS_SIZE * 2 + this.h.ringSize });
      } catch {
        throw new CorruptError('xz index checkpoint', cp.blobAt, 'damaged index file (delete it to rebuild)');
      }
      dec.restore(cp.state, raw.subarray(0, PROBS_SIZE * 2), raw.subarray(PROBS_SIZE * 2));
    }
    this.restores++;
    return new BlockCursor(this.inner, dec, cp.in, cp.out);
  }

  private async decodeNow(i: number): Promise<Buffer> {
    const from = this.start(i);
    const to = Math.min(this.size, from + PIECE);
    const c = this.checkpointBefore(from);
    let cur = this.live;
    // The decoder left by the last read serves this one if it is at or before `from` and past the checkpoint.
    if (!cur || cur.out > from || cur.out < this.h.checkpoints[c].out) {
      this.live = null;
      cur = await this.restore(c);
    }
    this.live = null;
    const out = Buffer.alloc(to - from);
    while (cur.out < to) {
      const pieceStart = cur.out;
      const bytes = await cur.next(to - cur.out);
      if (bytes) this.decodedBytes += bytes.length;
      if (!bytes) throw new CorruptError('xz block', this.h.checkpoints[c].in, `data ends at ${pieceStart} of ${this.size} bytes (changed file or stale index?)`);
      if (cur.out > from) {
        const skip = Math.max(0, from - pieceStart);
        out.set(bytes.subarray(skip), pieceStart + skip - from);
      }
    }
    this.live = cur;
    return out;
  }

  async close(): Promise<void> {
    this.live = null;
    await this.blobs.close();
  }
}

/**
 * Open a single block for random access: from the cached index, or after
 * building it. Throws UnsupportedError for what it cannot checkpoint (filter
 * chains, huge dictionaries), for the caller to stream instead.
 */
export async function openXzCheckpoints(inner: ByteSource, path: string, context: OpenContext, block: XzBlock): Promise<{ chunks: XzCheckpointChunks; how: string }> {
  const { dataAt, dictSize } = await blockHeader(inner, block);
  const ringSize = Lzma2Decoder.ringSizeFor(dictSize, block.uncompressed);
  if (ringSize > MAX_RING) throw new UnsupportedError(`xz dictionary of ${dictSize} bytes is too large for checkpoints`);
  if (block.checkType !== 0 && block.checkType !== 1 && block.checkType !== 4 && block.checkType !== 10) {
    throw new UnsupportedError(`xz check type ${block.checkType} is not supported`);
  }
  const dir = cacheDirectory(context);
  const key = await indexKey('xz', inner, path);
  const dec = new Lzma2Decoder(ringSize);
  // An index for another block size or dictionary is stale: rebuilt.
  const fits = (h: unknown): h is XzIndexHeader => isHeader(h) && h.size === block.uncompressed && h.ringSize === ringSize;
  const { cached, how } = await loadOrBuildIndex(dir, key, fits, (writer) => buildIndex(inner, block, dataAt, dictSize, dec, context, writer));
  return { chunks: new XzCheckpointChunks(inner, cached.header, cached.blobs, dec), how };
}
