import { spawnSync } from 'node:child_process';
import { fstatSync, readFileSync } from 'node:fs';
import { writeAllSync } from './write.js';
import type { Disk, Entry } from '../parsers/vfs/index.js';

const READ_CHUNK = 4 * 1024 * 1024;
/**
 * Writes into a pipe go in slices: measured here, 1 GiB through a pipe takes
 * ~1.1 s in 4 MiB writes but ~0.55 s in 16–32 KiB writes, because a write no
 * larger than part of the 64 KiB pipe buffer lets reader and writer overlap.
 */
const PIPE_SLICE = 32 * 1024;

/** Linux fcntl command to resize a pipe (F_LINUX_SPECIFIC_BASE + 7). */
const F_SETPIPE_SZ = 1031;

/**
 * Grow the pipe on `fd` to the system maximum (1 MiB by default) so each write
 * can be large and the reader rarely waits: measured here, 1 GiB into `| cat`
 * takes ~0.5 s with a 1 MiB pipe and 256 KiB+ writes, against ~0.8 s with the
 * default 64 KiB pipe and the best slice size (32 KiB). Node has no fcntl, so a
 * one-line perl (perl-base is essential on Debian) does it on our inherited
 * descriptor. Returns the new size, or null when it could not be grown.
 */
function growPipe(fd: number): number | null {
  let max = 1024 * 1024;
  try {
    max = Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8').trim()) || max;
  } catch {
    // not Linux, or /proc not mounted: try the usual default
  }
  const r = spawnSync('perl', ['-e', `fcntl(STDOUT, ${F_SETPIPE_SZ}, ${max}) or exit 1`], { stdio: ['ignore', fd, 'ignore'], timeout: 5000 });
  return r.status === 0 ? max : null;
}

/**
 * Copy a file's bytes to a descriptor: large reads from the image, with the
 * next read already in flight while the current chunk is written.
 */
export async function copyToFd(disk: Disk, entry: Entry, fd: number, onProgress?: (bytes: number) => void): Promise<number> {
  const size = entry.stat.size;
  let slice = READ_CHUNK;
  try {
    if (fstatSync(fd).isFIFO()) {
      const grown = size >= 8 * 1024 * 1024 ? growPipe(fd) : null;
      slice = grown ? Math.min(grown, READ_CHUNK) : PIPE_SLICE;
    }
  } catch {
    // fstat failing leaves the default
  }
  const buffers = [Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(size, 1))), Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(size, 1)))];
  let position = 0;
  let which = 0;
  const readAt = (pos: number, buf: Buffer) => disk.read(entry, buf, 0, Math.min(buf.length, size - pos), pos);
  let pending: Promise<number> | null = size > 0 ? readAt(0, buffers[0]) : null;
  while (pending) {
    const n = await pending;
    if (n <= 0) break;
    const current = buffers[which];
    position += n;
    which ^= 1;
    pending = position < size ? readAt(position, buffers[which]) : null;
    // Let the read's promise chain (cached metadata lookups resolve as
    // microtasks) reach the actual pread before the synchronous writes block
    // this thread; otherwise reading and writing never overlap.
    if (pending) await new Promise((resolve) => setImmediate(resolve));
    writeAllSync(fd, current.subarray(0, n), slice);
    onProgress?.(position);
  }
  return position;
}
