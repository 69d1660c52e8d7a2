/**
 * One set of typed errors for every layer. Parsers throw these; front-ends map
 * `code` to exit codes, HTTP statuses and errno values without knowing formats.
 *
 * Messages are single lines meant for users: they name the structure and the
 * byte offset where something was wrong, never a stack trace.
 */

export type ErrorCode =
  | 'ENOENT' // no such path
  | 'ENOTDIR' // a path component is not a directory
  | 'EISDIR' // a file operation on a directory
  | 'EINVAL' // bad argument (e.g. readlink on a non-link)
  | 'ELOOP' // too many symlinks / a structural loop
  | 'EEXIST' // destination exists (cp without --force)
  | 'CORRUPT' // on-disk structure is damaged
  | 'UNSUPPORTED' // recognized but not readable by us (encrypted, unknown fs, ...)
  | 'IO'; // the image itself could not be read (missing, permission, truncated)

export class LooplessError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

export class NotFoundError extends LooplessError {
  constructor(path: string, detail?: string) {
    super('ENOENT', detail ? `${path}: ${detail}` : `${path}: no such file or directory`);
  }
}

export class NotADirectoryError extends LooplessError {
  constructor(path: string) {
    super('ENOTDIR', `${path}: not a directory`);
  }
}

export class IsADirectoryError extends LooplessError {
  constructor(path: string) {
    super('EISDIR', `${path}: is a directory`);
  }
}

export class InvalidArgumentError extends LooplessError {
  constructor(message: string) {
    super('EINVAL', message);
  }
}

export class LoopError extends LooplessError {
  constructor(message: string) {
    super('ELOOP', message);
  }
}

export class ExistsError extends LooplessError {
  constructor(path: string) {
    super('EEXIST', `${path}: already exists (use --force to overwrite)`);
  }
}

export class UnsupportedError extends LooplessError {
  constructor(message: string) {
    super('UNSUPPORTED', message);
  }
}

export class ImageIOError extends LooplessError {
  constructor(message: string) {
    super('IO', message);
  }
}

/**
 * A damaged on-disk structure. `structure` names it ("ext4 extent header",
 * "GPT header", "FAT chain"), `offset` is the byte offset within the source the
 * parser was reading (for a filesystem, the volume), `detail` says what is wrong.
 * The vfs adds the volume name and the absolute image offset when it rethrows.
 */
export class CorruptError extends LooplessError {
  readonly structure: string;
  readonly offset: number;
  readonly detail: string;
  constructor(structure: string, offset: number, detail: string) {
    super('CORRUPT', `corrupt ${structure} at byte ${offset}: ${detail}`);
    this.structure = structure;
    this.offset = offset;
    this.detail = detail;
  }
}

export function isLooplessError(e: unknown): e is LooplessError {
  return e instanceof LooplessError;
}

/** Turn anything thrown into a one-line message (no stack). */
export function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/\s*\n\s*/g, ' ').trim();
}
