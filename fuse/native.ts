/**
 * Loading fuse-native, the only FUSE binding with a linux-x64 prebuild that
 * needs no compiler at install time. Its addon links against libfuse.so.2,
 * which comes either from Debian's libfuse2 or from the copy npm installs in
 * fuse-shared-library-linux. The dynamic loader never looks inside
 * node_modules, so when the system has no libfuse.so.2 we load the bundled
 * copy first, globally, and the addon's dependency is then satisfied by its
 * soname.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';

/** The stat object fuse-native turns into `struct stat` (times in ms). */
export interface FuseStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksize: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
}

/** `struct statvfs` fields; fuse-native passes them as 32-bit integers. */
export interface FuseStatfs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

/**
 * fuse-native's callback conventions: `cb(0, value)` on success and
 * `cb(-errno)` on failure, except read, whose single argument is the byte
 * count or a negative errno.
 */
export interface FuseOperations {
  init?(cb: (err: number) => void): void;
  getattr(path: string, cb: (err: number, stat?: FuseStat) => void): void;
  readdir(path: string, cb: (err: number, names?: string[], stats?: FuseStat[]) => void): void;
  open(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
  opendir?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
  read(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: (result: number) => void): void;
  release(path: string, fd: number, cb: (err: number) => void): void;
  readlink(path: string, cb: (err: number, target?: string) => void): void;
  statfs(path: string, cb: (err: number, statfs?: FuseStatfs) => void): void;
}

export interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  /** Private in fuse-native: builds the single "-o..." argument handed to libfuse. */
  _fuseOptions(): string;
}

export interface FuseConstructorOptions {
  /**
   * false: fuse-native would otherwise answer a slow request with ETIMEDOUT
   * after 15 s, and our read, still running, would then fill a buffer libfuse
   * has already handed back.
   */
  timeout: false;
}

export type FuseClass = new (mountpoint: string, ops: FuseOperations, options: FuseConstructorOptions) => FuseInstance;

/** glibc's RTLD_NODELETE: keep the library mapped although Node closes it after it "did not self-register". */
const RTLD_NODELETE = 0x1000;

/** Why FUSE cannot be used here, phrased as what to do about it. */
export class FuseLoadError extends Error {}

let loaded: FuseClass | null = null;

/** Where fuse-native's own dependency keeps its libfuse.so.2 (null when not installed). */
export function bundledLibfusePath(): string | null {
  try {
    const require = createRequire(import.meta.url);
    const fromFuseNative = createRequire(require.resolve('fuse-native'));
    return (fromFuseNative('fuse-shared-library') as { lib: string }).lib;
  } catch {
    return null;
  }
}

function missingLibfuse(e: unknown): boolean {
  return e instanceof Error && /libfuse\.so\.2/.test(e.message);
}

/** fuse-native's class, with libfuse.so.2 from the system or, failing that, from node_modules. */
export function loadFuseNative(): FuseClass {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  try {
    loaded = require('fuse-native') as FuseClass;
    return loaded;
  } catch (e) {
    if (!missingLibfuse(e)) throw new FuseLoadError(`cannot load fuse-native: ${firstLine(e)} (reinstall with \`npm install\`)`);
  }
  const bundled = bundledLibfusePath();
  let bundledError: string | null = null;
  if (bundled) {
    try {
      process.dlopen({ exports: {} }, bundled, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL | RTLD_NODELETE);
    } catch (e) {
      // Success looks like failure here: the library loads, then Node complains it is not an addon.
      if (!/did not self-register/.test(firstLine(e))) bundledError = firstLine(e);
    }
    try {
      loaded = require('fuse-native') as FuseClass;
      return loaded;
    } catch (e) {
      if (!missingLibfuse(e)) throw new FuseLoadError(`cannot load fuse-native: ${firstLine(e)}`);
    }
  }
  throw new FuseLoadError(
    `libfuse.so.2 not found: install it with \`apt-get install libfuse2\`` +
      (bundled ? ` (the copy in node_modules did not load: ${bundledError ?? 'unknown error'})` : ' (or run `npm install` to get the copy in fuse-shared-library-linux)'),
  );
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
