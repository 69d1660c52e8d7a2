import { constants } from 'node:os';
import { oneLine } from '../parsers/errors.js';
import { toErrno } from './errno.js';
import type { FuseOperations } from './native.js';
import type { MountTree, OpenFile } from './tree.js';

/** Repeated failures of one file (a program retrying) are logged once. */
const LOGGED_MESSAGES_KEPT = 1000;

/** libfuse gives normalized absolute paths: "/" or "/p2/etc". */
function components(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

/**
 * The one place where fuse-native's callback API meets our promises: every
 * request runs the tree's async method and answers with a value or a
 * negative errno. Damage and unsupported data also go to the log, once per
 * message, because the calling program only sees "Input/output error".
 *
 * Nothing that writes is implemented: the mount is read-only in the kernel,
 * which answers EROFS before a request could reach us.
 */
export function fuseOperations(tree: MountTree, log: (line: string) => void): FuseOperations {
  const handles = new Map<number, OpenFile>();
  let nextHandle = 1;
  const logged = new Set<string>();

  function fail(e: unknown): number {
    const { errno, worthLogging } = toErrno(e);
    if (worthLogging) {
      const line = oneLine(e);
      if (!logged.has(line)) {
        if (logged.size >= LOGGED_MESSAGES_KEPT) logged.clear();
        logged.add(line);
        log(line);
      }
    }
    return -errno;
  }

  /** Run a request; answer (0, value) or (-errno). */
  function answer<T>(work: () => Promise<T>, cb: (err: number, value?: T) => void): void {
    work().then(
      (value) => cb(0, value),
      (e: unknown) => cb(fail(e)),
    );
  }

  return {
    getattr(path, cb) {
      answer(() => tree.getattr(components(path)), cb);
    },

    readdir(path, cb) {
      tree.readdir(components(path)).then(
        async (entries) => {
          const self = await tree.getattr(components(path));
          const names = ['.', '..', ...entries.map((e) => e.name)];
          // Only the type bits of these stats reach the program (as d_type), which is what find needs.
          cb(0, names, [self, self, ...entries.map((e) => e.attributes)]);
        },
        (e: unknown) => cb(fail(e)),
      );
    },

    open(path, _flags, cb) {
      answer(async () => {
        const file = await tree.open(components(path));
        const handle = nextHandle++;
        handles.set(handle, file);
        return handle;
      }, cb);
    },

    read(_path, handle, buffer, length, position, cb) {
      const file = handles.get(handle);
      if (!file) return cb(-constants.errno.EBADF); // the kernel never reads a handle it did not open
      file.read(buffer, length, position).then(
        (n) => cb(n),
        (e: unknown) => cb(fail(e)),
      );
    },

    release(_path, handle, cb) {
      handles.delete(handle);
      cb(0);
    },

    readlink(path, cb) {
      answer(() => tree.readlink(components(path)), cb);
    },

    statfs(path, cb) {
      answer(() => tree.statfs(components(path)), cb);
    },
  };
}
