import { Disk } from '../parsers/vfs/index.js';
import { warn } from './exit.js';

/** Open an image for one command, report table warnings once, always close. */
export async function withDisk<T>(image: string, fn: (disk: Disk) => Promise<T>, options: { quiet?: boolean } = {}): Promise<T> {
  const disk = await Disk.open(image);
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
