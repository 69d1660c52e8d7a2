import type { Request, Response } from 'express';
import type { Disk } from '../../parsers/vfs/index.js';
import type { AuditLog } from '../audit.js';
import type { Requester } from '../auth/auth.js';
import type { ImageFile } from '../catalog.js';
import type { ListingCache } from '../listing-cache.js';
import { HttpError } from '../http-errors.js';

/** Everything a per-image route needs; the Disk is leased for the whole call. */
export interface ImageRoute {
  req: Request;
  res: Response;
  image: ImageFile;
  disk: Disk;
  /** Identity of the image file's contents, for ETags. */
  signature: string;
  /** Path inside the image ("/p1/docs"). */
  path: string;
  who: Requester;
  audit: AuditLog;
  listings: ListingCache;
}

export function flag(value: unknown): boolean {
  return value === '1' || value === 'true' || value === '';
}

export function intParam(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\d+$/.test(value)) throw new HttpError(400, `${name} must be a whole number`);
  const n = Number(value);
  if (n < min || n > max) throw new HttpError(400, `${name} must be between ${min} and ${max}`);
  return n;
}

/**
 * Resolves when the client has gone (connection closed before the response
 * finished) so streaming loops can stop and free what they hold.
 */
export function clientGone(res: Response): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** Write with backpressure; false when the client went away meanwhile. `onWritten` is the write's callback. */
export async function writeChunk(res: Response, chunk: string | Buffer, gone: AbortSignal, onWritten?: () => void): Promise<boolean> {
  if (gone.aborted || res.destroyed) return false;
  // The callback runs once the chunk has reached the socket (or failed to): then it may be reused.
  if (onWritten ? res.write(chunk, onWritten) : res.write(chunk)) return true;
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      gone.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onAbort = () => done(false);
    res.once('drain', onDrain);
    gone.addEventListener('abort', onAbort, { once: true });
  });
}
