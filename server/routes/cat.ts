import { create as contentDisposition } from 'content-disposition';
import { createHash } from 'node:crypto';
import { finished } from 'node:stream/promises';
import mime from 'mime-types';
import parseRange from 'range-parser';
import { InvalidArgumentError, IsADirectoryError, oneLine } from '../../parsers/errors.js';
import { nsToDate, type Entry } from '../../parsers/vfs/index.js';
import { HttpError } from '../http-errors.js';
import { AlignedPool } from '../../parsers/source/aligned.js';
import { clientGone, flag, writeChunk, type ImageRoute } from './context.js';

/**
 * Served files come from untrusted images: an HTML or SVG file shown inline
 * must not run script with the user's session. The sandbox gives it an opaque
 * origin with no scripts. PDF is the exception: Chromium's viewer refuses to
 * run in a sandbox, and a PDF cannot reach our origin's script context anyway.
 */
const SANDBOX_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; media-src 'self'";
const PDF_CSP = "default-src 'none'; object-src 'self'";

/**
 * Read size per download: large enough that every read reaches the image as
 * one big pread, small enough that 50 parallel downloads stay in a few
 * hundred MB (each holds about three chunks: reading, buffered, in the socket).
 */
const DOWNLOAD_CHUNK = 256 * 1024;

/**
 * Download chunks are page-aligned buffers recycled once the socket has
 * written them: the kernel copies into aligned memory ~2.5x faster (see
 * parsers/source/aligned.ts), and reuse spares the allocator and the garbage
 * collector 400 buffers per 100 MB. Idle, the pool keeps 64 (16 MiB).
 */
const downloadBuffers = new AlignedPool(DOWNLOAD_CHUNK, 64);

/** What pipeline() reported when the client left: the handler below treats it as a disconnect. */
function prematureClose(): Error {
  return Object.assign(new Error('client disconnected'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/** Resolve PATH (following symlinks inside the image) to a regular file or say why not. */
export async function fileEntry(route: ImageRoute): Promise<Entry> {
  const entry = await route.disk.stat(route.path);
  if (entry.stat.type === 'dir' || entry.kind !== 'node') throw new IsADirectoryError(entry.path);
  if (entry.stat.type !== 'file') throw new InvalidArgumentError(`${entry.path}: not a regular file (${entry.stat.otherKind ?? entry.stat.type})`);
  return entry;
}

/** Strong validator: the same image file contents and the same node give the same bytes. */
function etagOf(signature: string, entry: Entry): string {
  const h = createHash('sha256').update(`${signature}\0${entry.volume}\0${entry.stat.ino}\0${entry.stat.size}\0${entry.stat.mtimeNs}\0${entry.path}`);
  return `"${h.digest('base64url').slice(0, 27)}"`;
}

export function contentTypeOf(name: string): string {
  return mime.contentType(name) || 'application/octet-stream';
}

/**
 * GET /api/images/ID/cat/PATH: the file's bytes. One byte range per request
 * (206, or 416 when it lies outside the file); a request for several ranges
 * gets the whole file with 200, as RFC 9110 allows. ETag/If-None-Match and
 * If-Range work as usual. `download=1` asks for an attachment, otherwise the
 * file is shown inline (previews). Every response is audited with the bytes
 * actually sent.
 */
export async function cat(route: ImageRoute): Promise<void> {
  const { req, res, disk, image, who, audit } = route;
  const entry = await fileEntry(route);
  const size = entry.stat.size;
  const type = contentTypeOf(entry.name);
  const etag = etagOf(route.signature, entry);
  const modified = entry.stat.mtimeNs > 0n ? nsToDate(entry.stat.mtimeNs).toUTCString() : null;

  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('ETag', etag);
  if (modified) res.setHeader('Last-Modified', modified);
  res.setHeader('Cache-Control', 'private, no-cache');
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Disposition', contentDisposition(entry.name, { type: flag(req.query.download) ? 'attachment' : 'inline' }));
  res.setHeader('Content-Security-Policy', type.startsWith('application/pdf') ? PDF_CSP : SANDBOX_CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');

  if (req.fresh) {
    res.status(304).end();
    return;
  }

  let start = 0;
  let end = size - 1;
  const rangeHeader = req.headers.range;
  const ifRange = req.headers['if-range'];
  if (rangeHeader && rangeApplies(typeof ifRange === 'string' ? ifRange : undefined, etag, modified)) {
    const ranges = parseRange(size, rangeHeader, { combine: true });
    if (ranges === -1) {
      throw new HttpError(416, `range ${rangeHeader} lies outside the file (${size} bytes)`, { 'Content-Range': `bytes */${size}` });
    }
    // -2 (malformed) or another unit: ignored, the whole file follows, as RFC 9110 says.
    if (ranges !== -2 && ranges.type === 'bytes' && ranges.length === 1) {
      start = ranges[0].start;
      end = ranges[0].end;
      res.status(206);
      res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    }
  }
  const length = Math.max(0, end - start + 1);
  res.setHeader('Content-Length', String(length));
  if (req.method === 'HEAD') {
    res.end(); // headers only: nothing was handed out, nothing to audit
    return;
  }

  let sent = 0;
  let error: string | undefined;
  try {
    if (length === 0) {
      res.end();
      return;
    }
    const chunks = disk.readChunks(entry, { start, end }, DOWNLOAD_CHUNK, { pool: downloadBuffers });
    // The first read happens before anything is sent, so a file that cannot be
    // read at all is still answered with its reason as JSON (422 ...).
    let chunk = await chunks.next();
    const gone = clientGone(res);
    while (chunk) {
      const written = chunk;
      sent += written.length;
      // Each chunk goes back to the pool once the socket has it (see downloadBuffers).
      if (!(await writeChunk(res, written, gone, () => downloadBuffers.give(written)))) throw prematureClose();
      chunk = await chunks.next();
    }
    res.end();
    await finished(res);
  } catch (e) {
    // The client left (nothing to tell anyone) or a read failed mid-file: the
    // response is cut short so the client sees a failed transfer, not a short file.
    const clientLeft = (e as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE';
    error = clientLeft ? 'client disconnected' : oneLine(e);
    if (!clientLeft && !res.headersSent && !res.destroyed) throw e;
    if (!res.destroyed) res.destroy();
  } finally {
    audit.record({
      event: 'download',
      user: who.user,
      ip: req.ip ?? null,
      image: image.id,
      path: entry.path,
      bytes: sent,
      complete: sent === length && !error,
      status: res.statusCode,
      ...(res.statusCode === 206 ? { range: `${start}-${end}` } : {}),
      ...(error ? { error } : {}),
    });
  }
}

/** If-Range: the range holds only when the client's copy is the current one. */
function rangeApplies(ifRange: string | undefined, etag: string, modified: string | null): boolean {
  if (!ifRange) return true;
  if (ifRange.startsWith('"') || ifRange.startsWith('W/')) return ifRange === etag;
  return modified !== null && Date.parse(ifRange) === Date.parse(modified);
}
