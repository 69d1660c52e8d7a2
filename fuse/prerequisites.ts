import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { UnsupportedError } from '../parsers/errors.js';
import { FuseLoadError, loadFuseNative, type FuseClass } from './native.js';

/** Linux's FUSE device is char 10,229 ("misc" major, FUSE minor). */
const FUSE_DEVICE = { path: '/dev/fuse', major: 10, minor: 229 };

/** An executable named `name` on PATH, or null. */
export function findOnPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function fuseDeviceProblem(): string | null {
  let rdev: number;
  try {
    const st = statSync(FUSE_DEVICE.path);
    if (!st.isCharacterDevice()) return `${FUSE_DEVICE.path} is not a character device`;
    rdev = st.rdev;
  } catch {
    return `${FUSE_DEVICE.path} is missing: load the kernel module with \`modprobe fuse\` (in a container, start it with \`--device /dev/fuse --cap-add SYS_ADMIN\`)`;
  }
  // glibc's major()/minor() for numbers below 2^20.
  const major = (rdev >> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  if (major !== FUSE_DEVICE.major || minor !== FUSE_DEVICE.minor) {
    return `${FUSE_DEVICE.path} is device ${major},${minor}, not the FUSE device ${FUSE_DEVICE.major},${FUSE_DEVICE.minor}`;
  }
  return null;
}

/**
 * Everything a FUSE mount needs, checked up front so the user gets one
 * message naming what to install instead of libfuse's "fuse failed".
 * Returns fuse-native's class when all is there.
 */
export function requireFuse(): FuseClass {
  const problems: string[] = [];
  const device = fuseDeviceProblem();
  if (device) problems.push(device);
  // libfuse mounts with auto_unmount, and unmounts, through fusermount.
  if (!findOnPath('fusermount')) problems.push('`fusermount` is not on PATH: install it with `apt-get install fuse3`');
  let fuse: FuseClass | null = null;
  try {
    fuse = loadFuseNative();
  } catch (e) {
    if (!(e instanceof FuseLoadError)) throw e;
    problems.push(e.message);
  }
  if (problems.length || !fuse) throw new UnsupportedError(`FUSE is not usable on this machine: ${problems.join('; ')}`);
  return fuse;
}
