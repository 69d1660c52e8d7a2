import { CorruptError } from '../../errors.js';
import type { ContainerFormat, OpenContext } from '../open.js';
import { readExact, readZeroPadded } from '../read.js';
import type { ByteSource } from '../types.js';
import { ChunkedSource, type ChunkIndex } from './chunked.js';
import { Progress } from './progress.js';
import { SequentialSource } from './sequential.js';
import { MAX_WINDOW, ZSTD_MAGIC, ZstdFormatError, decodeFrameInto, frameLength, isSkippableMagic, loadZstd, parseFrameHeader, zstdDecoder } from './zstd-frames.js';

/**
 * Zstandard with random access. Three cases, best first:
 *  - the seekable format (zstd's contrib/seekable_format): a seek table in a
 *    skippable frame at the end lists every frame's sizes;
 *  - several frames (pzstd, concatenated files): frames are found by walking
 *    frame and block headers, without decoding; a frame whose header omits
 *    its content size is decoded once, at open, to measure it;
 *  - one frame (plain `zstd`): no seek points, decoded as a stream.
 */
const SEEKABLE_MAGIC = 0x8f92eab1;
const SEEK_TABLE_FRAME = 0x184d2a5e;
const MAX_FRAME = 256 * 1024 * 1024;
const READ_AHEAD = 1024 * 1024;

interface Frame {
  at: number;
  length: number;
  size: number;
  out: number;
}

/** The seek table, if the file ends with one. */
async function seekTable(inner: ByteSource): Promise<Frame[] | null> {
  if (inner.size < 17) return null;
  const foot = await readExact(inner, inner.size - 9, 9, 'zstd seek table footer');
  if (foot.readUInt32LE(5) !== SEEKABLE_MAGIC) return null;
  const S = 'zstd seek table';
  const count = foot.readUInt32LE(0);
  const descriptor = foot[4];
  if (descriptor & 0x7c) throw new CorruptError(S, inner.size - 5, 'reserved descriptor bits set');
  const entry = descriptor & 0x80 ? 12 : 8;
  const tableSize = count * entry + 9;
  const frameAt = inner.size - tableSize - 8;
  if (count === 0 || frameAt < 0) throw new CorruptError(S, inner.size - 9, `${count} entries do not fit the ${inner.size}-byte file`);
  const table = await readExact(inner, frameAt, tableSize + 8, S);
  if (table.readUInt32LE(0) !== SEEK_TABLE_FRAME || table.readUInt32LE(4) !== tableSize) {
    throw new CorruptError(S, frameAt, 'skippable frame header does not match the footer');
  }
  const frames: Frame[] = [];
  let at = 0;
  let out = 0;
  for (let i = 0; i < count; i++) {
    const length = table.readUInt32LE(8 + i * entry);
    const size = table.readUInt32LE(8 + i * entry + 4);
    if (at + length > frameAt) throw new CorruptError(S, frameAt + 8 + i * entry, `frame ${i} runs past the table`);
    frames.push({ at, length, size, out });
    at += length;
    out += size;
  }
  return frames;
}

/** A forward-only buffered reader for walking small headers through a big file. */
class Cursor {
  private buf: Buffer = Buffer.alloc(0);
  private base = 0;
  constructor(private readonly source: ByteSource) {}
  async bytes(at: number, n: number): Promise<Buffer> {
    if (at < this.base || at + n > this.base + this.buf.length) {
      this.base = at;
      this.buf = await readZeroPadded(this.source, at, Math.max(n, READ_AHEAD));
    }
    return this.buf.subarray(at - this.base, at - this.base + n);
  }
}

/** Walk all frames by their headers; measure (by decoding) those that do not state their size. */
async function walkFrames(inner: ByteSource, context: OpenContext): Promise<Frame[]> {
  const cursor = new Cursor(inner);
  const frames: Frame[] = [];
  const progress = new Progress(context, 'indexing zstd', inner.size);
  let at = 0;
  let out = 0;
  while (at < inner.size) {
    const head = await cursor.bytes(at, 18);
    const magic = head.readUInt32LE(0);
    if (magic === 0 && at > 0) break; // zero padding after the last frame
    let h;
    try {
      h = parseFrameHeader(head, 0);
    } catch (e) {
      throw new CorruptError('zstd frame header', at, (e as Error).message);
    }
    if (h.skippable) {
      at += h.length;
      continue;
    }
    if (h.windowSize > MAX_WINDOW) throw new CorruptError('zstd frame header', at, `window of ${h.windowSize} bytes exceeds zstd's default 128 MiB limit`);
    let p = at + h.headerLength;
    // Every block is at least 3 bytes, so this ends within the file.
    for (;;) {
      if (p + 3 > inner.size) throw new CorruptError('zstd block header', p, 'file ends inside the frame (truncated?)');
      const b = await cursor.bytes(p, 3);
      const bh = b[0] | (b[1] << 8) | (b[2] << 16);
      const type = (bh >> 1) & 3;
      if (type === 3) throw new CorruptError('zstd block header', p, 'reserved block type');
      p += 3 + (type === 1 ? 1 : bh >>> 3);
      if (bh & 1) break;
    }
    p += h.hasChecksum ? 4 : 0;
    if (p > inner.size) throw new CorruptError('zstd frame', at, 'file ends inside the frame (truncated?)');
    const size = h.contentSize ?? (await measureFrame(inner, at, p - at));
    frames.push({ at, length: p - at, size, out });
    out += size;
    if (!Number.isSafeInteger(out)) throw new CorruptError('zstd frame', at, 'total size out of range');
    at = p;
    progress.update(at);
  }
  if (frames.length === 0) throw new CorruptError('zstd frame', 0, 'no frames');
  return frames;
}

/** Decode a frame only to count its output (for frames written without a content size). */
async function measureFrame(inner: ByteSource, at: number, length: number): Promise<number> {
  let size = 0;
  const d = zstdDecoder((chunk) => {
    size += chunk.length;
  });
  try {
    for (let p = 0; p < length; p += READ_AHEAD) {
      const n = Math.min(READ_AHEAD, length - p);
      d.push(await readExact(inner, at + p, n, 'zstd frame'), p + n >= length);
    }
  } catch (e) {
    throw new CorruptError('zstd frame', at, (e as Error).message);
  }
  return size;
}

async function* decodeAll(inner: ByteSource): AsyncGenerator<Uint8Array> {
  const queue: Uint8Array[] = [];
  const d = zstdDecoder((chunk) => {
    queue.push(chunk);
  });
  for (let at = 0; at < inner.size; at += READ_AHEAD) {
    const n = Math.min(READ_AHEAD, inner.size - at);
    d.push(await readExact(inner, at, n, 'zstd stream'), at + n >= inner.size);
    while (queue.length) yield queue.shift()!;
  }
}

export async function openZstd(inner: ByteSource, _path: string, context: OpenContext): Promise<ByteSource> {
  await loadZstd();
  const table = await seekTable(inner);
  const frames = table ?? (await walkFrames(inner, context));
  const size = frames.reduce((s, f) => s + f.size, 0);
  const biggest = frames.reduce((m, f) => Math.max(m, f.size), 0);
  if (!table && (frames.length === 1 || biggest > MAX_FRAME)) {
    return new SequentialSource(
      inner,
      size,
      () => decodeAll(inner),
      `zstd-compressed image in ${frames.length} frame(s): no seek points, so backward reads decode again from the start (use the seekable format or pzstd for random access) (${inner.description})`,
      (e, at) => new CorruptError('zstd stream', at, (e as Error)?.message ?? String(e)),
    );
  }
  if (biggest > MAX_FRAME) throw new CorruptError('zstd seek table', inner.size - 9, `frame of ${biggest} bytes is too large`);
  const index: ChunkIndex = {
    size,
    count: frames.length,
    start: (i) => frames[i].out,
    decode: async (i) => {
      const f = frames[i];
      const bytes = await readExact(inner, f.at, f.length, 'zstd frame');
      const out = Buffer.alloc(f.size);
      try {
        let at = 0;
        let filled = 0;
        while (at + 4 <= bytes.length) {
          const h = parseFrameHeader(bytes, at);
          const len = frameLength(bytes, at);
          if (!h.skippable) filled += decodeFrameInto(bytes.subarray(at, at + len), h, out, filled);
          at += len;
        }
        if (filled !== f.size) throw new ZstdFormatError(`decoded ${filled} of ${f.size} bytes`);
      } catch (e) {
        throw new CorruptError('zstd frame', f.at, (e as Error).message);
      }
      return out;
    },
  };
  return new ChunkedSource(
    inner,
    index,
    `zstd-compressed image, ${frames.length} frames ${table ? 'from its seek table' : 'found by their headers'} (${inner.description})`,
  );
}

export const zstdFormat: ContainerFormat = {
  name: 'zstd',
  detect: (head) => {
    if (head.length < 8) return false;
    const magic = head.readUInt32LE(0);
    if (magic === ZSTD_MAGIC) return true;
    // pzstd and the seekable format may start with a skippable frame.
    if (!isSkippableMagic(magic)) return false;
    const next = 8 + head.readUInt32LE(4);
    return next + 4 <= head.length && head.readUInt32LE(next) === ZSTD_MAGIC;
  },
  open: openZstd,
};
