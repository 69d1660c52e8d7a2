import { isLooplessError, oneLine, type ErrorCode } from '../parsers/errors.js';

/** Exit codes scripts can rely on (documented in the README). */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  notFound: 3,
  corrupt: 4,
  unsupported: 5,
  exists: 6,
  notDirectory: 7,
  verifyFailed: 8,
} as const;

const BY_CODE: Record<ErrorCode, number> = {
  ENOENT: EXIT.notFound,
  ENOTDIR: EXIT.notDirectory,
  EISDIR: EXIT.notDirectory,
  EINVAL: EXIT.usage,
  ELOOP: EXIT.corrupt,
  EEXIST: EXIT.exists,
  CORRUPT: EXIT.corrupt,
  UNSUPPORTED: EXIT.unsupported,
  IO: EXIT.error,
};

export function exitCodeFor(e: unknown): number {
  if (isLooplessError(e)) return BY_CODE[e.code];
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return EXIT.notFound;
  if (code === 'EEXIST') return EXIT.exists;
  if (code === 'ENOTDIR' || code === 'EISDIR') return EXIT.notDirectory;
  return EXIT.error;
}

/** Print one line to stderr and exit with the code that fits the error. */
export function die(e: unknown): never {
  process.stderr.write(`loopless: ${oneLine(e)}\n`);
  process.exit(exitCodeFor(e));
}

export function warn(message: string): void {
  process.stderr.write(`loopless: warning: ${oneLine(message)}\n`);
}
