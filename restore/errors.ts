import { LooplessError } from '../parsers/errors.js';
import type { ByteRange } from './ranges.js';

/** Restore will not write to this target (mounted, held, the image itself, too small ...). Exit code 1. */
export class RefusedError extends LooplessError {
  constructor(message: string) {
    super('IO', message);
  }
}

/** The target holds data and nobody confirmed overwriting it. Exit code 6, as for `cp` without --force. */
export class NotConfirmedError extends LooplessError {
  constructor(message: string) {
    super('EEXIST', message);
  }
}

/**
 * What was read back from the target (or read from the image, against a
 * block map's checksum) is not what was meant to be there. Exit code 8.
 */
export class VerifyError extends LooplessError {
  constructor(
    message: string,
    readonly range: ByteRange,
  ) {
    super('IO', message);
  }
}
