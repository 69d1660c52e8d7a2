import { CorruptError } from '../../errors.js';

/**
 * Helpers for on-disk integers. Offsets and sizes are 64-bit on disk but plain
 * numbers here: anything past 2^53 cannot be a real position and is reported
 * as corrupt instead of silently losing precision.
 */
export function u64le(buf: Buffer, at: number, structure: string, fileOffset: number): number {
  return safe(buf.readBigUInt64LE(at), structure, fileOffset + at);
}

export function u64be(buf: Buffer, at: number, structure: string, fileOffset: number): number {
  return safe(buf.readBigUInt64BE(at), structure, fileOffset + at);
}

function safe(v: bigint, structure: string, offset: number): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CorruptError(structure, offset, `64-bit field 0x${v.toString(16)} is out of range`);
  }
  return Number(v);
}

/** A GUID as Microsoft writes it (first three fields little-endian), upper-case with dashes. */
export function guidLE(buf: Buffer, at: number): string {
  const h = (a: number, b: number) => buf.subarray(at + a, at + b).toString('hex');
  const rev = (a: number, b: number) => Buffer.from(buf.subarray(at + a, at + b)).reverse().toString('hex');
  return `${rev(0, 4)}-${rev(4, 6)}-${rev(6, 8)}-${h(8, 10)}-${h(10, 16)}`.toUpperCase();
}

export function isAllZero(buf: Uint8Array): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Decode UTF-16 (little- or big-endian) up to the first NUL. */
export function utf16(buf: Buffer, bigEndian: boolean): string {
  const copy = Buffer.from(buf.subarray(0, buf.length & ~1));
  if (bigEndian) copy.swap16();
  const s = copy.toString('utf16le');
  const nul = s.indexOf('\0');
  return nul >= 0 ? s.slice(0, nul) : s;
}

/** Ceiling division for positive integers. */
export function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}
