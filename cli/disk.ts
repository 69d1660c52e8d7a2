import { Disk } from '../parsers/vfs/index.js';
import { warn } from './exit.js';

/** Open an image for one command, report table warnings once, always close. */
export async function withDisk<T>(image: string, fn: (disk: Disk) => Promise<T>, options: { quiet?: boolean } = {}): Promise<T> {
  const disk = await Disk.open(image);
  if (!options.quiet) for (const w of disk.table.warnings) warn(w);
  try {
    return await fn(disk);
  } finally {
    await disk.close();
  }
}
