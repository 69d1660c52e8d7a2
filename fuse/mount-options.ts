/**
 * The libfuse 2.9 options of a Loopless mount, in one "-o" argument.
 * fuse-native's API has no `ro` (nor negative_timeout, max_readahead), so we
 * build the whole string ourselves; it is the only thing fuse-native passes
 * to fuse_mount()/fuse_new().
 */

/** libfuse 2.9 never asks for more than 32 pages per request. */
export const MAX_REQUEST = 128 * 1024;

/**
 * An upper bound only: libfuse 2 takes the smaller of this and what the
 * kernel offers (its 128 KiB default; /sys/class/bdi/<mount>/read_ahead_kb
 * reads 128 on a mount). A program reading 1 MiB at a time still has 8
 * requests in flight. Raising read_ahead_kb by hand to 4-16 MiB made a cold
 * 512 MiB read slower here (0.55-0.8 s against 0.3 s): more libfuse threads
 * contend for 2 cores.
 */
const READAHEAD = 1024 * 1024;

/** Seconds the kernel may trust names and attributes: the image does not change while mounted. */
const IMMUTABLE_TIMEOUT = 3600;

/**
 * In a folder of images, files may be added, replaced or removed: the kernel
 * checks back after a second, and re-reads a file's pages after it changed.
 */
const FOLDER_TIMEOUT = 1;

/** fuse-native copies the option string into a 1024-byte buffer. */
const MAX_OPTION_STRING = 1023;

export interface MountOptionInput {
  /** Shown as the mount's source in /proc/mounts and df (the image or folder path). */
  fsname: string;
  /** 'image': one immutable image; 'folder': a folder whose images may change. */
  kind: 'image' | 'folder';
  /** Let other users in, with the kernel checking file modes. */
  allowOther: boolean;
}

/** libfuse splits options at commas; a backslash protects one. */
function escapeOption(value: string): string {
  return value.replace(/[\\,]/g, (c) => `\\${c}`);
}

export function mountOptionString(input: MountOptionInput): string {
  const options = [
    'ro',
    // A crashed or killed process leaves no dead mount: fusermount unmounts when our /dev/fuse descriptor closes.
    'auto_unmount',
    'subtype=loopless',
    `max_read=${MAX_REQUEST}`,
    `max_readahead=${READAHEAD}`,
  ];
  if (input.kind === 'image') {
    options.push('kernel_cache', `entry_timeout=${IMMUTABLE_TIMEOUT}`, `attr_timeout=${IMMUTABLE_TIMEOUT}`, `negative_timeout=${IMMUTABLE_TIMEOUT}`);
  } else {
    options.push('auto_cache', `entry_timeout=${FOLDER_TIMEOUT}`, `attr_timeout=${FOLDER_TIMEOUT}`);
  }
  if (input.allowOther) options.push('allow_other', 'default_permissions');
  const withName = `-o${[`fsname=${escapeOption(input.fsname)}`, ...options].join(',')}`;
  // A path too long for fuse-native's buffer would be cut mid-option: name the mount generically instead.
  return Buffer.byteLength(withName) <= MAX_OPTION_STRING ? withName : `-o${['fsname=loopless', ...options].join(',')}`;
}
