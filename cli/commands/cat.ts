import type { Command } from 'commander';
import { IsADirectoryError, InvalidArgumentError } from '../../parsers/errors.js';
import { withDisk } from '../disk.js';
import { copyToFd } from '../copy-out.js';

export function register(program: Command): void {
  program
    .command('cat')
    .description("write a file's bytes to standard output (NTFS streams: /p3/file.txt:stream)")
    .argument('<image>', 'disk image')
    .argument('<path>', 'file inside the image, e.g. /p2/home/ana/thesis.odt')
    .action(async (image: string, path: string) => {
      await withDisk(image, async (disk) => {
        const entry = await disk.stat(path);
        if (entry.stat.type === 'dir') throw new IsADirectoryError(entry.path);
        if (entry.stat.type !== 'file') throw new InvalidArgumentError(`${entry.path}: not a regular file (${entry.stat.otherKind ?? entry.stat.type})`);
        await copyToFd(disk, entry, 1);
      });
    });
}
