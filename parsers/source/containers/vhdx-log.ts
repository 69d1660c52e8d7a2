import { CorruptError, UnsupportedError } from '../../errors.js';
import { readExact } from '../read.js';
import type { ByteSource } from '../types.js';
import { u64le } from './binary.js';
import { crc32c } from './crc32c.js';
import { PatchedSource } from './patched.js';

/**
 * VHDX log replay (MS-VHDX 2.3), done in memory: a file closed uncleanly has
 * metadata updates (BAT, headers) still in its log. We find the active log
 * sequence and apply its writes to an overlay, never to the file.
 */
const SECTOR = 4096;
/** Hyper-V and qemu write 1 MiB logs; a bigger one is read whole only up to this bound. */
const MAX_LOG_BYTES = 64 * 1024 * 1024;

interface LogEntry {
  offset: number; // within the log
  length: number;
  sequence: bigint;
  tail: number;
  flushedFileOffset: number;
  lastFileOffset: number;
  writes: ({ kind: 'data'; fileOffset: number; data: Buffer } | { kind: 'zero'; fileOffset: number; length: number })[];
}

export async function replayVhdxLog(
  file: ByteSource,
  logGuid: Buffer,
  logOffset: number,
  logLength: number,
): Promise<ByteSource> {
  const S = 'VHDX log';
  if (logLength === 0 || logLength % (1024 * 1024) !== 0 || logOffset % (1024 * 1024) !== 0) {
    throw new CorruptError(S, logOffset, `log of ${logLength} bytes at ${logOffset} is not 1 MiB aligned`);
  }
  if (logLength > MAX_LOG_BYTES) {
    throw new UnsupportedError(`VHDX log of ${logLength} bytes must be replayed but is larger than the ${MAX_LOG_BYTES}-byte limit for in-memory replay`);
  }
  const log = await readExact(file, logOffset, logLength, S);
  const at = (off: number, len: number): Buffer => {
    // The log is circular: an entry may wrap around its end.
    const start = off % logLength;
    if (start + len <= logLength) return log.subarray(start, start + len);
    return Buffer.concat([log.subarray(start), log.subarray(0, len - (logLength - start))]);
  };

  const parseEntry = (off: number): LogEntry | null => {
    const h = at(off, 64);
    if (h.toString('latin1', 0, 4) !== 'loge') return null;
    const length = h.readUInt32LE(8);
    if (length < SECTOR || length % SECTOR !== 0 || length > logLength) return null;
    if (!h.subarray(32, 48).equals(logGuid)) return null;
    const whole = Buffer.from(at(off, length));
    const stored = whole.readUInt32LE(4);
    whole.writeUInt32LE(0, 4);
    if (crc32c(whole) !== stored) return null;
    const sequence = h.readBigUInt64LE(16);
    if (sequence === 0n) return null;
    const count = h.readUInt32LE(24);
    const descSectors = Math.ceil((count + 2) / 128);
    if (descSectors * SECTOR > length) return null;
    const writes: LogEntry['writes'] = [];
    let dataSector = descSectors;
    for (let i = 0; i < count; i++) {
      const d = whole.subarray(64 + i * 32, 64 + (i + 1) * 32);
      const sig = d.toString('latin1', 0, 4);
      if (d.readBigUInt64LE(24) !== sequence) return null;
      const fileOffset = u64le(d, 16, 'VHDX log descriptor', logOffset + off);
      if (fileOffset % SECTOR !== 0) return null;
      if (sig === 'zero') {
        const len = u64le(d, 8, 'VHDX log descriptor', logOffset + off);
        if (len % SECTOR !== 0) return null;
        writes.push({ kind: 'zero', fileOffset, length: len });
      } else if (sig === 'desc') {
        if ((dataSector + 1) * SECTOR > length) return null;
        const sec = whole.subarray(dataSector * SECTOR, (dataSector + 1) * SECTOR);
        dataSector++;
        if (sec.toString('latin1', 0, 4) !== 'data') return null;
        const seq = (BigInt(sec.readUInt32LE(4)) << 32n) | BigInt(sec.readUInt32LE(4092));
        if (seq !== sequence) return null;
        // The data sector's own signature/sequence fields displace 12 bytes kept in the descriptor.
        const data = Buffer.alloc(SECTOR);
        d.copy(data, 0, 8, 16); // leading bytes
        sec.copy(data, 8, 8, 4092);
        d.copy(data, 4092, 4, 8); // trailing bytes
        writes.push({ kind: 'data', fileOffset, data });
      } else {
        return null;
      }
    }
    return {
      offset: off,
      length,
      sequence,
      tail: h.readUInt32LE(12),
      flushedFileOffset: u64le(h, 48, S, logOffset + off),
      lastFileOffset: u64le(h, 56, S, logOffset + off),
      writes,
    };
  };

  // Find the valid sequence ending in the highest sequence number (MS-VHDX 2.3.3).
  let best: LogEntry[] | null = null;
  for (let off = 0; off < logLength; off += SECTOR) {
    const first = parseEntry(off);
    if (!first) continue;
    const seq: LogEntry[] = [first];
    let next = (first.offset + first.length) % logLength;
    // At most logLength / 4096 entries fit, which bounds the walk.
    while (seq.length < logLength / SECTOR) {
      const e = parseEntry(next);
      if (!e || e.sequence !== seq[seq.length - 1].sequence + 1n) break;
      seq.push(e);
      next = (e.offset + e.length) % logLength;
    }
    const head = seq[seq.length - 1];
    // The head's tail must point at the start of this sequence (or inside it).
    const tailIndex = seq.findIndex((e) => e.offset === head.tail);
    if (tailIndex < 0) continue;
    const active = seq.slice(tailIndex);
    if (!best || head.sequence > best[best.length - 1].sequence) best = active;
  }
  if (!best) return file; // Nothing valid to replay: the log is effectively empty.

  const head = best[best.length - 1];
  if (file.size < head.flushedFileOffset) {
    throw new CorruptError(S, logOffset + head.offset, `file of ${file.size} bytes is shorter than the ${head.flushedFileOffset} bytes the log says were flushed (truncated?)`);
  }
  let size = Math.max(file.size, head.lastFileOffset);
  for (const e of best) for (const w of e.writes) size = Math.max(size, w.fileOffset + (w.kind === 'data' ? SECTOR : w.length));
  const patched = new PatchedSource(file, size, SECTOR);
  for (const e of best) {
    for (const w of e.writes) {
      if (w.kind === 'data') patched.writePage(w.fileOffset, w.data);
      else patched.writeZeros(w.fileOffset, w.length);
    }
  }
  return patched;
}
