/**
 * A random-access, read-only byte source: a raw image file, a slice of another
 * source (a partition), and later containers (qcow2, VHDX, compressed raw) that
 * present the disk they hold. Sources wrap sources; nothing above this layer
 * opens files.
 */

/** A half-open byte range [start, start + length). */
export interface ByteRange {
  start: number;
  length: number;
}

export interface ByteSource {
  /** Total size in bytes. Positions are plain numbers: exact up to 2^53. */
  readonly size: number;
  /** Short human description used in messages, e.g. `raw image pc.img`. */
  readonly description: string;
  /**
   * Read up to `length` bytes at `position` into `buffer[offset..]` and return
   * how many were read. Fewer than `length` only at the end of the source.
   * Implementations must pass large reads down as large reads (no 4 KiB
   * round trips) and must never write to the underlying storage.
   */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /**
   * The same read done synchronously, offered only by sources that are plain
   * positional reads of a file (a raw image and slices of it). Bulk copies
   * use it to read and write in one thread: see cli/copy-out.ts for why.
   */
  readonly readSync?: (buffer: Uint8Array, offset: number, length: number, position: number) => number;
  /**
   * Ranges that hold data, when the source knows (a sparse container, a
   * compressed image index). Undefined means "everything may hold data".
   */
  allocatedRanges?(): Promise<ByteRange[]>;
  /** Release file handles. Idempotent. */
  close(): Promise<void>;
}

/** What opening an image found: the outermost-to-innermost layers, e.g. ["gzip", "qcow2"]. */
export interface OpenedImage {
  source: ByteSource;
  /** Container chain from the file inwards; empty for a plain raw image. */
  chain: string[];
  /** Size of the file on disk (may differ from source.size for containers). */
  fileSize: number;
  path: string;
}
