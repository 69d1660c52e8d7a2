/**
 * Reads the target back for verification, bypassing the page cache so what
 * is compared is what reached the device, not the copy the kernel still holds
 * in memory. O_DIRECT with page-aligned buffers (see aligned.ts) when the
 * target accepts it; otherwise (ramfs, some FUSE filesystems) the cached pages
 * are dropped first with posix_fadvise(DONTNEED), which Node cannot call but
 * GNU dd does for `iflag=nocache count=0`, and the read is a normal one.
 *
 * Synchronous on purpose: it runs in the verify worker (verify-worker.ts),
 * off the thread that writes.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { alignDown, alignedBuffer, alignUp, DIRECT_ALIGN } from './aligned.js';

export type ReadBackMethod = 'direct' | 'dropped-cache';

export const READ_BACK_DESCRIPTION: Record<ReadBackMethod, string> = {
  direct: 'read back with O_DIRECT',
  'dropped-cache': 'read back after dropping the page cache (O_DIRECT refused by the target)',
};

export class TargetReader {
  private readonly buffer: Buffer;
  private fd: number;
  method: ReadBackMethod;

  constructor(
    readonly path: string,
    maxRead: number,
  ) {
    this.buffer = alignedBuffer(maxRead + 2 * DIRECT_ALIGN);
    try {
      this.fd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
      this.method = 'direct';
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      this.fd = openSync(path, constants.O_RDONLY);
      this.method = 'dropped-cache';
    }
  }

  /** Call after the written data was synced and before reading it back. */
  beforeReads(): void {
    if (this.method === 'dropped-cache') execFileSync('dd', [`if=${this.path}`, 'iflag=nocache', 'count=0', 'status=none']);
  }

  /** Bytes [start, start + length) of the target; the view is valid until the next call. */
  read(start: number, length: number): Buffer {
    if (this.method === 'direct') {
      try {
        const from = alignDown(start);
        const view = this.readAll(from, alignUp(start + length) - from);
        return view.subarray(start - from, start - from + length);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
        // Some filesystems accept O_DIRECT at open and refuse it at read time.
        closeSync(this.fd);
        this.fd = openSync(this.path, constants.O_RDONLY);
        this.method = 'dropped-cache';
        this.beforeReads();
      }
    }
    return this.readAll(start, length);
  }

  private readAll(position: number, length: number): Buffer {
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, this.buffer, done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return this.buffer.subarray(0, done);
  }

  close(): void {
    closeSync(this.fd);
  }
}
