import { CorruptError } from '../../errors.js';
import type { ByteSource } from '../../source/types.js';
import type { FilePiece } from '../types.js';

/** A piece of file data that is on disk (FAT has no holes). */
type StoredPiece = FilePiece & { at: number };

/**
 * Where a file's clusters lie, as runs of physically consecutive clusters in
 * file order. Kept in typed arrays: a badly fragmented 4 GiB file can have
 * a million runs, and objects per run would cost ten times the memory.
 */
export class ClusterRuns {
  /** First cluster number of each run. */
  private firsts = new Uint32Array(4);
  /** Cluster count of each run. */
  private counts = new Uint32Array(4);
  /** Index (in clusters, from the file's start) of each run's first cluster. */
  private fileIndex = new Float64Array(4);
  private runCount = 0;
  private total = 0;

  get length(): number {
    return this.runCount;
  }

  /** Clusters covered by all runs. */
  get clusters(): number {
    return this.total;
  }

  /** Append `count` clusters starting at `first`, merging with the last run when physically contiguous. */
  append(first: number, count = 1): void {
    const last = this.runCount - 1;
    if (last >= 0 && this.firsts[last] + this.counts[last] === first && this.counts[last] + count <= 0xffffffff) {
      this.counts[last] += count;
    } else {
      if (this.runCount === this.firsts.length) this.grow();
      this.firsts[this.runCount] = first;
      this.counts[this.runCount] = count;
      this.fileIndex[this.runCount] = this.total;
      this.runCount++;
    }
    this.total += count;
  }

  run(i: number): { first: number; count: number; fileIndex: number } {
    return { first: this.firsts[i], count: this.counts[i], fileIndex: this.fileIndex[i] };
  }

  /** Index of the run holding file cluster `index`, or -1 past the end. */
  find(index: number): number {
    if (index >= this.total || index < 0) return -1;
    let lo = 0;
    let hi = this.runCount - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.fileIndex[mid] <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * A cluster that appears twice: the chain loops (or two parts of it cross).
   * Sorting the runs by cluster costs O(runs log runs), far less than the walk.
   */
  findRepeatedCluster(): number | null {
    const order = Array.from({ length: this.runCount }, (_, i) => i).sort((a, b) => this.firsts[a] - this.firsts[b]);
    for (let k = 1; k < order.length; k++) {
      const prev = order[k - 1];
      const cur = order[k];
      if (this.firsts[cur] < this.firsts[prev] + this.counts[prev]) return this.firsts[cur];
    }
    return null;
  }

  /** Approximate memory cost, for cache budgets. */
  get bytes(): number {
    return this.firsts.length * 16 + 64;
  }

  private grow(): void {
    const size = this.firsts.length * 2;
    const firsts = new Uint32Array(size);
    firsts.set(this.firsts);
    const counts = new Uint32Array(size);
    counts.set(this.counts);
    const fileIndex = new Float64Array(size);
    fileIndex.set(this.fileIndex);
    this.firsts = firsts;
    this.counts = counts;
    this.fileIndex = fileIndex;
  }
}

/** Whose clusters these are, for error messages: the directory entry that points to them. */
export interface ChainOwner {
  /** Path or name of the file, e.g. "/docs/a.txt". */
  name: string;
  /** The structure holding the first cluster, e.g. "FAT directory entry". */
  structure: string;
  /** Byte offset of that structure within the volume. */
  entryOffset: number;
}

/** Where clusters live: byte offset of cluster 2 within the volume, and the cluster size. */
export interface ClusterHeap {
  heapOffset: number;
  clusterSize: number;
}

export function clusterOffset(heap: ClusterHeap, cluster: number): number {
  return heap.heapOffset + (cluster - 2) * heap.clusterSize;
}

/**
 * Bytes [position, position + length) of a file laid out in `runs`, as pieces
 * of the volume: one per run of physically consecutive clusters. Bytes past
 * the runs are an error: the chain is shorter than the size says (the caller
 * has clamped `length` to the file size).
 */
export function mapRuns(heap: ClusterHeap, runs: ClusterRuns, length: number, position: number, owner: ChainOwner): StoredPiece[] {
  const cs = heap.clusterSize;
  const pieces: StoredPiece[] = [];
  let done = 0;
  while (done < length) {
    const pos = position + done;
    const index = Math.floor(pos / cs);
    const i = runs.find(index);
    if (i < 0) {
      throw new CorruptError(
        owner.structure,
        owner.entryOffset,
        `${owner.name}: the cluster chain ends after ${runs.clusters} clusters but byte ${pos} of the file is needed (chain shorter than the file size)`,
      );
    }
    const run = runs.run(i);
    const n = Math.min(length - done, (run.fileIndex + run.count) * cs - pos);
    pieces.push({ at: clusterOffset(heap, run.first) + (pos - run.fileIndex * cs), length: n });
    done += n;
  }
  return pieces;
}

/**
 * Read bytes [position, position + length) of a file laid out in `runs` into
 * buffer[offset..]. Each run of physically consecutive clusters becomes ONE
 * source read, so a contiguous file read in 4 MiB requests reaches the source
 * as 4 MiB reads.
 */
export async function readRuns(
  source: ByteSource,
  heap: ClusterHeap,
  runs: ClusterRuns,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
  owner: ChainOwner,
): Promise<number> {
  let done = 0;
  for (const { at, length: n } of mapRuns(heap, runs, length, position, owner)) {
    const got = await source.read(buffer, offset + done, n, at);
    if (got !== n) {
      throw new CorruptError('cluster heap', at + got, `${owner.name}: the volume ends inside the file's data (truncated image?)`);
    }
    done += n;
  }
  return done;
}
