import { writeSync } from 'node:fs';

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * writeSync that survives a non-blocking descriptor: a parent that spawned us
 * may have left our stdout pipe O_NONBLOCK, so a full pipe answers EAGAIN
 * instead of blocking. Wait a millisecond and retry.
 */
export function writeAllSync(fd: number, data: Uint8Array | string, slice = 1024 * 1024): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off, Math.min(slice, buf.length - off));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(sleeper, 0, 0, 1);
    }
  }
}
