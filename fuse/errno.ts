import { constants } from 'node:os';
import { isLooplessError, type ErrorCode } from '../parsers/errors.js';

const E = constants.errno;

/** What the kernel hands the calling program for each of our error codes. */
const ERRNO_BY_CODE: Record<ErrorCode, number> = {
  ENOENT: E.ENOENT,
  ENOTDIR: E.ENOTDIR,
  EISDIR: E.EISDIR,
  EINVAL: E.EINVAL,
  ELOOP: E.ELOOP,
  EEXIST: E.EEXIST,
  CORRUPT: E.EIO,
  UNSUPPORTED: E.EOPNOTSUPP,
  IO: E.EIO,
};

/** Errors a program can cause on a healthy image; anything else is worth a line in the log. */
const EXPECTED: ReadonlySet<ErrorCode> = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'EINVAL', 'ELOOP', 'EEXIST']);

export interface MappedError {
  /** Positive errno. */
  errno: number;
  /** True when the error says something about the image (damage, unsupported data, I/O) rather than about the request. */
  worthLogging: boolean;
}

export function toErrno(e: unknown): MappedError {
  if (isLooplessError(e)) return { errno: ERRNO_BY_CODE[e.code], worthLogging: !EXPECTED.has(e.code) };
  // Node's own errors (a failing pread on the image) carry an errno name.
  const name = (e as NodeJS.ErrnoException | null)?.code;
  if (name && name in E) return { errno: E[name as keyof typeof E], worthLogging: true };
  return { errno: E.EIO, worthLogging: true };
}
