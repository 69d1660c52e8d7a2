import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fchownSync, futimesSync, lstatSync, mkdirSync, openSync, renameSync, symlinkSync, unlinkSync, chmodSync, utimesSync, lchownSync, lutimesSync, chownSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ExistsError, IsADirectoryError, NotADirectoryError, NotFoundError, oneLine } from '../../parsers/errors.js';
import { walk, nsToDate, type Disk, type Entry } from '../../parsers/vfs/index.js';
import { withDisk } from '../disk.js';
import { copyToFd } from '../copy-out.js';
import { exitCodeFor, warn } from '../exit.js';
import { byteProgress, type Progress } from '../progress.js';

interface CpOptions {
  recursive?: boolean;
  force?: boolean;
  all?: boolean;
}

export function register(program: Command): void {
  program
    .command('cp')
    .description('copy a file or (with -R) a whole tree out of the image, keeping modes, times, symlinks (and owners as root)')
    .argument('<image>', 'disk image')
    .argument('<path>', 'file or directory inside the image; /p2 copies a whole volume')
    .argument('<dest>', 'destination on this machine (an existing directory receives the item by name)')
    .option('-R, --recursive', 'copy directories recursively')
    .option('-f, --force', 'overwrite existing destination files')
    .option('-a, --all', 'include hidden filesystem metafiles (NTFS $MFT ...)')
    .action(async (image: string, path: string, dest: string, opts: CpOptions) => {
      const code = await withDisk(image, (disk) => copy(disk, path, dest, opts));
      if (code) process.exitCode = code;
    });
}

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

async function copy(disk: Disk, path: string, dest: string, opts: CpOptions): Promise<number> {
  // Like cp: without -R a symlink argument is followed; with -R it is copied as a link.
  const src = opts.recursive ? await disk.lstat(path) : await disk.stat(path);
  if (src.kind === 'volume' && !src.fs) await disk.filesystem(src.volume!); // throws why it cannot be read
  if (src.stat.type === 'dir' && !opts.recursive) throw new IsADirectoryError(`${src.path} (use -R to copy a directory)`);

  const destStat = lstatOrNull(dest);
  let target = dest;
  if (destStat?.isDirectory() && src.name) target = join(dest, src.name);
  else if (!destStat) {
    const parent = lstatOrNull(dirname(dest));
    if (!parent) throw new NotFoundError(dirname(dest), 'destination folder does not exist');
    if (!parent.isDirectory()) throw new NotADirectoryError(dirname(dest));
  }

  let total = src.stat.type === 'file' ? src.stat.size : 0;
  if (src.stat.type === 'dir' && process.stderr.isTTY) {
    for await (const e of walk(disk, src, { all: opts.all, onError: () => {} })) if (e.stat.type === 'file') total += e.stat.size;
  }
  const progress = byteProgress(total, 'copying');
  const state: CopyState = { disk, opts, progress, copied: 0, failure: 0, seen: new Set() };
  try {
    await copyEntry(state, src, target);
  } finally {
    progress.stop();
  }
  return state.failure;
}

interface CopyState {
  disk: Disk;
  opts: CpOptions;
  progress: Progress;
  copied: number;
  failure: number;
  seen: Set<string>;
}

async function copyEntry(state: CopyState, src: Entry, target: string): Promise<void> {
  try {
    switch (src.stat.type) {
      case 'file':
        return await copyFile(state, src, target);
      case 'symlink':
        return await copySymlink(state, src, target);
      case 'dir':
        return await copyDir(state, src, target);
      default:
        warn(`${src.path}: skipped, ${src.stat.otherKind ?? 'not a regular file'}`);
    }
  } catch (e) {
    // One bad file must not stop a tree copy; report it and carry on. A single
    // file copy (the top-level call) fails as a whole.
    if (!state.opts.recursive || (e as { fatal?: boolean }).fatal) throw e;
    process.stderr.write(`loopless: ${oneLine(e)}\n`);
    if (!state.failure) state.failure = exitCodeFor(e) || 1;
  }
}

function checkOverwrite(state: CopyState, target: string): void {
  const existing = lstatOrNull(target);
  if (!existing) return;
  if (!state.opts.force) throw new ExistsError(target);
  if (existing.isDirectory()) throw new IsADirectoryError(`${target} (destination is a directory; not replaced)`);
}

function tempName(target: string): string {
  return join(dirname(target), `.${basename(target)}.loopless-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}

async function copyFile(state: CopyState, src: Entry, target: string): Promise<void> {
  checkOverwrite(state, target);
  const tmp = tempName(target);
  const fd = openSync(tmp, 'wx', 0o600);
  let ok = false;
  try {
    const base = state.copied;
    await copyToFd(state.disk, src, fd, (n) => state.progress.update(base + n));
    state.copied += src.stat.size;
    if (asRoot) fchownSync(fd, src.stat.uid, src.stat.gid);
    fchmodSync(fd, src.stat.mode & 0o7777);
    futimesSync(fd, nsToDate(src.stat.atimeNs), nsToDate(src.stat.mtimeNs));
    ok = true;
  } finally {
    closeSync(fd);
    if (!ok) safeUnlink(tmp);
  }
  renameSync(tmp, target);
}

async function copySymlink(state: CopyState, src: Entry, target: string): Promise<void> {
  checkOverwrite(state, target);
  const linkTarget = await state.disk.readlink(src);
  const tmp = tempName(target);
  symlinkSync(linkTarget, tmp);
  try {
    if (asRoot) lchownSync(tmp, src.stat.uid, src.stat.gid);
    lutimesSync(tmp, nsToDate(src.stat.atimeNs), nsToDate(src.stat.mtimeNs));
    renameSync(tmp, target);
  } catch (e) {
    safeUnlink(tmp);
    throw e;
  }
}

async function copyDir(state: CopyState, src: Entry, target: string): Promise<void> {
  const key = `${src.volume}:${src.stat.ino}`;
  if (src.kind !== 'root' && state.seen.has(key)) {
    warn(`${src.path}: directory already copied (a loop in the directory tree); skipped`);
    return;
  }
  state.seen.add(key);
  const existing = lstatOrNull(target);
  if (existing && !existing.isDirectory()) {
    throw Object.assign(new ExistsError(target), { message: `${target}: exists and is not a directory` });
  }
  if (!existing) mkdirSync(target, { mode: 0o700 });
  const children = await state.disk.readdir(src, { all: state.opts.all });
  for (const child of children) await copyEntry(state, child, join(target, child.name));
  // Modes and times last: a read-only directory must still receive its children,
  // and writing children would bump the mtime.
  if (src.kind === 'root') return;
  if (asRoot) chownSync(target, src.stat.uid, src.stat.gid);
  chmodSync(target, src.stat.mode & 0o7777);
  utimesSync(target, nsToDate(src.stat.atimeNs), nsToDate(src.stat.mtimeNs));
}

function safeUnlink(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    // already gone
  }
}
