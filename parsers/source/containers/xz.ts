import { crc32 } from 'node:zlib';
import type XzDecompressModule from 'xz-decompress';
import { createHash } from 'node:crypto';
import { CorruptError, UnsupportedError } from '../../errors.js';
import type { ContainerFormat, OpenContext } from '../open.js';
import { readExact } from '../read.js';
import type { ByteSource } from '../types.js';
import { ChunkedSource, type ChunkIndex } from './chunked.js';
import { SequentialSource, sourceStream } from './sequential.js';
import { XzFilterChainError, openXzCheckpoints } from './xz-checkpoints.js';

/**
 * xz (the .xz file format, tukaani.org/xz/xz-file-format.txt). Its index, at
 * the end of each stream, lists every block's compressed and uncompressed
 * size: with several blocks (xz -T0, --block-size) each block is decoded on
 * its own. A single big block (plain `xz`) has no place to seek to; it is
 * decoded as a stream (see SequentialSource) and the description says so.
 *
 * Decoding is xz-decompress (xz-embedded in WebAssembly, streaming), so a
 * block's output can be cut off at the size the index promises.
 */
/** xz-decompress's stream class, loaded by the first openXz so that other images do not pay for it (the JavaScript decoders together took ~80 ms of every start-up, measured). */
let XzReadableStream: typeof XzDecompressModule.XzReadableStream;

async function loadXz(): Promise<void> {
  if (XzReadableStream) return;
  // Node gives this CommonJS package's exports as `default`; tsx (the fuzz worker) may give them as the namespace itself.
  const loaded = (await import('xz-decompress')) as unknown as { default?: typeof XzDecompressModule } & typeof XzDecompressModule;
  XzReadableStream = (loaded.default ?? loaded).XzReadableStream;
  // xz-decompress serializes all its streams through one global mutex ("to prevent
  // resource exhaustion"). Each stream has its own decoder context, so this is not
  // needed for correctness, and a stream held open between reads (SequentialSource)
  // would make every other xz image in the process wait forever. We bound
  // concurrency ourselves (one decoder per open image, one decode per chunk read).
  (XzReadableStream as unknown as { _contextMutex: unknown })._contextMutex = { acquire: async () => {}, release: () => {} };
}

/** Check field sizes by check ID (xz-file-format 3.1.2). xz-embedded verifies CRC32 and CRC64 itself. */
const CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];
const CHECK_SHA256 = 0x0a;
const HEADER_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const MAX_BLOCK = 256 * 1024 * 1024;
const MAX_RECORDS = 2 ** 24;

interface Block {
  /** Offset of the block in the file and its padded compressed size. */
  at: number;
  unpadded: number;
  uncompressed: number;
  /** Stream header flags (check type) of the stream holding the block. */
  streamFlags: Buffer;
  out: number;
}

function readVarint(buf: Buffer, pos: { p: number }, at: number): number {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    if (pos.p >= buf.length) throw new CorruptError('xz index', at, 'truncated number');
    const b = buf[pos.p++];
    value += (b & 0x7f) * 2 ** (7 * i);
    if (!(b & 0x80)) {
      if (value > Number.MAX_SAFE_INTEGER) throw new CorruptError('xz index', at, 'number out of range');
      return value;
    }
  }
  throw new CorruptError('xz index', at, 'number longer than 9 bytes');
}

/** Walk the streams from the end of the file backwards, collecting every block. */
async function readBlocks(inner: ByteSource): Promise<Block[]> {
  const streams: Block[][] = [];
  let end = inner.size;
  // Each stream is at least 32 bytes, which bounds the loop.
  while (end > 0) {
    // Stream padding: zero bytes in multiples of four.
    const tail = await readExact(inner, end - 4, 4, 'xz stream padding');
    if (tail.readUInt32LE(0) === 0) {
      end -= 4;
      continue;
    }
    const footer = await readExact(inner, end - 12, 12, 'xz stream footer');
    if (footer.toString('latin1', 10, 12) !== 'YZ') throw new CorruptError('xz stream footer', end - 12, 'bad magic');
    if (crc32(footer.subarray(4, 10)) !== footer.readUInt32LE(0)) throw new CorruptError('xz stream footer', end - 12, 'CRC mismatch');
    const indexSize = (footer.readUInt32LE(4) + 1) * 4;
    const indexAt = end - 12 - indexSize;
    if (indexAt < 12) throw new CorruptError('xz stream footer', end - 8, `index of ${indexSize} bytes does not fit`);
    const index = await readExact(inner, indexAt, indexSize, 'xz index');
    if (index[0] !== 0) throw new CorruptError('xz index', indexAt, 'bad indicator');
    if (crc32(index.subarray(0, indexSize - 4)) !== index.readUInt32LE(indexSize - 4)) throw new CorruptError('xz index', indexAt, 'CRC mismatch');
    const pos = { p: 1 };
    const count = readVarint(index, pos, indexAt);
    if (count > MAX_RECORDS || count * 2 > indexSize) throw new CorruptError('xz index', indexAt, `${count} records do not fit`);
    const records: { unpadded: number; uncompressed: number }[] = [];
    let blocksBytes = 0;
    for (let i = 0; i < count; i++) {
      const unpadded = readVarint(index, pos, indexAt);
      const uncompressed = readVarint(index, pos, indexAt);
      records.push({ unpadded, uncompressed });
      blocksBytes += Math.ceil(unpadded / 4) * 4;
    }
    const streamAt = indexAt - blocksBytes - 12;
    if (streamAt < 0) throw new CorruptError('xz index', indexAt, 'blocks add up to more than the file holds');
    const header = await readExact(inner, streamAt, 12, 'xz stream header');
    if (!header.subarray(0, 6).equals(HEADER_MAGIC)) throw new CorruptError('xz stream header', streamAt, 'bad magic (index and blocks disagree)');
    if (!header.subarray(6, 8).equals(footer.subarray(8, 10))) throw new CorruptError('xz stream footer', end - 4, 'flags differ from the stream header');
    let at = streamAt + 12;
    const blocks: Block[] = [];
    for (const r of records) {
      blocks.push({ at, unpadded: r.unpadded, uncompressed: r.uncompressed, streamFlags: header.subarray(6, 8), out: 0 });
      at += Math.ceil(r.unpadded / 4) * 4;
    }
    streams.unshift(blocks);
    end = streamAt;
  }
  const all = streams.flat();
  let out = 0;
  for (const b of all) {
    b.out = out;
    out += b.uncompressed;
  }
  if (!Number.isSafeInteger(out)) throw new CorruptError('xz index', 0, 'total size out of range');
  return all;
}

/**
 * A standalone one-block xz stream around a block, so the decoder can check and
 * decode it alone. Checks other than CRC32/CRC64 (which xz-embedded cannot do)
 * are cut off and returned, for the caller to verify SHA-256 itself.
 */
function wrapBlock(block: Block, blockBytes: Buffer): { stream: Buffer; strippedCheck?: Buffer; checkType: number } {
  const checkType = block.streamFlags[1] & 0x0f;
  let flags = block.streamFlags;
  let unpadded = block.unpadded;
  let strippedCheck: Buffer | undefined;
  if (checkType !== 0 && checkType !== 1 && checkType !== 4) {
    const size = CHECK_SIZES[checkType];
    unpadded -= size;
    const padded = Math.ceil(unpadded / 4) * 4;
    strippedCheck = blockBytes.subarray(padded, padded + size);
    blockBytes = blockBytes.subarray(0, padded);
    flags = Buffer.from([0, 0]);
  }
  const streamHeader = Buffer.alloc(12);
  HEADER_MAGIC.copy(streamHeader);
  flags.copy(streamHeader, 6);
  streamHeader.writeUInt32LE(crc32(flags), 8);
  const varint = (v: number): number[] => {
    const out: number[] = [];
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
    return out;
  };
  const body = [0, ...varint(1), ...varint(unpadded), ...varint(block.uncompressed)];
  while (body.length % 4) body.push(0);
  const index = Buffer.alloc(body.length + 4);
  Buffer.from(body).copy(index);
  index.writeUInt32LE(crc32(index.subarray(0, body.length)), body.length);
  const footer = Buffer.alloc(12);
  footer.writeUInt32LE(index.length / 4 - 1, 4);
  flags.copy(footer, 8);
  footer.write('YZ', 10, 'latin1');
  footer.writeUInt32LE(crc32(footer.subarray(4, 10)), 0);
  return { stream: Buffer.concat([streamHeader, blockBytes, index, footer]), strippedCheck, checkType };
}

/** Decode an xz stream into exactly `size` bytes, stopping the decoder if it would produce more. */
async function decodeExactly(stream: ReadableStream<Uint8Array>, size: number, where: number): Promise<Buffer> {
  const out = Buffer.alloc(size);
  let filled = 0;
  const reader = new XzReadableStream(stream).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (filled + value.length > size) throw new Error(`decodes to more than the ${size} bytes its index says`);
      out.set(value, filled);
      filled += value.length;
    }
  } catch (e) {
    throw new CorruptError('xz block', where, (e as Error).message || String(e));
  } finally {
    await reader.cancel().catch(() => {});
  }
  if (filled !== size) throw new CorruptError('xz block', where, `decoded ${filled} of ${size} bytes`);
  return out;
}

export async function openXz(inner: ByteSource, path: string, context: OpenContext): Promise<ByteSource> {
  const blocks = await readBlocks(inner);
  const size = blocks.reduce((s, b) => s + b.uncompressed, 0);
  const biggest = blocks.reduce((m, b) => Math.max(m, b.uncompressed), 0);
  if (blocks.length === 0) throw new CorruptError('xz index', 0, 'no blocks');
  let why = '';
  if (blocks.length === 1) {
    // One block (plain xz): checkpoints built by our own LZMA2 decoder, as for gzip.
    const b = blocks[0];
    try {
      const { chunks, how } = await openXzCheckpoints(inner, path, context, { at: b.at, unpadded: b.unpadded, uncompressed: b.uncompressed, checkType: b.streamFlags[1] & 0x0f });
      return new ChunkedSource(inner, chunks, `xz-compressed image, one block, ${chunks.checkpoints} checkpoints, ${how} (${inner.description})`);
    } catch (e) {
      // A dictionary too large to hold, say: xz-decompress may still stream it. A filter chain it cannot decode either is refused.
      if (!(e instanceof UnsupportedError) || e instanceof XzFilterChainError) throw e;
      why = `${e.message}; `;
    }
  }
  await loadXz();
  if (biggest > MAX_BLOCK || blocks.length === 1) {
    const checkType = blocks[0].streamFlags[1] & 0x0f;
    if (checkType !== 0 && checkType !== 1 && checkType !== 4) {
      throw new UnsupportedError(`${why}xz stream with check type ${checkType} in one block is not supported (recompress with xz -T0 or --check=crc64)`);
    }
    // Blocks too big to hold decoded, or a block we cannot checkpoint: no seek points. Stream it (forward reads fast, backward reads restart).
    return new SequentialSource(
      inner,
      size,
      () => new XzReadableStream(sourceStream(inner))[Symbol.asyncIterator](),
      `xz-compressed image with ${blocks.length} block(s): ${why}no seek index, so backward reads decode again from the start (recompress with xz -T0 or --block-size=16MiB for random access) (${inner.description})`,
      (e, at) => new CorruptError('xz stream', at, (e as Error)?.message ?? String(e)),
    );
  }
  const index: ChunkIndex = {
    size,
    count: blocks.length,
    start: (i) => blocks[i].out,
    decode: async (i) => {
      const b = blocks[i];
      const bytes = await readExact(inner, b.at, Math.ceil(b.unpadded / 4) * 4, 'xz block');
      const wrapped = wrapBlock(b, bytes);
      const out = await decodeExactly(new Blob([wrapped.stream]).stream() as ReadableStream<Uint8Array>, b.uncompressed, b.at);
      if (wrapped.checkType === CHECK_SHA256 && !createHash('sha256').update(out).digest().equals(wrapped.strippedCheck!)) {
        throw new CorruptError('xz block', b.at, 'SHA-256 check mismatch: the data is damaged');
      }
      return out;
    },
  };
  return new ChunkedSource(inner, index, `xz-compressed image, ${blocks.length} blocks from its own index (${inner.description})`);
}

export const xzFormat: ContainerFormat = {
  name: 'xz',
  detect: (head) => head.length >= 12 && head.subarray(0, 6).equals(HEADER_MAGIC),
  open: openXz,
};
