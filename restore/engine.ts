/**
 * The write loop of a restore: copy the planned ranges of the image to the
 * same offsets of the target, apply table patches, hash everything written,
 * read it back and compare.
 *
 * Order on the target:
 *  1. On a target that may hold old data, the first bytes of the image's
 *     layout (partition table / filesystem superblock: the "header") and the
 *     target's last 4 KiB (an old backup GPT) are zeroed and synced first.
 *  2. Everything else, in ascending order, in batches; each batch is synced
 *     and read back while the next one is written.
 *  3. The header last, synced and read back.
 * So until the very end the target holds no partition table: an interrupted
 * restore leaves a drive nothing will mount, never a half-restored one that
 * looks whole.
 */
import { createHash } from 'node:crypto';
import { fstatSync, type BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { ByteSource } from '../parsers/source/types.js';
import type { TablePatch } from '../parsers/volumes/gpt-relocate.js';
import { alignedBuffer, DIRECT_ALIGN, isPageAligned } from './aligned.js';
import { VerifyError } from './errors.js';
import { testHooks } from './hooks.js';
import { normalize, rangeEnd, subtract, totalLength, type ByteRange } from './ranges.js';
import type { ReadBackMethod } from './readback.js';
import { Verifier, type VerifyItem } from './verify.js';

export interface CopyRange extends ByteRange {
  /** A block map's checksum of the image bytes of exactly this range. */
  checksum?: { algorithm: string; hex: string };
}

export interface EngineJob {
  source: ByteSource;
  /** Image ranges to copy to the same offsets: sorted, disjoint. */
  copy: CopyRange[];
  /** Bytes replacing the image's (or added beyond it): the relocated GPT. */
  patches: TablePatch[];
  /** Target ranges to fill with zeros (--zero-unused without a device-side zeroing). */
  zeroFill: ByteRange[];
  /** The partition table / superblock area, written last. */
  header: ByteRange | null;
  target: {
    path: string;
    handle: FileHandle;
    /**
     * The target opened again with O_DIRECT, or null where that is refused
     * (ramfs): aligned pieces are written through it. Past the page cache,
     * the writes cost no copy and no page-cache memory (a 4 GiB restore
     * otherwise fills 4 GiB of it with data nothing reads again), and they
     * reach the device at its own pace instead of in writeback bursts.
     */
    direct: FileHandle | null;
    size: number;
    knownZero: boolean;
  };
  verify: boolean;
  /**
   * Set when the source is a plain raw image file (offsets map 1:1): its open
   * descriptor. Verification then compares the target with the image's bytes
   * read again instead of hashing what was written.
   */
  imageFd?: number | null;
  signal?: AbortSignal;
  onProgress?(p: EngineProgress): void;
}

export interface EngineProgress {
  phase: 'write' | 'verify';
  /** Bytes of the plan processed (written, or skipped as zeros on a zeroed target). */
  written: number;
  verified: number;
  /** Bytes the plan writes (and, with verification, reads back). */
  total: number;
}

export interface EngineResult {
  completed: boolean;
  /** Plan bytes processed so far (at interruption: how far the restore got). */
  processed: number;
  total: number;
  /** End of the last piece written (the target is written in ascending order). */
  reached: number;
  /** Bytes actually written (zero runs are not written to a target known to read zeros). */
  written: number;
  /** Of those, bytes written with O_DIRECT (past the page cache). */
  writtenDirect: number;
  verified: number;
  headerWritten: boolean;
  retries: { start: number; length: number }[];
  readBack: ReadBackMethod | null;
}

/**
 * Largest piece read, hashed and written at once. 1 MiB, not dd's 4 MiB: the
 * buffer then stays in the CPU cache between the read, the hash and the
 * write (measured: a 1 MiB copy loop runs ~1.7x faster than a 4 MiB one).
 */
export const PIECE = 1024 * 1024;
/**
 * Bytes written between two syncs; each batch is read back while the next is
 * written. Measured with O_DIRECT writes (4 GiB image 10% used): 16, 64 and
 * 256 MiB batches took the same time within noise; the disk's read and write
 * bandwidth is shared, so the read-back costs what it reads whatever the batch.
 * Pieces are written one at a time: 4 in flight measured the same here
 * (1.6-2.1 s for 4 GiB either way, the disk's own speed).
 */
const BATCH = 256 * 1024 * 1024;
/** Granularity of zero detection on a target that already reads zeros. */
const ZERO_WINDOW = 64 * 1024;
const TAIL_WIPE = 4096;

type PieceKind = 'image' | 'patch' | 'zeros';

interface Piece {
  start: number;
  length: number;
  kind: PieceKind;
  /** Index into job.copy for image pieces. */
  copyIndex: number;
  /** Part of the header: produced in order (block map hashes run in order), written last. */
  deferred: boolean;
}

interface Written {
  piece: Piece;
  /** What the read-back compares with (sha256 of what was written, or 'image' / 'zeros'); null without verification. */
  expect: VerifyItem['expect'] | null;
}

export async function runEngine(job: EngineJob): Promise<EngineResult> {
  return new Engine(job).run();
}

class Engine {
  private readonly pieces: Piece[];
  /** Header pieces with their bytes, held until the end. */
  private readonly held: { piece: Piece; data: Buffer }[] = [];
  private readonly total: number;
  private processed = 0;
  private reached = 0;
  private written = 0;
  private writtenDirect = 0;
  private verified = 0;
  private readonly retries: { start: number; length: number }[] = [];
  private verifier: Verifier | null = null;
  private readonly pool: Buffer[] = [];
  /** Page-aligned, so O_DIRECT takes it (filled: without wasm the buffer comes from allocUnsafe). */
  private readonly zeroBuffer = alignedBuffer(PIECE).fill(0);
  /** Cleared when the target refuses an O_DIRECT write: everything then goes through the page cache. */
  private directWrites: boolean;
  /** Running hash of the image bytes of each checksummed copy range. */
  private readonly rangeHashes = new Map<number, ReturnType<typeof createHash>>();
  /** The image file's identity at the start, when verification compares against it. */
  private readonly imageStat: BigIntStats | null;

  constructor(private readonly job: EngineJob) {
    this.pieces = planPieces(job);
    this.total = this.pieces.reduce((n, p) => n + p.length, 0);
    this.imageStat = job.verify && job.imageFd != null ? fstatSync(job.imageFd, { bigint: true }) : null;
    this.directWrites = job.target.direct !== null;
  }

  async run(): Promise<EngineResult> {
    const { job } = this;
    if (job.verify) this.verifier = new Verifier(job.target.path, PIECE, this.imageStat ? job.imageFd! : null);
    try {
      if (!job.target.knownZero) await this.wipeHeader();
      const completed = await this.writeBody();
      let headerWritten = false;
      if (completed) {
        await this.writeHeader();
        headerWritten = true;
      } else {
        await job.target.handle.datasync();
      }
      return {
        completed,
        processed: this.processed,
        total: this.total,
        reached: this.reached,
        written: this.written,
        writtenDirect: this.writtenDirect,
        verified: this.verified,
        headerWritten,
        retries: this.retries,
        readBack: this.verifier?.method ?? null,
      };
    } finally {
      await this.verifier?.close();
    }
  }

  private async wipeHeader(): Promise<void> {
    const { handle, size } = this.job.target;
    const header = this.job.header;
    if (header) await writeFully(handle, Buffer.alloc(header.length), header.start);
    if (size > TAIL_WIPE) await writeFully(handle, Buffer.alloc(TAIL_WIPE), size - TAIL_WIPE);
    await handle.datasync();
  }

  /** Steps 2: everything but the header. False when interrupted. */
  private async writeBody(): Promise<boolean> {
    const { job } = this;
    let batch: Written[] = [];
    let batchBytes = 0;
    // Two chains: syncs one after another, and read-backs one after another,
    // each after its own sync. Batch n+1 is synced while batch n is read back.
    let synced: Promise<void> = Promise.resolve();
    let pendingCheck: Promise<void> = Promise.resolve();
    const check = (items: Written[]) => {
      const sync = synced.then(() => job.target.handle.datasync());
      synced = sync;
      const previous = pendingCheck;
      pendingCheck = (async () => {
        await sync;
        await previous;
        await testHooks.beforeVerify?.(job.target.path, items.map((w) => ({ start: w.piece.start, length: w.piece.length })));
        if (job.verify) await this.verifyBatch(items);
      })();
      // Surface failures at the next await of pendingCheck, not as unhandled rejections.
      sync.catch(() => {});
      pendingCheck.catch(() => {});
    };

    // Read one piece ahead while the current one is written.
    const produceAhead = (i: number) => {
      if (i >= this.pieces.length) return null;
      const p = this.produce(this.pieces[i]);
      p.catch(() => {}); // awaited below; a failure must not also surface as unhandled
      return p;
    };
    let next = produceAhead(0);
    for (let i = 0; i < this.pieces.length; i++) {
      const data = await next!;
      if (job.signal?.aborted) {
        this.release(data);
        await pendingCheck;
        return false;
      }
      next = produceAhead(i + 1);
      const piece = this.pieces[i];
      if (piece.deferred) {
        this.held.push({ piece, data: Buffer.from(data) });
        this.release(data);
        continue;
      }
      const expect = await this.writePiece(piece, data);
      this.release(data);
      batch.push({ piece, expect });
      batchBytes += piece.length;
      this.report('write');
      if (job.verify && batchBytes >= BATCH) {
        check(batch);
        batch = [];
        batchBytes = 0;
      }
    }
    if (batch.length) check(batch);
    else check([]);
    await pendingCheck;
    return true;
  }

  /** Step 3. */
  private async writeHeader(): Promise<void> {
    const items: Written[] = [];
    for (const { piece, data } of this.held) items.push({ piece, expect: await this.writePiece(piece, data) });
    await this.job.target.handle.datasync();
    await testHooks.beforeVerify?.(this.job.target.path, items.map((w) => ({ start: w.piece.start, length: w.piece.length })));
    if (this.job.verify) await this.verifyBatch(items);
    this.report('write');
  }

  /** The bytes a piece puts on the target: image data (checked against a block map), patches over it, or zeros. */
  private async produce(piece: Piece, checkBlockMap = true): Promise<Buffer> {
    const { job } = this;
    if (piece.kind === 'zeros') return this.zeroBuffer.subarray(0, piece.length);
    const buffer = this.take(piece.length);
    if (piece.kind === 'image') {
      const n = await job.source.read(buffer, 0, piece.length, piece.start);
      if (n !== piece.length) throw new VerifyError(`image ended early: ${n} of ${piece.length} bytes at byte ${piece.start}`, piece);
      if (checkBlockMap) this.checkBlockMap(piece, buffer);
    } else {
      buffer.fill(0);
    }
    for (const patch of job.patches) {
      const from = Math.max(patch.start, piece.start);
      const to = Math.min(patch.start + patch.data.length, piece.start + piece.length);
      if (to > from) patch.data.copy(buffer, from - piece.start, from - patch.start, to - patch.start);
    }
    return buffer;
  }

  private checkBlockMap(piece: Piece, data: Buffer): void {
    const range = this.job.copy[piece.copyIndex];
    if (!range.checksum) return;
    let hash = this.rangeHashes.get(piece.copyIndex);
    if (!hash || piece.start === range.start) {
      hash = createHash(range.checksum.algorithm);
      this.rangeHashes.set(piece.copyIndex, hash);
    }
    hash.update(data);
    if (piece.start + piece.length === rangeEnd(range)) {
      this.rangeHashes.delete(piece.copyIndex);
      const got = hash.digest('hex');
      if (got !== range.checksum.hex.toLowerCase()) {
        throw new VerifyError(
          `image bytes ${range.start}..${rangeEnd(range)} do not match the block map's ${range.checksum.algorithm} (${got}, expected ${range.checksum.hex}): the image is damaged or the bmap belongs to another image`,
          range,
        );
      }
    }
  }

  /**
   * What the read-back compares a piece with: image bytes not covered by a
   * patch are compared with the image file itself and zero fills with zeros,
   * so neither is hashed; anything else (patched bytes, a source that cannot
   * be read again: a decompressed stream, a container) by its sha256.
   */
  private expectation(piece: Piece): 'image' | 'zeros' | null {
    if (piece.kind === 'zeros') return 'zeros';
    if (piece.kind !== 'image' || !this.imageStat) return null;
    const end = piece.start + piece.length;
    for (const patch of this.job.patches) if (patch.start < end && patch.start + patch.data.length > piece.start) return null;
    return 'image';
  }

  /** Fails when the image file was modified since the restore began (compared against it, the target would follow it). */
  private checkImageUnchanged(range: ByteRange): void {
    if (!this.imageStat) return;
    const now = fstatSync(this.job.imageFd!, { bigint: true });
    const then = this.imageStat;
    if (now.size !== then.size || now.mtimeNs !== then.mtimeNs || now.ctimeNs !== then.ctimeNs) {
      throw new VerifyError(`the image changed while it was being restored (its size or modification time changed; bytes ${range.start}..${rangeEnd(range)} read back differently)`, range);
    }
  }

  private async writePiece(piece: Piece, data: Buffer): Promise<VerifyItem['expect'] | null> {
    const { handle, knownZero } = this.job.target;
    const runs = knownZero ? nonZeroRuns(data, piece.start) : [{ start: piece.start, length: piece.length }];
    const writing = (async () => {
      for (const run of runs) await this.writeRun(data.subarray(run.start - piece.start, rangeEnd(run) - piece.start), run.start);
    })();
    // Hash while the write is in flight (it only reads the buffer), when there is nothing to compare with.
    const expect = this.job.verify ? (this.expectation(piece) ?? createHash('sha256').update(data).digest()) : null;
    await writing;
    this.written += totalLength(runs);
    this.processed += piece.length;
    this.reached = Math.max(this.reached, piece.start + piece.length);
    await testHooks.afterWrite?.(this.job.target.path, { start: piece.start, length: piece.length });
    return expect;
  }

  /**
   * Through O_DIRECT when the bytes, their offset and their length allow it,
   * else through the page cache (the image's unaligned tail, held header
   * copies). The two never share a page: a direct write covers whole aligned
   * 4 KiB blocks only.
   */
  private async writeRun(bytes: Buffer, position: number): Promise<void> {
    const { direct, handle } = this.job.target;
    if (direct && this.directWrites && position % DIRECT_ALIGN === 0 && bytes.length % DIRECT_ALIGN === 0 && isPageAligned(bytes)) {
      try {
        await writeFully(direct, bytes, position);
        this.writtenDirect += bytes.length;
        return;
      } catch (e) {
        // Some filesystems accept O_DIRECT at open and refuse it at write time (some FUSE ones), or the device's block is larger than 4 KiB.
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
        this.directWrites = false;
      }
    }
    await writeFully(handle, bytes, position);
  }

  private async verifyBatch(items: Written[]): Promise<void> {
    const verifier = this.verifier!;
    const toCheck = items.map((w) => ({ start: w.piece.start, length: w.piece.length, expect: w.expect! }));
    const { mismatches } = await verifier.check(toCheck, (bytes) => {
      this.verified += bytes;
      this.report('verify');
    });
    if (!mismatches.length) return;
    // Retry once: write each differing piece again, sync, read it back again
    // (against the sha256 of what is rewritten).
    const again: Written[] = mismatches.map((i) => items[i]);
    const digests: Buffer[] = [];
    for (const item of again) {
      const { piece } = item;
      this.retries.push({ start: piece.start, length: piece.length });
      // Compared with the image itself, a difference may also mean the image changed.
      if (item.expect === 'image') this.checkImageUnchanged(piece);
      const data = await this.produce(piece, false);
      const digest = createHash('sha256').update(data).digest();
      if (item.expect instanceof Uint8Array && !digest.equals(item.expect)) {
        throw new VerifyError(`the image changed while it was being restored (bytes ${piece.start}..${rangeEnd(piece)} read differently twice)`, piece);
      }
      digests.push(digest);
      // Through the page cache on purpose: the O_DIRECT read-back then proves
      // the device holds it, not the cache (a retry is rare; its speed does not matter).
      await writeFully(this.job.target.handle, data, piece.start);
      this.release(data);
    }
    await this.job.target.handle.datasync();
    await testHooks.beforeVerify?.(this.job.target.path, again.map((w) => ({ start: w.piece.start, length: w.piece.length })));
    const second = await verifier.check(
      again.map((w, i) => ({ start: w.piece.start, length: w.piece.length, expect: digests[i] })),
      (bytes) => {
        this.verified += bytes;
        this.report('verify');
      },
    );
    if (second.mismatches.length) {
      const { piece } = again[second.mismatches[0]];
      const how = verifier.method === 'direct' ? 'with O_DIRECT' : 'after dropping the page cache';
      throw new VerifyError(
        `verification failed: target bytes ${piece.start}..${rangeEnd(piece)} (${piece.length} bytes) differ from the image, also after rewriting them (read back ${how}); the target may be failing`,
        piece,
      );
    }
  }

  private take(length: number): Buffer {
    const buffer = this.pool.pop() ?? alignedBuffer(PIECE);
    return buffer.subarray(0, length);
  }

  private release(data: Buffer): void {
    if (data.buffer !== this.zeroBuffer.buffer && data.buffer.byteLength === PIECE && this.pool.length < 4) {
      this.pool.push(Buffer.from(data.buffer, 0, PIECE));
    }
  }

  private report(phase: EngineProgress['phase']): void {
    this.job.onProgress?.({ phase, written: this.processed, verified: this.verified, total: this.total });
  }
}

/**
 * Cut the plan into pieces of at most PIECE bytes, aligned to PIECE
 * boundaries of the disk, never spanning two copy ranges (each may carry its
 * own checksum) nor the end of the header.
 */
function planPieces(job: EngineJob): Piece[] {
  const imageRanges = job.copy;
  const patchRanges = normalize(job.patches.map((p) => ({ start: p.start, length: p.data.length })));
  const patchOnly = subtract(patchRanges, imageRanges);
  const zeros = subtract(job.zeroFill, normalize([...imageRanges, ...patchRanges]));
  const spans: { range: ByteRange; kind: PieceKind; copyIndex: number }[] = [
    ...imageRanges.map((range, copyIndex) => ({ range, kind: 'image' as const, copyIndex })),
    ...patchOnly.map((range) => ({ range, kind: 'patch' as const, copyIndex: -1 })),
    ...zeros.map((range) => ({ range, kind: 'zeros' as const, copyIndex: -1 })),
  ].sort((a, b) => a.range.start - b.range.start);
  const cuts = job.header ? [rangeEnd(job.header)] : [];
  const pieces: Piece[] = [];
  for (const { range, kind, copyIndex } of spans) {
    let pos = range.start;
    const end = rangeEnd(range);
    while (pos < end) {
      let next = Math.min(end, (Math.floor(pos / PIECE) + 1) * PIECE);
      for (const c of cuts) if (c > pos && c < next) next = c;
      const deferred = job.header !== null && kind !== 'zeros' && pos < rangeEnd(job.header);
      pieces.push({ start: pos, length: next - pos, kind, copyIndex, deferred });
      pos = next;
    }
  }
  return pieces;
}

/** Runs of a piece that hold a non-zero byte, in ZERO_WINDOW steps aligned to the disk. */
function nonZeroRuns(data: Buffer, start: number): ByteRange[] {
  const runs: ByteRange[] = [];
  let pos = start;
  const end = start + data.length;
  while (pos < end) {
    const next = Math.min(end, (Math.floor(pos / ZERO_WINDOW) + 1) * ZERO_WINDOW);
    if (!isZero(data.subarray(pos - start, next - start))) {
      const last = runs[runs.length - 1];
      if (last && rangeEnd(last) === pos) last.length += next - pos;
      else runs.push({ start: pos, length: next - pos });
    }
    pos = next;
  }
  return runs;
}

const ZEROS = Buffer.alloc(ZERO_WINDOW);

function isZero(data: Buffer): boolean {
  return data.equals(ZEROS.subarray(0, data.length));
}

async function writeFully(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

export function plannedBytes(copy: ByteRange[]): number {
  return totalLength(copy);
}
