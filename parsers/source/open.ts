import { realpath } from 'node:fs/promises';
import { LoopError, UnsupportedError } from '../errors.js';
import { OutsideFolderError, RawFileSource } from './raw.js';
import type { ByteSource, OpenedImage } from './types.js';
import { allContainerFormats } from './containers/index.js';

/** Progress of long work done while opening (building a seek index on first open). */
export interface OpenProgress {
  /** What is being done, e.g. "indexing gzip". */
  phase: string;
  /** Bytes of the (compressed) input processed so far, out of `total`. */
  done: number;
  total: number;
}

export interface OpenOptions {
  /** Called while a container builds a seek index (gzip, bzip2, zstd without a seek table). */
  onProgress?: (progress: OpenProgress) => void;
  /** Seek-index cache; default $LOOPLESS_CACHE_DIR, else $XDG_CACHE_HOME/loopless, else ~/.cache/loopless. */
  cacheDir?: string;
  /**
   * Refuse a symlink as the image file (and as any backing file) instead of
   * following it (O_NOFOLLOW on the last path component). The web server
   * sets this: its listing skips symlinks, and one swapped in afterwards must
   * not be followed.
   */
  noFollow?: boolean;
  /**
   * A resolved folder that the image and every backing file must lie in
   * (checked on the open file, so no symlink or rename race escapes it). The
   * web server sets the served folder: an image there must not lead it to
   * read other files of the host, e.g. a qcow2 naming /etc/shadow as backing.
   */
  confineTo?: string;
}

/** What a container is given besides its inner source. */
export interface OpenContext extends OpenOptions {
  /** Real paths of the images open so far down this backing chain, outermost first. */
  readonly backingChain: readonly string[];
  /**
   * Open a parent/backing image found next to this one (read-only), with loop
   * and depth checks. `format` "raw" skips probing (qcow2's backing_fmt).
   */
  openBacking(path: string, format?: string): Promise<OpenedImage>;
}

/**
 * A container format that can present the disk it holds as a ByteSource.
 * Detection is by magic bytes of the inner source, never by file name.
 */
export interface ContainerFormat {
  /** Short name shown in the chain, e.g. "qcow2", "gzip". */
  readonly name: string;
  /** Cheap check on the first bytes (at least 4096 are given when the source has them). */
  detect(head: Buffer, source: ByteSource): boolean | Promise<boolean>;
  /** Wrap `inner`; `path` is the image file (for locating parent/backing files). */
  open(inner: ByteSource, path: string, context: OpenContext): Promise<ByteSource>;
}

/** Registered container formats, probed in order. */
export const containerFormats: ContainerFormat[] = [...allContainerFormats];

const MAX_NESTING = 4;
/** Longest parent/backing chain followed (qemu allows deeper, but no real backup needs it). */
const MAX_BACKING_DEPTH = 16;

/**
 * Open an image file read-only and unwrap containers until a raw disk remains.
 * A plain raw image comes back as itself with an empty chain.
 */
export async function openImage(path: string, options: OpenOptions = {}): Promise<OpenedImage> {
  return openInChain(path, options, [], undefined);
}

async function openInChain(
  path: string,
  options: OpenOptions,
  backingChain: readonly string[],
  format: string | undefined,
): Promise<OpenedImage> {
  let raw: RawFileSource;
  try {
    raw = await RawFileSource.open(path, { noFollow: options.noFollow, confineTo: options.confineTo });
  } catch (e) {
    // For the image itself "not found" is right (a server answers 404); a backing file outside is the image's problem.
    if (e instanceof OutsideFolderError && backingChain.length > 0) {
      throw new UnsupportedError(`${backingChain[backingChain.length - 1]} names the backing file ${path}, which lies outside the folder images may be read from; not opened`);
    }
    throw e;
  }
  let real = path;
  try {
    real = await realpath(path);
    if (backingChain.includes(real)) {
      throw new LoopError(`${path}: backing chain loops back to ${real} (${[...backingChain, real].join(' -> ')})`);
    }
    if (backingChain.length >= MAX_BACKING_DEPTH) {
      throw new UnsupportedError(`${path}: backing chain deeper than ${MAX_BACKING_DEPTH} images`);
    }
  } catch (e) {
    await raw.close();
    throw e;
  }
  const chainHere = [...backingChain, real];
  const context: OpenContext = {
    ...options,
    backingChain: chainHere,
    openBacking: (backingPath, backingFormat) => openInChain(backingPath, options, chainHere, backingFormat),
  };
  let source: ByteSource = raw;
  const chain: string[] = [];
  try {
    for (let depth = 0; depth < MAX_NESTING && format !== 'raw'; depth++) {
      const head = Buffer.alloc(Math.min(4096, source.size));
      await source.read(head, 0, head.length, 0);
      let matched: ContainerFormat | undefined;
      for (const fmt of containerFormats) {
        if (await fmt.detect(head, source)) {
          matched = fmt;
          break;
        }
      }
      if (!matched) break;
      source = await matched.open(source, path, context);
      chain.push(matched.name);
    }
  } catch (e) {
    await source.close();
    if (source !== raw) await raw.close();
    throw e;
  }
  // From the open handle, not the path: the path may have been swapped since.
  const fileSize = raw.size;
  return { source, chain, fileSize, path };
}
