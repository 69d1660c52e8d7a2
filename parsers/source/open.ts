import { stat } from 'node:fs/promises';
import { RawFileSource } from './raw.js';
import type { ByteSource, OpenedImage } from './types.js';

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
  open(inner: ByteSource, path: string): Promise<ByteSource>;
}

/** Registered container formats, probed in order. The containers issue fills this. */
export const containerFormats: ContainerFormat[] = [];

const MAX_NESTING = 4;

/**
 * Open an image file read-only and unwrap containers until a raw disk remains.
 * A plain raw image comes back as itself with an empty chain.
 */
export async function openImage(path: string): Promise<OpenedImage> {
  const raw = await RawFileSource.open(path);
  let source: ByteSource = raw;
  const chain: string[] = [];
  try {
    for (let depth = 0; depth < MAX_NESTING; depth++) {
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
      source = await matched.open(source, path);
      chain.push(matched.name);
    }
  } catch (e) {
    await source.close();
    if (source !== raw) await raw.close();
    throw e;
  }
  const fileSize = (await stat(path)).size || raw.size;
  return { source, chain, fileSize, path };
}
