import type * as Fzstd from 'fzstd';

/** fzstd's decoder, loaded by loadZstd() so that other images do not pay for it (the JavaScript decoders together took ~80 ms of every start-up, measured). */
let fzstd: typeof Fzstd | undefined;

/** Load the decoder; every opener of zstd data (zstd images, qcow2 with zstd clusters) awaits this before decoding. */
export async function loadZstd(): Promise<void> {
  fzstd ??= await import('fzstd');
}

/** A streaming decoder calling `onChunk` with its output; loadZstd() must have run. */
export function zstdDecoder(onChunk: (chunk: Uint8Array) => void): Fzstd.Decompress {
  if (!fzstd) throw new Error('zstd decoder used before loadZstd()');
  return new fzstd.Decompress(onChunk);
}

/**
 * Zstandard frame layout (RFC 8878): enough to find where frames and their
 * blocks end without decoding, and to decode one frame into a bounded buffer.
 * Decoding is fzstd's (pure JS); we check the window size first, because
 * fzstd allocates whatever window a (possibly hostile) header asks for.
 */
export const ZSTD_MAGIC = 0xfd2fb528;
/** zstd's own default decoder limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT = 27); frames needing more need --long. */
export const MAX_WINDOW = 2 ** 27;

export type FrameHeader =
  | { skippable: true; length: number }
  | {
      skippable: false;
      headerLength: number;
      contentSize: number | undefined;
      windowSize: number;
      hasChecksum: boolean;
    };

export class ZstdFormatError extends Error {}

export function isSkippableMagic(magic: number): boolean {
  return magic >>> 4 === 0x184d2a5;
}

/** Parse the frame header at `at`; `buf` must hold at least 18 bytes from there (or to its end). */
export function parseFrameHeader(buf: Uint8Array, at: number): FrameHeader {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (at + 8 > view.length) throw new ZstdFormatError('truncated frame header');
  const magic = view.readUInt32LE(at);
  if (isSkippableMagic(magic)) return { skippable: true, length: 8 + view.readUInt32LE(at + 4) };
  if (magic !== ZSTD_MAGIC) throw new ZstdFormatError(`bad frame magic 0x${magic.toString(16)}`);
  const fhd = view[at + 4];
  if (fhd & 8) throw new ZstdFormatError('reserved frame header bit set');
  const singleSegment = (fhd >> 5) & 1;
  const dictBytes = [0, 1, 2, 4][fhd & 3];
  const fcsFlag = fhd >> 6;
  const fcsBytes = fcsFlag === 0 ? singleSegment : 1 << fcsFlag;
  let p = at + 5;
  let windowSize = 0;
  if (!singleSegment) {
    const wd = view[p++];
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  if (dictBytes && view.readUIntLE(p, dictBytes) !== 0) throw new ZstdFormatError('frame needs a dictionary');
  p += dictBytes;
  if (p + fcsBytes > view.length) throw new ZstdFormatError('truncated frame header');
  let contentSize: number | undefined;
  if (fcsBytes === 1) contentSize = view[p];
  else if (fcsBytes === 2) contentSize = view.readUInt16LE(p) + 256;
  else if (fcsBytes === 4) contentSize = view.readUInt32LE(p);
  else if (fcsBytes === 8) {
    const v = view.readBigUInt64LE(p);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZstdFormatError('frame content size out of range');
    contentSize = Number(v);
  }
  p += fcsBytes;
  if (singleSegment) windowSize = contentSize ?? 0;
  return { skippable: false, headerLength: p - at, contentSize, windowSize, hasChecksum: ((fhd >> 2) & 1) === 1 };
}

/** Length of the whole frame (header, blocks, checksum) starting at `at` in `buf`, by walking block headers. */
export function frameLength(buf: Uint8Array, at: number): number {
  const h = parseFrameHeader(buf, at);
  if (h.skippable) return h.length;
  let p = at + h.headerLength;
  // Each block is at least 3 bytes, so this loop ends within buf.length / 3 steps.
  for (;;) {
    if (p + 3 > buf.length) throw new ZstdFormatError('truncated block header');
    const bh = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16);
    const last = bh & 1;
    const type = (bh >> 1) & 3;
    const size = bh >>> 3;
    if (type === 3) throw new ZstdFormatError('reserved block type');
    p += 3 + (type === 1 ? 1 : size);
    if (last) break;
  }
  p += h.hasChecksum ? 4 : 0;
  if (p > buf.length) throw new ZstdFormatError('truncated frame');
  return p - at;
}

/**
 * Decode the zstd frames in `data` (skipping skippable frames and ignoring
 * trailing zero padding) until `size` bytes are out. Output never exceeds `size`.
 */
export function decodeZstdFrames(data: Uint8Array, size: number): Buffer {
  const out = Buffer.alloc(size);
  let filled = 0;
  let at = 0;
  while (filled < size && at + 4 <= data.length) {
    const h = parseFrameHeader(data, at);
    const len = frameLength(data, at);
    if (!h.skippable) filled += decodeFrameInto(data.subarray(at, at + len), h, out, filled);
    at += len;
  }
  if (filled < size) throw new ZstdFormatError(`frames hold ${filled} bytes, expected ${size}`);
  return out;
}

/** Decode one complete frame into out[offset..]; returns the bytes written. Refuses to overflow `out`. */
export function decodeFrameInto(
  frame: Uint8Array,
  header: Extract<FrameHeader, { skippable: false }>,
  out: Uint8Array,
  offset: number,
): number {
  if (header.windowSize > MAX_WINDOW) {
    throw new ZstdFormatError(`frame window of ${header.windowSize} bytes exceeds zstd's default 128 MiB limit`);
  }
  let written = 0;
  const room = out.length - offset;
  const d = zstdDecoder((chunk) => {
    if (written + chunk.length > room) throw new ZstdFormatError(`frame decodes to more than the ${room} bytes expected`);
    out.set(chunk, offset + written);
    written += chunk.length;
  });
  d.push(frame, true);
  if (header.contentSize !== undefined && written !== header.contentSize) {
    throw new ZstdFormatError(`frame decoded to ${written} bytes but its header says ${header.contentSize}`);
  }
  return written;
}
