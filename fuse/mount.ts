import { readdir, realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ImageIOError, LooplessError, NotADirectoryError, NotFoundError } from '../parsers/errors.js';
import { mountOptionString, type MountOptionInput } from './mount-options.js';
import { deviceString, fusermountUnmount, mountAt, readMounts } from './mounts.js';
import { fuseOperations } from './operations.js';
import { requireFuse } from './prerequisites.js';
import type { MountTree } from './tree.js';

/** How often a mount checks whether someone unmounted it (umount, fusermount -u, loopless umount). */
const UNMOUNT_POLL_MS = 500;

export interface ActiveMount {
  readonly mountpoint: string;
  /** Settles once the mount is gone, whoever unmounted it. */
  readonly ended: Promise<void>;
  /** Unmount (lazily: programs still inside get errors, we never hang) and wait until it is gone. */
  unmount(): Promise<void>;
}

/**
 * Refuse a mountpoint that cannot work, saying why, before libfuse prints
 * its own terse complaint to stderr.
 */
export async function checkMountpoint(path: string): Promise<string> {
  let mountpoint = resolve(path);
  try {
    const st = await stat(mountpoint);
    if (!st.isDirectory()) throw new NotADirectoryError(mountpoint);
    // The kernel records the real path; compare with that.
    mountpoint = await realpath(mountpoint);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotFoundError(mountpoint, 'no such directory to mount on (create it, or pass --mkdir)');
    if (code === 'ENOTCONN') {
      throw new ImageIOError(`${mountpoint}: a dead FUSE mount is left there ("Transport endpoint is not connected"); remove it with \`loopless umount ${mountpoint}\``);
    }
    throw e;
  }
  const existing = await mountAt(mountpoint);
  if (existing) throw new LooplessError('EEXIST', `${mountpoint}: already a mount point (${existing.fstype} from ${existing.source}); unmount it first`);
  if ((await readdir(mountpoint)).length > 0) throw new LooplessError('EEXIST', `${mountpoint}: not empty; mount on an empty directory`);
  return mountpoint;
}

/** Mount a tree read-only at an (already checked) mountpoint; resolves once the kernel serves it. */
export async function mountTree(tree: MountTree, mountpoint: string, options: MountOptionInput, log: (line: string) => void): Promise<ActiveMount> {
  const Fuse = requireFuse();
  const fuse = new Fuse(mountpoint, fuseOperations(tree, log), { timeout: false });
  if (typeof fuse._fuseOptions !== 'function') throw new ImageIOError('this fuse-native version cannot be given mount options (expected 2.2.x)');
  const optionString = mountOptionString(options);
  fuse._fuseOptions = () => optionString;
  await new Promise<void>((ok, fail) =>
    fuse.mount((err) => (err ? fail(new ImageIOError(`${mountpoint}: mount failed: ${err.message}`)) : ok())),
  );

  // Our mount is the one with this device number; a later mount at the same path is someone else's.
  const device = deviceString((await stat(mountpoint)).dev);
  let stopPolling = () => {};
  const ended = new Promise<void>((done) => {
    const timer = setInterval(() => {
      readMounts().then(
        (mounts) => {
          if (!mounts.some((m) => m.device === device)) done();
        },
        () => {},
      );
    }, UNMOUNT_POLL_MS);
    stopPolling = () => clearInterval(timer);
  });
  ended.then(stopPolling);

  let unmounting: Promise<void> | null = null;
  return {
    mountpoint,
    ended,
    unmount() {
      unmounting ??= (async () => {
        if ((await readMounts()).some((m) => m.device === device)) await fusermountUnmount(mountpoint, true);
        await ended;
      })();
      return unmounting;
    },
  };
}
