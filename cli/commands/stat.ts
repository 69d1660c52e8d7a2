import type { Command } from 'commander';
import { toStatJson } from '../../parsers/vfs/index.js';
import { withDisk } from '../disk.js';
import { modeString } from '../format.js';

export function register(program: Command): void {
  program
    .command('stat')
    .description('show all metadata of one path inside the image')
    .argument('<image>', 'disk image')
    .argument('<path>', 'path inside the image')
    .option('--json', 'print one JSON object')
    .option('-L, --dereference', 'follow a final symbolic link')
    .action(async (image: string, path: string, opts: { json?: boolean; dereference?: boolean }) => {
      await withDisk(
        image,
        async (disk) => {
          const entry = opts.dereference ? await disk.stat(path) : await disk.lstat(path);
          const target = entry.stat.type === 'symlink' ? await disk.readlink(entry) : undefined;
          const json = toStatJson(entry, target);
          if (opts.json) {
            process.stdout.write(JSON.stringify(json) + '\n');
            return;
          }
          const lines = [
            `  Path: ${entry.path}${target !== undefined ? ` -> ${target}` : ''}`,
            `  Type: ${entry.stat.type}${entry.stat.otherKind ? ` (${entry.stat.otherKind})` : ''}`,
            `  Size: ${entry.stat.size}  Allocated: ${entry.stat.allocatedSize}  Inode: ${entry.stat.ino}  Links: ${entry.stat.nlink}`,
            `  Mode: ${(entry.stat.mode & 0o7777).toString(8).padStart(4, '0')} (${modeString(entry.stat)})  Uid: ${entry.stat.uid}  Gid: ${entry.stat.gid}`,
            `Modify: ${json.mtime}`,
            `Access: ${json.atime}`,
            `Change: ${json.ctime}`,
            ` Birth: ${json.birthtime ?? '-'}`,
          ];
          if (entry.stat.flags?.length) lines.push(` Flags: ${entry.stat.flags.join(', ')}`);
          for (const s of entry.stat.streams ?? []) lines.push(`Stream: ${entry.path}:${s.name} (${s.size} bytes)`);
          process.stdout.write(lines.join('\n') + '\n');
        },
      );
    });
}
