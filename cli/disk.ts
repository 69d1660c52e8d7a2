import { Disk } from '../parsers/vfs/index.js';
import type { OpenProgress } from '../parsers/source/open.js';
import { warn } from './exit.js';
import { byteProgress, type Progress } from './progress.js';

/** Open an image for one command, report table warnings once, always close. */
export async function withDisk<T>(image: string, fn: (disk: Disk) => Promise<T>, options: { quiet?: boolean } = {}): Promise<T> {
  // First open of a compressed image builds a seek index: show a bar while it does.
  let bar: Progress | null = null;
  const onProgress = (p: OpenProgress) => {
    bar ??= byteProgress(p.total, p.phase);
    bar.update(p.done);
  };
  let disk: Disk;
  try {
    disk = await Disk.open(image, { onProgress });
  } finally {
    (bar as Progress | null)?.stop();
  }
  let shown = 0;
  const flush = () => {
    if (!options.quiet) for (; shown < disk.warnings.length; shown++) warn(disk.warnings[shown]);
  };
  flush(); // table warnings before any output
  try {
    return await fn(disk);
  } finally {
    flush(); // filesystem warnings found along the way
    await disk.close();
  }
}
