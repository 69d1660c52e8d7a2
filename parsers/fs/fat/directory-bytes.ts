import { readExact } from '../../source/read.js';
import type { ByteSource } from '../../source/types.js';
import { clusterOffset, type ClusterHeap, type ClusterRuns } from './cluster-runs.js';

/** A directory's raw 32-byte entries, and where entry `index` lies in the volume (for error messages and inode numbers). */
export interface DirectoryBytes {
  bytes: Buffer;
  offsetOf: (index: number) => number;
}

/**
 * Read a directory laid out in `runs`, run by run, and stop after the piece
 * holding the end-of-directory mark (an entry whose first byte is 0): the
 * clusters past it are never looked at. Runs are read in pieces of at most
 * `pieceBytes`, for formats whose clusters can be very large.
 */
export async function readDirectoryRuns(
  source: ByteSource,
  heap: ClusterHeap,
  runs: ClusterRuns,
  what: string,
  pieceBytes = Infinity,
): Promise<DirectoryBytes> {
  const cs = heap.clusterSize;
  const parts: Buffer[] = [];
  let ended = false;
  for (let i = 0; i < runs.length && !ended; i++) {
    const run = runs.run(i);
    const start = clusterOffset(heap, run.first);
    const runBytes = run.count * cs;
    for (let done = 0; done < runBytes && !ended; ) {
      const n = Math.min(pieceBytes, runBytes - done);
      const part = await readExact(source, start + done, n, what);
      parts.push(part);
      done += n;
      ended = hasEndMark(part);
    }
  }
  const offsetOf = (index: number) => {
    const byte = index * 32;
    const run = runs.run(runs.find(Math.floor(byte / cs)));
    return clusterOffset(heap, run.first) + (byte - run.fileIndex * cs);
  };
  return { bytes: parts.length === 1 ? parts[0] : Buffer.concat(parts), offsetOf };
}

/** True when some 32-byte entry starts with 0: the end-of-directory mark. */
function hasEndMark(part: Buffer): boolean {
  for (let i = 0; i < part.length; i += 32) if (part[i] === 0) return true;
  return false;
}
