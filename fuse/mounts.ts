import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ImageIOError } from '../parsers/errors.js';

const run = promisify(execFile);

/** The kernel's type for our mounts: "fuse." + the subtype we pass. */
export const LOOPLESS_FSTYPE = 'fuse.loopless';

export interface MountRecord {
  /** "0:52": the st_dev of everything on the mount. */
  device: string;
  mountpoint: string;
  fstype: string;
  source: string;
  /** Per-mount options ("ro,nosuid,..."). */
  options: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Every mount this process can see, in mount order (later entries cover earlier ones at the same path). */
export async function readMounts(): Promise<MountRecord[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: MountRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 6) continue;
    out.push({
      device: fields[2],
      mountpoint: unescape(fields[4]),
      options: fields[5].split(','),
      fstype: fields[dash + 1],
      source: unescape(fields[dash + 2]),
    });
  }
  return out;
}

/** The mount visible at `path` (the topmost one), if any. */
export async function mountAt(path: string): Promise<MountRecord | undefined> {
  return (await readMounts()).filter((m) => m.mountpoint === path).pop();
}

/** "0:52" from a st_dev number, as mountinfo writes it. */
export function deviceString(dev: number): string {
  const major = (dev >> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  return `${major}:${minor}`;
}

/**
 * Unmount a FUSE mount with fusermount (what libfuse itself uses; it also
 * clears a dead "Transport endpoint is not connected" mount). `lazy`
 * detaches it even while programs still use it.
 */
export async function fusermountUnmount(mountpoint: string, lazy: boolean): Promise<void> {
  try {
    await run('fusermount', ['-u', ...(lazy ? ['-z'] : []), mountpoint]);
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new ImageIOError('`fusermount` is not on PATH: install it with `apt-get install fuse3`');
    const why = (err.stderr ?? err.message).trim().split('\n').pop() ?? '';
    if (/busy/i.test(why)) {
      throw new ImageIOError(`${mountpoint}: busy (a program has a file open or its working directory inside); close it, or use --lazy`);
    }
    throw new ImageIOError(`${mountpoint}: cannot unmount: ${why.replace(/^fusermount3?: /, '')}`);
  }
}
