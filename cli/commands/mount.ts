import { Option, type Command } from 'commander';
import { mkdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../../parsers/errors.js';
import { defaultLogPath, reportFailure, reportReady, startInBackground } from '../../fuse/background.js';
import { CatalogTree } from '../../fuse/catalog-tree.js';
import { ImageTree } from '../../fuse/image-tree.js';
import { mountLogger } from '../../fuse/log.js';
import { checkMountpoint, mountTree } from '../../fuse/mount.js';
import { fusermountUnmount, LOOPLESS_FSTYPE, mountAt } from '../../fuse/mounts.js';
import { requireFuse } from '../../fuse/prerequisites.js';
import type { MountTree } from '../../fuse/tree.js';
import { exitCodeFor } from '../exit.js';

interface MountOptions {
  foreground?: boolean;
  allowOther?: boolean;
  mkdir?: boolean;
  log?: string;
  json?: boolean;
  readyFd?: number;
}

const LAYOUT_HELP = `
What the mount shows, for one image:
  disk.img          the whole image, raw
  p1.img, p2.img    each volume's raw bytes from its first byte (mount -o loop,ro, fsck -n, file -s)
  p1/, p2/          the files of every volume whose filesystem Loopless reads
An image without a partition table shows fs.img and fs/. For a folder of images, each
image file gets a subfolder named after it; images copied in later appear by themselves.
Everything is read-only. Needs FUSE: /dev/fuse, fusermount (apt-get install fuse3).`;

export function register(program: Command): void {
  program
    .command('mount')
    .description('mount an image (or a folder of images) read-only: its files, and each partition as a raw file')
    .argument('<source>', 'disk image, or a folder of images')
    .argument('<mountpoint>', 'empty directory to mount on')
    .option('-f, --foreground', 'stay attached, log to stderr; Ctrl-C unmounts')
    .option('--allow-other', 'let other users in (file modes are then enforced)')
    .option('--mkdir', 'create the mountpoint when it does not exist')
    .option('--log <file>', 'log file of a background mount (default ~/.local/state/loopless/mount-<mountpoint>.log)')
    .option('--json', 'print {"mountpoint","source","pid","log"} once mounted')
    .addOption(new Option('--ready-fd <fd>', 'internal: report readiness on this descriptor').hideHelp().argParser((v) => parseInt(v, 10)))
    .addHelpText('after', LAYOUT_HELP)
    .action((source: string, mountpoint: string, opts: MountOptions) => mountCommand(source, mountpoint, opts));

  program
    .command('umount')
    .description('unmount a loopless mount (the process serving it then exits)')
    .argument('<mountpoint>', 'where the image is mounted')
    .option('-l, --lazy', 'detach now even while programs still use it')
    .action((mountpoint: string, opts: { lazy?: boolean }) => umountCommand(mountpoint, !!opts.lazy));
}

async function sourceKind(path: string): Promise<'image' | 'folder'> {
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new NotFoundError(path, 'no such image file or folder');
  }
  if (st.isDirectory()) return 'folder';
  if (st.isFile() || st.isBlockDevice()) return 'image';
  throw new InvalidArgumentError(`${path}: not an image file or a folder`);
}

async function mountCommand(sourceArg: string, mountpointArg: string, opts: MountOptions): Promise<void> {
  const readyFd = opts.readyFd;
  try {
    const source = resolve(sourceArg);
    const kind = await sourceKind(source);
    if (opts.mkdir) await mkdir(resolve(mountpointArg), { recursive: true });
    const mountpoint = await checkMountpoint(mountpointArg);
    requireFuse();
    if (!opts.foreground) return await mountInBackground(source, mountpoint, opts);
    await serve(source, kind, mountpoint, opts);
  } catch (e) {
    if (readyFd !== undefined) reportFailure(readyFd, e, exitCodeFor(e));
    throw e;
  }
}

async function mountInBackground(source: string, mountpoint: string, opts: MountOptions): Promise<void> {
  const log = opts.log ? resolve(opts.log) : defaultLogPath(mountpoint);
  const args = ['mount', source, mountpoint, ...(opts.allowOther ? ['--allow-other'] : [])];
  const result = await startInBackground(args, log);
  if (!result.ok) {
    // libfuse writes its own reason to the mount process's stderr, which is the log.
    process.stderr.write(`loopless: ${result.message} (log: ${log})\n`);
    process.exitCode = result.exitCode;
    return;
  }
  announce({ mountpoint, source, pid: result.pid, log }, opts.json);
}

function announce(info: { mountpoint: string; source: string; pid: number; log: string | null }, json?: boolean): void {
  if (json) process.stdout.write(JSON.stringify(info) + '\n');
  else {
    process.stderr.write(
      `loopless: mounted ${info.source} on ${info.mountpoint} read-only (process ${info.pid}${info.log ? `, log ${info.log}` : ''}); ` +
        `unmount with \`loopless umount ${info.mountpoint}\`\n`,
    );
  }
}

/** Mount and serve until unmounted (by a signal, loopless umount, umount or fusermount -u). */
async function serve(source: string, kind: 'image' | 'folder', mountpoint: string, opts: MountOptions): Promise<void> {
  const background = opts.readyFd !== undefined;
  const log = mountLogger(background);
  // Signals are caught before the mount exists: the mount shows in /proc/mounts
  // before mountTree() returns, and a signal in that window would otherwise
  // reach libfuse's own handlers, which stop serving but leave the mount in place
  // (seen as a test timing out under load). One that comes early unmounts as
  // soon as there is a mount.
  let stopRequested: string | null = null;
  let stop = (signal: string) => {
    stopRequested ??= signal;
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // A closed terminal ends a foreground mount; a background one has no terminal.
  if (background) process.on('SIGHUP', () => {});
  else process.on('SIGHUP', () => stop('SIGHUP'));
  const tree: MountTree = kind === 'folder' ? await CatalogTree.open(source, log) : await ImageTree.open(source, log);
  let active;
  try {
    active = await mountTree(tree, mountpoint, { fsname: source, kind, allowOther: !!opts.allowOther }, log);
  } catch (e) {
    await tree.close();
    throw e;
  }
  const mounted = active;
  stop = (signal: string) => {
    log(`${signal}: unmounting ${mountpoint}`);
    mounted.unmount().catch((e: unknown) => log(`cannot unmount ${mountpoint}: ${e instanceof Error ? e.message : String(e)}`));
  };
  if (stopRequested) stop(stopRequested);

  if (background) {
    log(`mounted ${source} on ${mountpoint}`);
    reportReady(opts.readyFd!);
  } else {
    announce({ mountpoint, source, pid: process.pid, log: null }, opts.json);
    if (!opts.json) process.stderr.write('loopless: serving in the foreground; Ctrl-C unmounts\n');
  }
  await active.ended;
  await tree.close();
  if (background) log(`unmounted ${mountpoint}`);
  // fuse-native keeps a libuv handle open after the mount ends.
  process.exit(0);
}

async function umountCommand(mountpointArg: string, lazy: boolean): Promise<void> {
  const absolute = resolve(mountpointArg);
  // A dead mount cannot be stat'ed (ENOTCONN): resolve its parent only.
  let path = absolute;
  try {
    path = join(await realpath(dirname(absolute)), basename(absolute));
  } catch {
    // keep the path as given
  }
  const mount = await mountAt(path);
  if (!mount) throw new NotFoundError(path, 'not mounted');
  if (mount.fstype !== LOOPLESS_FSTYPE) {
    throw new InvalidArgumentError(`${path}: not a loopless mount (${mount.fstype} from ${mount.source}); use umount(8)`);
  }
  await fusermountUnmount(path, lazy);
}
