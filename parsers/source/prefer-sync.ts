import type { ByteSource } from './types.js';

/**
 * Reads that are synchronous while the image answers fast (from the page
 * cache), and go back to async reads for a while when one was slow.
 *
 * Why: an async read is a round trip through libuv's threadpool, and on this
 * 2-core VM the hand-off alone cost ~70 µs of main-thread CPU per read
 * (profiled: the fs binding's `read`; a futex wake of a worker thread), more
 * than the pread of a 64 KiB page from the page cache (~20 µs). Listing a
 * 10,000-entry directory makes ~180 such reads. Blocking the event loop is
 * only acceptable while reads are that quick, so each read is timed: one that
 * took longer than the page cache would (cold disk, network storage) sends
 * that source back to the threadpool for SLOW_BACKOFF_MS, and a server keeps
 * serving other requests meanwhile.
 * Sources are tracked by object: a volume's slice, or a CachedSource's inner.
 */
const SLOW_BACKOFF_MS = 10_000;

/**
 * Allowed time for a synchronous read: 1 ms plus 250 MB/s. Generous, because
 * on this loaded VM a page-cache read into a fresh buffer (page faults) took
 * up to 7 ms for 4 MiB and 0.3 ms for 64 KiB; a disk seek (5-15 ms) still
 * shows, and a cold SSD read (~0.1 ms) is harmless to wait for.
 */
const allowedMs = (length: number) => 1 + length / 250_000;

const asyncUntil = new WeakMap<ByteSource, number>();

/** Whether synchronous reads of `source` are in favour now (it has readSync, and no recent read was slow). */
export function syncReadsAllowed(source: ByteSource): boolean {
  if (!source.readSync) return false;
  const until = asyncUntil.get(source);
  if (until === undefined) return true;
  if (Date.now() < until) return false;
  asyncUntil.delete(source);
  return true;
}

/** Slow synchronous reads in a row, per source. */
const slowStreak = new WeakMap<ByteSource, number>();

/**
 * Slow reads in a row before a source goes async. One is not enough: on a
 * loaded machine a page-cache read is now and then slow because the thread
 * was preempted (with the load average at 4 on 2 cores that happened often
 * enough to keep 50 downloads on the threadpool); a cold disk is slow every
 * time.
 */
const SLOW_STREAK = 3;

/** Report how long a synchronous read of `length` bytes took; slow ones in a row send the source back to async reads for a while. */
export function noteSyncRead(source: ByteSource, length: number, elapsedMs: number): void {
  if (elapsedMs <= allowedMs(length)) {
    if (slowStreak.has(source)) slowStreak.delete(source);
    return;
  }
  const streak = (slowStreak.get(source) ?? 0) + 1;
  if (streak < SLOW_STREAK) {
    slowStreak.set(source, streak);
    return;
  }
  slowStreak.delete(source);
  asyncUntil.set(source, Date.now() + SLOW_BACKOFF_MS);
}

export function readPreferSync(source: ByteSource, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  if (!syncReadsAllowed(source)) return source.read(buffer, offset, length, position);
  const started = performance.now();
  let n: number;
  try {
    n = source.readSync!(buffer, offset, length, position);
  } catch (e) {
    return Promise.reject(e);
  }
  noteSyncRead(source, length, performance.now() - started);
  return Promise.resolve(n);
}
