import type { Command } from 'commander';
import { oneLine } from '../../parsers/errors.js';
import { walk, toLsJson, type Disk, type Entry } from '../../parsers/vfs/index.js';
import { withDisk } from '../disk.js';
import { exitCodeFor } from '../exit.js';
import { modeString, safeName, shortTime, table } from '../format.js';
import { writeAllSync } from '../write.js';

interface LsOptions {
  recursive?: boolean;
  json?: boolean;
  all?: boolean;
}

export function register(program: Command): void {
  program
    .command('ls')
    .description('list a directory inside the image ("/" lists the volumes)')
    .argument('<image>', 'disk image')
    .argument('[path]', 'path inside the image, e.g. /p2/etc', '/')
    .option('-R, --recursive', 'list subdirectories recursively')
    .option('--json', 'print one JSON array of entries')
    .option('-a, --all', 'include hidden filesystem metafiles (NTFS $MFT ...)')
    .action(async (image: string, path: string, opts: LsOptions) => {
      // Warnings go to stderr even with --json: stdout stays one clean JSON array.
      const code = await withDisk(image, (disk) => list(disk, path, opts).finally(flush));
      if (code) process.exitCode = code;
    });
}

/**
 * Output goes straight to fd 1 in batches of ~64 KiB: huge listings stream
 * instead of piling up in memory, without a syscall per entry.
 */
let pending: string[] = [];
let pendingLength = 0;
function out(text: string): void {
  pending.push(text);
  pendingLength += text.length;
  if (pendingLength >= 64 * 1024) flush();
}
function flush(): void {
  if (!pending.length) return;
  writeAllSync(1, pending.join(''));
  pending = [];
  pendingLength = 0;
}

async function targetOf(disk: Disk, e: Entry): Promise<string | undefined> {
  if (e.stat.type !== 'symlink') return undefined;
  try {
    return await disk.readlink(e);
  } catch (err) {
    process.stderr.write(`loopless: ${oneLine(err)}\n`);
    return undefined;
  }
}

async function list(disk: Disk, path: string, opts: LsOptions): Promise<number> {
  const start = await disk.lstat(path);
  // Naming a volume whose filesystem cannot be read: say why instead of listing it as a blob.
  if (start.kind === 'volume' && !start.fs) await disk.filesystem(start.volume!);
  let failure = 0;
  const onError = (p: string, e: unknown) => {
    process.stderr.write(`loopless: ${oneLine(e)}\n`);
    if (!failure) failure = exitCodeFor(e) || 1;
  };

  if (opts.json) {
    let first = true;
    const emit = async (e: Entry) => {
      out((first ? '[' : ',\n') + JSON.stringify(toLsJson(e, await targetOf(disk, e))));
      first = false;
    };
    if (start.stat.type !== 'dir') await emit(start);
    else if (opts.recursive) for await (const e of walk(disk, start, { all: opts.all, onError })) await emit(e);
    else for (const e of await disk.readdir(start, { all: opts.all })) await emit(e);
    out(first ? '[]\n' : ']\n');
    return failure;
  }

  if (start.stat.type !== 'dir') {
    out((await longLines(disk, [start], true)) + '\n');
    return failure;
  }
  if (!opts.recursive) {
    const entries = await disk.readdir(start, { all: opts.all });
    if (entries.length) out((await longLines(disk, entries, false)) + '\n');
    return failure;
  }
  // ls -lR layout: one section per directory.
  const printDir = async (dir: Entry, children: Entry[], firstSection: boolean) => {
    out(`${firstSection ? '' : '\n'}${safeName(dir.path)}:\n`);
    if (children.length) out((await longLines(disk, children, false)) + '\n');
  };
  let firstSection = true;
  const queue: Entry[] = [start];
  const keyOf = (e: Entry) => `${e.volume}:${e.stat.ino}`;
  const seen = new Set<string>([keyOf(start)]);
  while (queue.length) {
    const dir = queue.shift()!;
    let children: Entry[];
    try {
      children = await disk.readdir(dir, { all: opts.all });
    } catch (e) {
      onError(dir.path, e);
      continue;
    }
    await printDir(dir, children, firstSection);
    firstSection = false;
    // A directory met twice (a corrupt tree that contains its own ancestor) is listed but not entered again.
    const subdirs: Entry[] = [];
    for (const c of children) {
      if (c.stat.type !== 'dir' || c.kind === 'volume' && !c.fs) continue;
      if (seen.has(keyOf(c))) {
        onError(c.path, new Error(`${c.path}: directory already listed (a loop in the directory tree); not entered again`));
        continue;
      }
      seen.add(keyOf(c));
      subdirs.push(c);
    }
    queue.unshift(...subdirs);
  }
  return failure;
}

async function longLines(disk: Disk, entries: Entry[], fullPath: boolean): Promise<string> {
  const rows: string[][] = [];
  for (const e of entries) {
    const s = e.stat;
    const target = await targetOf(disk, e);
    const name = safeName(fullPath ? e.path : e.name) + (target !== undefined ? ` -> ${safeName(target)}` : '');
    rows.push([modeString(s), String(s.nlink), String(s.uid), String(s.gid), String(s.size), shortTime(s.mtimeNs), name]);
  }
  return table(rows, [false, true, true, true, true, false, false]);
}
