import { CorruptError } from '../errors.js';
import type { ByteSource } from './types.js';

/**
 * Read exactly `length` bytes at `position`, or throw a CorruptError naming
 * `structure` (the thing we expected to find there) when the source ends first.
 */
export async function readExact(
  source: ByteSource,
  position: number,
  length: number,
  structure: string,
): Promise<Buffer> {
  if (!Number.isSafeInteger(position) || position < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new CorruptError(structure, position, `invalid position or length (${length} bytes)`);
  }
  if (position + length > source.size) {
    throw new CorruptError(
      structure,
      position,
      `${length} bytes needed but the ${source.size}-byte source ends at byte ${source.size} (truncated image?)`,
    );
  }
  const buf = Buffer.allocUnsafe(length);
  const n = await source.read(buf, 0, length, position);
  if (n !== length) {
    throw new CorruptError(structure, position, `short read: ${n} of ${length} bytes (truncated image?)`);
  }
  return buf;
}

/** Read up to `length` bytes; bytes past the end of the source are zero. */
export async function readZeroPadded(source: ByteSource, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  if (position < source.size) await source.read(buf, 0, Math.min(length, source.size - position), position);
  return buf;
}
