/**
 * Whole-disk restore: the image's used bytes onto a drive or a file,
 * verified. See README "Restoring a whole disk" for the user-facing rules.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { oneLine } from '../parsers/errors.js';
import { RawFileSource } from '../parsers/source/raw.js';
import { relocateGpt, type TablePatch } from '../parsers/volumes/gpt-relocate.js';
import type { Disk } from '../parsers/vfs/index.js';
import { bmapCopyRanges, parseBmap } from './bmap.js';
import { describeTarget } from './describe.js';
import { runEngine, type CopyRange, type EngineProgress } from './engine.js';
import { NotConfirmedError, RefusedError } from './errors.js';
import { openInput } from './input.js';
import { headerArea, planFromAllocation, type RestorePlan, type VolumePlan } from './plan.js';
import { READ_BACK_DESCRIPTION } from './readback.js';
import { complement, rangeEnd, subtract, totalLength, type ByteRange } from './ranges.js';
import { inspectTarget, targetConflicts, type Target } from './target.js';

const run = promisify(execFile);

export interface RestoreOptions {
  image: string;
  target: string;
  /** Overwrite without asking. */
  yes?: boolean;
  /** Read back and compare (default true). */
  verify?: boolean;
  /** A bmaptool block map to use instead of the filesystems' allocation. */
  bmap?: string;
  /** Zero (or discard-to-zero) everything the restore does not write. */
  zeroUnused?: boolean;
  /** Allow a target smaller than the image when everything written fits. */
  allowSmaller?: boolean;
  /** Stream compressed images through the system decompressor (default) rather than the source layer's seek index. */
  streamCompressed?: boolean;
  /** Ask the user to confirm overwriting; absent when nobody can be asked. */
  confirm?: (description: string) => Promise<boolean>;
  signal?: AbortSignal;
  onEvent?: (event: RestoreEvent) => void;
}

export type RestoreEvent =
  | { type: 'phase'; phase: 'measure' | 'plan' | 'zero' | 'write'; message: string }
  | ({ type: 'progress' } & EngineProgress)
  | { type: 'warning'; message: string };

export interface RestoreSummary {
  type: 'summary';
  status: 'ok' | 'interrupted';
  image: string;
  target: string;
  targetKind: Target['kind'];
  imageSize: number;
  targetSize: number;
  /** Where the list of ranges came from. */
  basis: RestorePlan['basis'];
  /** Image bytes the plan copies. */
  copied: number;
  /** Image bytes not copied (unallocated). */
  skipped: number;
  /** Bytes actually written to the target (zero runs are not written to a target that reads zeros). */
  written: number;
  /** Of those, bytes written with O_DIRECT, past the page cache (the rest: unaligned pieces, or a target that refuses O_DIRECT). */
  writtenDirect: number;
  /** Bytes read back and compared. */
  verified: number;
  readBack: string | null;
  /** Ranges that failed the first comparison and passed after a rewrite. */
  retries: ByteRange[];
  gptRelocated: boolean;
  /** How --zero-unused was done: "none", "discard" (blkdiscard -z), "truncate" (file), "write" (zeros written). */
  zeroUnused: 'none' | 'discard' | 'truncate' | 'write';
  seconds: number;
  /** Image bytes per second: what the user waits for. */
  throughput: number;
  /** Bytes written per second. */
  writeRate: number;
  streamed: { compression: string; passes: number } | null;
  volumes: VolumePlan[];
  warnings: string[];
  /** When interrupted: what the target holds now. */
  targetState?: string;
}

export async function restoreImage(o: RestoreOptions): Promise<RestoreSummary> {
  const started = process.hrtime.bigint();
  const emit = (e: RestoreEvent) => o.onEvent?.(e);
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    emit({ type: 'warning', message });
  };

  const bmap = o.bmap ? await parseBmap(await readFile(o.bmap), o.bmap) : null;
  const target = inspectTarget(o.target);
  const input = await openInput(o.image, {
    knownSize: bmap?.imageSize,
    stream: o.streamCompressed,
    onSizePass: (c) => emit({ type: 'phase', phase: 'measure', message: `${c}-compressed image: decompressing once to learn its size (give --bmap to skip this pass)` }),
  });
  const { disk } = input;
  let handle: FileHandle | null = null;
  let direct: FileHandle | null = null;
  try {
    const imageSize = disk.size;
    if (bmap && bmap.imageSize !== imageSize) {
      throw new RefusedError(`${o.bmap} describes a ${bmap.imageSize}-byte image, but ${o.image} is ${imageSize} bytes: it belongs to another image`);
    }
    const conflicts = targetConflicts(target, { path: o.image, stats: input.stats });
    if (conflicts.length) throw new RefusedError(`refusing to write to ${o.target}: ${conflicts.join('; ')}`);

    emit({ type: 'phase', phase: 'plan', message: bmap ? `using the block map ${o.bmap}` : 'reading the partition table and allocation bitmaps' });
    const plan: RestorePlan = bmap
      ? { imageSize, basis: 'bmap', copy: bmapCopyRanges(bmap), copied: 0, volumes: [] }
      : await planFromAllocation(disk);
    plan.copied = totalLength(plan.copy);
    // The table's warnings, then each filesystem's, as planning opened them.
    for (const w of disk.warnings) warn(w);
    for (const v of plan.volumes) if (v.how === 'whole' && v.fs) warn(`${v.name} (${v.fs}) is copied whole: ${v.reason}`);

    const growsFile = target.kind === 'new-file' || (target.kind === 'file' && target.size === 0);
    const targetSize = growsFile ? imageSize : target.size;
    const fitted = await fitToTarget(disk, plan, targetSize, o, warn);

    if (!o.yes && (target.kind === 'block' || (target.kind === 'file' && target.size > 0))) {
      const description = await describeTarget(target);
      if (!o.confirm) throw new NotConfirmedError(`${description}\n${o.target} holds data; pass --yes to overwrite it (no terminal to ask on)`);
      if (!(await o.confirm(`${description}\nEverything on ${o.target} will be replaced by ${o.image}.`))) {
        throw new NotConfirmedError(`${o.target}: not confirmed; nothing was written`);
      }
    }

    handle = await openTarget(target, targetSize);
    direct = await openDirect(handle);
    let knownZero = target.kind === 'new-file' || growsFile;
    let zeroUnused: RestoreSummary['zeroUnused'] = 'none';
    let zeroFill: ByteRange[] = [];
    if (o.zeroUnused && !knownZero) {
      emit({ type: 'phase', phase: 'zero', message: `zeroing what the restore does not write on ${o.target}` });
      zeroUnused = await zeroTarget(target, handle, targetSize);
      knownZero = zeroUnused !== 'write';
      if (zeroUnused === 'write') zeroFill = complement([], targetSize);
    }

    emit({ type: 'phase', phase: 'write', message: `writing ${fitted.copy.length} ranges` });
    const result = await runEngine({
      source: disk.source,
      copy: fitted.copy,
      patches: fitted.patches,
      zeroFill,
      header: headerArea(disk, fitted.copy),
      target: { path: o.target, handle, direct, size: targetSize, knownZero },
      verify: o.verify !== false,
      imageFd: !input.streamed && input.stats.isFile() && disk.source instanceof RawFileSource ? disk.source.fd : null,
      signal: o.signal,
      onProgress: (p) => emit({ type: 'progress', ...p }),
    });
    await direct?.close();
    direct = null;
    await handle.close();
    handle = null;
    if (result.completed && target.kind === 'block' && !target.device?.isPartition) await rereadPartitions(o.target, warn);

    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const summary: RestoreSummary = {
      type: 'summary',
      status: result.completed ? 'ok' : 'interrupted',
      image: o.image,
      target: o.target,
      targetKind: target.kind,
      imageSize,
      targetSize,
      basis: plan.basis,
      copied: plan.copied,
      skipped: imageSize - plan.copied,
      written: result.written,
      writtenDirect: result.writtenDirect,
      verified: result.verified,
      readBack: result.readBack ? READ_BACK_DESCRIPTION[result.readBack] : null,
      retries: result.retries,
      gptRelocated: fitted.patches.length > 0,
      zeroUnused,
      seconds,
      throughput: imageSize / seconds,
      writeRate: result.written / seconds,
      streamed: input.streamed ? { compression: input.streamed.compression, passes: input.streamed.source.passes } : null,
      volumes: plan.volumes,
      warnings,
    };
    if (!result.completed) {
      summary.targetState =
        `${o.target} is incomplete: ${result.processed} of ${result.total} bytes were written (in ascending order, up to byte ${result.reached}) and synced. ` +
        (fitted.header
          ? `Its first ${fitted.header.length} bytes (${disk.table.table === 'none' ? 'the filesystem superblock' : 'the partition table'}) were ${knownZero ? 'never written' : 'zeroed at the start'} and are only written at the end, so no system will mount or recognize it. `
          : '') +
        `Run the same command again to restore it from the start.`;
    }
    return summary;
  } finally {
    await direct?.close().catch(() => {});
    await handle?.close().catch(() => {});
    await disk.close();
  }
}

interface Fitted {
  copy: CopyRange[];
  patches: TablePatch[];
  header: ByteRange | null;
}

/**
 * Adapt the plan to the target's size: a GPT's backup moves to the target's
 * end; on a smaller target everything past its end must be free space (or
 * zeros) and the user must have said --allow-smaller.
 */
async function fitToTarget(disk: Disk, plan: RestorePlan, targetSize: number, o: RestoreOptions, warn: (m: string) => void): Promise<Fitted> {
  const imageSize = plan.imageSize;
  const gpt = disk.table.table === 'gpt' && disk.table.gpt ? disk.table.gpt : null;
  let copy = plan.copy;
  let patches: TablePatch[] = [];
  const relocation = gpt && targetSize !== imageSize ? await relocateGpt(disk.source, gpt, targetSize) : null;

  if (targetSize < imageSize) {
    // The old backup GPT is rewritten at the new end, so it does not count as data past the end.
    const oldBackup = gpt ? disk.table.metadataRanges.filter((m) => m.what.startsWith('backup GPT')) : [];
    const needed = subtract(copy, oldBackup);
    const beyond = await firstDataPast(disk, needed, targetSize);
    const sizes = `the target is ${targetSize} bytes, the image ${imageSize} bytes`;
    if (!o.allowSmaller) {
      throw new RefusedError(
        `${o.target} is smaller than the image: ${sizes}. ` +
          (beyond === null
            ? `Everything restore writes lies inside the target (past byte ${targetSize} the image holds only free space or zeros): pass --allow-smaller to restore onto it anyway.`
            : `The image holds data at byte ${beyond}, past the target's end: it does not fit.`),
      );
    }
    if (relocation?.problems.length) throw new RefusedError(`${o.target} is too small for this GPT: ${sizes}; ${relocation.problems.join('; ')}`);
    if (beyond !== null) {
      throw new RefusedError(`${o.target} is too small: ${sizes}, and the image holds data at byte ${beyond}, past the target's end`);
    }
    for (const v of disk.volumes) {
      if (v.start + v.size > targetSize) warn(`${v.name} ends at byte ${v.start + v.size}, past the end of the ${targetSize}-byte target: its data fits, but shrink the filesystem and the partition before using it`);
    }
    copy = copy
      .filter((r) => r.start < targetSize)
      .map((r) => {
        if (rangeEnd(r) <= targetSize) return r;
        warn(`range ${r.start}..${rangeEnd(r)} is cut at the target's end${r.checksum ? '; its block-map checksum cannot be checked' : ''}`);
        return { start: r.start, length: targetSize - r.start };
      });
  }
  if (relocation) {
    patches = relocation.patches;
    if (relocation.problems.length) throw new RefusedError(`cannot move the GPT to the end of ${o.target}: ${relocation.problems.join('; ')}`);
  }
  return { copy, patches, header: headerArea(disk, copy) };
}

/** The first byte at or past `end` that the plan would copy and that is not zero; null when all are zero. */
async function firstDataPast(disk: Disk, copy: ByteRange[], end: number): Promise<number | null> {
  const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
  for (const r of copy) {
    for (let pos = Math.max(r.start, end); pos < rangeEnd(r); ) {
      const n = await disk.source.read(buffer, 0, Math.min(buffer.length, rangeEnd(r) - pos), pos);
      if (n <= 0) break;
      const at = buffer.subarray(0, n).findIndex((b) => b !== 0);
      if (at >= 0) return pos + at;
      pos += n;
    }
  }
  return null;
}

async function openTarget(target: Target, size: number): Promise<FileHandle> {
  if (target.kind === 'block') {
    try {
      // O_EXCL on a block device: the kernel refuses while anything has it mounted or claimed, and keeps others from claiming it meanwhile.
      return await open(target.path, constants.O_WRONLY | constants.O_EXCL);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EBUSY') {
        throw new RefusedError(`${target.path} is busy: the kernel has it in use (mounted, part of RAID/LVM, or opened exclusively by another program)`);
      }
      throw e;
    }
  }
  // A new file: created sparse, sized with ftruncate; restore writes only data.
  const handle = await open(target.path, target.kind === 'new-file' ? 'wx' : 'r+', 0o644);
  if (target.kind === 'new-file' || target.size === 0) await handle.truncate(size);
  return handle;
}

/**
 * The target opened a second time, with O_DIRECT, for the engine's aligned
 * writes; null where the filesystem refuses it (ramfs: EINVAL). Reopened
 * through /proc/self/fd, so it is the very file `handle` holds even if the
 * path was replaced meanwhile; a block device is already claimed with
 * O_EXCL by this process, and this open (without O_EXCL) shares it.
 */
async function openDirect(handle: FileHandle): Promise<FileHandle | null> {
  try {
    return await open(`/proc/self/fd/${handle.fd}`, constants.O_WRONLY | constants.O_DIRECT);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EINVAL') return null;
    throw e;
  }
}

/**
 * --zero-unused. A file: truncate to nothing and back, one hole. A drive
 * that zeroes ranges itself (write_zeroes_max_bytes > 0: NVMe/SCSI write
 * zeroes, unmap that reads back zeros, loop devices): `blkdiscard -z` over
 * the whole device, which issues BLKZEROOUT (the ioctl Node cannot call).
 * Anything else: the engine writes zeros over every range it skips.
 */
async function zeroTarget(target: Target, handle: FileHandle, size: number): Promise<RestoreSummary['zeroUnused']> {
  if (target.kind !== 'block') {
    await handle.truncate(0);
    await handle.truncate(size);
    return 'truncate';
  }
  if ((target.device?.writeZeroesMaxBytes ?? 0) > 0) {
    try {
      await run('blkdiscard', ['--force', '--zeroout', target.path]);
      return 'discard';
    } catch {
      // fall through: write the zeros ourselves
    }
  }
  return 'write';
}

/**
 * Tell the kernel about the new partitions. `partx --update` parses the
 * table in userspace and adds/removes/resizes partitions with BLKPG, so it
 * works even on kernels built without partition-table parsers (where
 * BLKRRPART, `blockdev --rereadpt`, silently drops them all).
 */
async function rereadPartitions(path: string, warn: (m: string) => void): Promise<void> {
  try {
    await run('partx', ['--update', path]);
    return;
  } catch (e) {
    try {
      await run('blockdev', ['--rereadpt', path]);
    } catch {
      const msg = oneLine((e as { stderr?: string }).stderr || e);
      warn(`the kernel did not take the new partition table of ${path} (${msg}); run \`partx -u ${path}\` or re-plug the drive`);
    }
  }
}
