import type { Response } from 'express';
import { isLooplessError, oneLine, type ErrorCode } from '../parsers/errors.js';

/** An error that already knows its HTTP status (bad request, not logged in ...). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * vfs error codes as HTTP means them. A damaged or unsupported image is not the
 * client's fault nor a server bug: 422 says "understood, but this content cannot
 * be processed", and `code` in the body tells the page which words to use.
 */
const STATUS_BY_CODE: Record<ErrorCode, number> = {
  ENOENT: 404,
  ENOTDIR: 404,
  EISDIR: 400,
  EINVAL: 400,
  ELOOP: 400,
  EEXIST: 409,
  CORRUPT: 422,
  UNSUPPORTED: 422,
  IO: 500,
};

export interface ErrorBody {
  error: string;
  code?: string;
}

/** Errors from express's own middleware (a malformed JSON body ...) carry a 4xx `status` meant for the client. */
function clientErrorStatus(e: unknown): number | null {
  const status = (e as { status?: unknown; expose?: unknown } | null)?.status;
  return typeof status === 'number' && status >= 400 && status < 500 && (e as { expose?: unknown }).expose === true ? status : null;
}

export function statusOf(e: unknown): number {
  if (e instanceof HttpError) return e.status;
  if (isLooplessError(e)) return STATUS_BY_CODE[e.code];
  return clientErrorStatus(e) ?? 500;
}

export function errorBody(e: unknown): ErrorBody {
  if (e instanceof HttpError || clientErrorStatus(e) !== null) return { error: oneLine(e) };
  if (isLooplessError(e)) return { error: oneLine(e), code: e.code };
  // Not ours: a bug or a host I/O failure. Say so without leaking a stack.
  return { error: `internal error: ${oneLine(e)}` };
}

/**
 * Send `{"error": ...}` unless the response has already started (then cut it,
 * so the client sees a failed transfer rather than a short file).
 * `scrub` rewrites the message, e.g. to replace a host path by the image ID.
 */
export function sendError(res: Response, e: unknown, scrub: (message: string) => string = (m) => m): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // Headers describing the file that was to be sent do not describe this error.
  for (const h of ['Content-Disposition', 'ETag', 'Last-Modified', 'Content-Length', 'Content-Range', 'Accept-Ranges', 'Cache-Control']) res.removeHeader(h);
  if (e instanceof HttpError) for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
  const body = errorBody(e);
  body.error = scrub(body.error);
  res.status(statusOf(e)).type('application/json').send(JSON.stringify(body));
}
