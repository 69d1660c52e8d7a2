/**
 * Opening the image a restore (or a bmap) reads.
 *
 * A compressed raw image (.gz/.xz/.zst/.bz2, by magic) is streamed through
 * the system decompressor: a restore reads the disk once, in ascending
 * order, so the seek index the source layer builds for random access buys
 * nothing here and costs a pass of its own (measured, 512 MiB image: bzip2
 * 339 s through the index vs ~20 s streamed; zstd 20 s and 540 MB RSS vs
 * ~6 s). Anything else, and a compressed file holding a container
 * (.qcow2.gz), goes through the source layer's openImage.
 */
import { open } from 'node:fs/promises';
import { statSync, type Stats } from 'node:fs';
import { containerFormats, openImage, type OpenProgress } from '../parsers/source/open.js';
import { Disk } from '../parsers/vfs/index.js';
import { detectCompression, streamingAvailable, type Compression } from './compression.js';
import { StreamedImageSource } from './streamed-source.js';

export interface RestoreInput {
  disk: Disk;
  /** The image file, to recognize it as a target. */
  stats: Stats;
  /** Set when the image is decompressed as a stream (no random access). */
  streamed: { compression: Compression; source: StreamedImageSource } | null;
}

export interface InputOptions {
  /** The decompressed size, when a block map states it (spares the measuring pass). */
  knownSize?: number;
  /** Stream compressed images (default) or use the source layer's random access. */
  stream?: boolean;
  /** A measuring pass is about to run. */
  onSizePass?: (compression: Compression) => void;
  /** The source layer is building a seek index. */
  onIndexProgress?: (progress: OpenProgress) => void;
}

export async function openInput(path: string, options: InputOptions = {}): Promise<RestoreInput> {
  const stats = statSync(path);
  const compression = stats.isFile() ? detectCompression(await fileHead(path)) : null;
  if (compression && options.stream !== false && streamingAvailable(compression)) {
    const streamed = await openStreamed(path, compression, stats, options);
    if (streamed) return streamed;
  }
  const opened = await openImage(path, { onProgress: options.onIndexProgress });
  return { disk: await Disk.fromImage(opened), stats, streamed: null };
}

async function openStreamed(path: string, compression: Compression, stats: Stats, options: InputOptions): Promise<RestoreInput | null> {
  const source = await StreamedImageSource.open(path, compression, options.knownSize, () => options.onSizePass?.(compression));
  // A container inside the compression (.qcow2.gz) needs random access: leave it to openImage.
  const head = Buffer.alloc(Math.min(4096, source.size));
  await source.read(head, 0, head.length, 0);
  for (const format of containerFormats) {
    if (await format.detect(head, source)) {
      await source.close();
      return null;
    }
  }
  const disk = await Disk.fromImage({ source, chain: [`${compression} (streamed)`], fileSize: stats.size, path });
  return { disk, stats, streamed: { compression, source } };
}

async function fileHead(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(16);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
