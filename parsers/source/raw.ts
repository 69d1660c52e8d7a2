import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { sep } from 'node:path';
import { constants, readSync } from 'node:fs';
import { ImageIOError, NotFoundError } from '../errors.js';
import type { ByteSource } from './types.js';

/**
 * A raw image file read with positional reads. Opened O_RDONLY: the image is
 * never written, and never loaded whole. Works for regular files and block
 * devices (size found by seeking to the end).
 */
export class RawFileSource implements ByteSource {
  readonly size: number;
  readonly description: string;
  private handle: FileHandle | null;

  private constructor(handle: FileHandle, size: number, path: string) {
    this.handle = handle;
    this.size = size;
    this.description = `image ${path}`;
  }

  /**
   * `noFollow` opens with O_NOFOLLOW: a symlink in the last path component is
   * refused instead of followed (the web server, whose folder listing already
   * skipped symlinks, must not follow one swapped in after that check).
   * `confineTo` (a resolved folder) refuses a file that, once open, is not
   * inside that folder: O_NOFOLLOW guards only the last path component, and a
   * subfolder swapped for a symlink, or a backing file named by absolute path,
   * could otherwise lead anywhere on the host.
   */
  static async open(path: string, options: { noFollow?: boolean; confineTo?: string } = {}): Promise<RawFileSource> {
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_RDONLY | (options.noFollow ? constants.O_NOFOLLOW : 0));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') throw new NotFoundError(path, 'no such image file');
      if (err.code === 'ELOOP' && options.noFollow) throw new NotFoundError(path, 'is a symbolic link, not an image file (not followed)');
      if (err.code === 'EACCES' || err.code === 'EPERM') throw new ImageIOError(`${path}: permission denied`);
      if (err.code === 'EISDIR') throw new ImageIOError(`${path}: is a directory, not an image file`);
      throw new ImageIOError(`${path}: cannot open (${err.code ?? err.message})`);
    }
    try {
      if (options.confineTo !== undefined && !isInside(await openedPath(handle, path), options.confineTo)) {
        throw new OutsideFolderError(path);
      }
      const st = await handle.stat();
      let size = st.size;
      if (st.isBlockDevice()) size = await blockDeviceSize(handle);
      else if (!st.isFile()) throw new ImageIOError(`${path}: not a regular file or block device`);
      return new RawFileSource(handle, size, path);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** The open descriptor (null once closed): a restore's verify threads pread the image through it. */
  get fd(): number | null {
    return this.handle?.fd ?? null;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (!this.handle) throw new ImageIOError(`${this.description}: read after close`);
    if (position >= this.size || length <= 0) return 0;
    const want = Math.min(length, this.size - position);
    let done = 0;
    // A single pread may return short on huge requests; loop until done or EOF.
    while (done < want) {
      const { bytesRead } = await this.handle.read(buffer, offset + done, want - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  readonly readSync = (buffer: Uint8Array, offset: number, length: number, position: number): number => {
    if (!this.handle) throw new ImageIOError(`${this.description}: read after close`);
    if (position >= this.size || length <= 0) return 0;
    const want = Math.min(length, this.size - position);
    let done = 0;
    while (done < want) {
      const n = readSync(this.handle.fd, buffer, offset + done, want - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  };

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h) await h.close();
  }
}

/** Block devices report st_size 0; find the size by reading at growing offsets is slow, so binary search with 1-byte reads. */
async function blockDeviceSize(handle: FileHandle): Promise<number> {
  const probe = Buffer.alloc(1);
  let lo = 0;
  let hi = 1;
  while ((await handle.read(probe, 0, 1, hi)).bytesRead === 1) {
    lo = hi;
    hi *= 2;
    if (hi > 2 ** 53) break;
  }
  // Invariant: byte lo readable (or lo = 0), byte hi not readable.
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if ((await handle.read(probe, 0, 1, mid)).bytesRead === 1) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** A file refused by RawFileSource.open's `confineTo`: it lies outside the folder it may be read from. */
export class OutsideFolderError extends NotFoundError {
  constructor(path: string) {
    super(path, 'lies outside the folder images may be read from (not opened)');
  }
}

/** Where an open file really is: the kernel's name for the descriptor (no race with renames of the path), else realpath. */
async function openedPath(handle: FileHandle, path: string): Promise<string> {
  try {
    return await readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    return realpath(path);
  }
}

function isInside(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}
