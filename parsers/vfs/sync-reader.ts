import { CorruptError } from '../errors.js';
import type { FilePiece, FileSystem, FsNode } from '../fs/types.js';
import { noteSyncRead, syncReadsAllowed } from '../source/prefer-sync.js';
import type { ByteSource } from '../source/types.js';

/**
 * Reads one file's bytes synchronously, straight from the volume: the
 * filesystem maps a window of the file to volume byte ranges (async, it may
 * read metadata), then reads inside that window are plain preads in the
 * calling thread. Made by Disk.syncReader for raw images only.
 */
export class SyncFileReader {
  private pieces: FilePiece[] = [];
  /** File position where pieces[0] starts, and where the mapped window ends. */
  private windowStart = 0;
  private windowEnd = 0;
  /** A cursor into pieces, so sequential reads do not rescan the window. */
  private index = 0;
  private indexStart = 0;

  constructor(
    private readonly fs: FileSystem,
    private readonly node: FsNode,
    /** The volume's source; it has readSync (Disk.syncReader checks). */
    private readonly volume: ByteSource,
    private readonly contextualize: (e: unknown) => Error,
  ) {}

  /**
   * Map file bytes [position, position+length) for readSync. False when the
   * filesystem does not store this file plainly (read it with Disk.read).
   */
  async map(position: number, length: number): Promise<boolean> {
    let pieces: FilePiece[] | null;
    try {
      pieces = await this.fs.mapFile!(this.node, position, length);
    } catch (e) {
      throw this.contextualize(e);
    }
    if (pieces === null) return false;
    let end = position;
    for (const p of pieces) end += p.length;
    this.pieces = pieces;
    this.windowStart = this.indexStart = position;
    this.windowEnd = end;
    this.index = 0;
    return true;
  }

  /**
   * Whether reading synchronously is wise now: false for a while after a
   * read was slow (cold disk), so a server can go back to async reads
   * (source/prefer-sync.ts). A CLI copy reads synchronously regardless.
   */
  get preferSync(): boolean {
    return syncReadsAllowed(this.volume);
  }

  /** Whether `position` lies in the mapped window. */
  covers(position: number): boolean {
    return position >= this.windowStart && position < this.windowEnd;
  }

  /** Where the mapped window ends (file position). */
  get mappedEnd(): number {
    return this.windowEnd;
  }

  /**
   * Read file bytes at `position` from the mapped window into
   * buffer[offset..]; returns the bytes read, fewer than `length` where the
   * window ends, 0 when `position` lies outside it (map() it first).
   */
  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    if (position < this.windowStart || position >= this.windowEnd || length <= 0) return 0;
    if (position < this.indexStart) {
      this.index = 0;
      this.indexStart = this.windowStart;
    }
    let done = 0;
    while (done < length && this.index < this.pieces.length) {
      const piece = this.pieces[this.index];
      const pos = position + done;
      if (pos >= this.indexStart + piece.length) {
        this.indexStart += piece.length;
        this.index++;
        continue;
      }
      const within = pos - this.indexStart;
      const n = Math.min(piece.length - within, length - done);
      if (piece.at === null) {
        buffer.fill(0, offset + done, offset + done + n);
      } else {
        let got: number;
        const started = performance.now();
        try {
          got = this.volume.readSync!(buffer, offset + done, n, piece.at + within);
        } catch (e) {
          throw this.contextualize(e);
        }
        noteSyncRead(this.volume, n, performance.now() - started);
        if (got !== n) {
          throw this.contextualize(new CorruptError('file data', piece.at + within, `short read: ${got} of ${n} bytes (truncated image?)`));
        }
      }
      done += n;
    }
    return done;
  }
}
