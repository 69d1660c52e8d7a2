import { HttpError } from './http-errors.js';

/** `/ID/VERB/PATH...` below /api/images, taken apart from the raw URL. */
export interface ImageRequest {
  /** Decoded image ID ("laptops/ana.img"), or null for the list of images. */
  id: string | null;
  /** "ls", "cat", ... or null for the image itself. */
  verb: string | null;
  /** Path inside the image as the CLI takes it ("/p2/etc/passwd"). */
  path: string;
}

/**
 * Each URL segment is percent-decoded exactly once (so `%252e%252e` stays the
 * literal name `%2e%2e`). A segment that decodes to `.` or `..`, or holds a
 * `/` or a NUL byte, is refused outright rather than normalized: there is no
 * legitimate reason to send one, and refusing keeps every path unambiguous.
 */
export function parseImageRequest(rawUrl: string): ImageRequest {
  const q = rawUrl.indexOf('?');
  const rawPath = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  const segments = rawPath.split('/').filter((s) => s !== '');
  if (segments.length === 0) return { id: null, verb: null, path: '/' };
  const id = decodeSegment(segments[0], 'image ID');
  checkImageId(id);
  if (segments.length === 1) return { id, verb: null, path: '/' };
  const verb = decodeSegment(segments[1], 'verb');
  const parts = segments.slice(2).map((s) => decodeSegment(s, 'path'));
  for (const p of parts) checkPathSegment(p);
  return { id, verb, path: '/' + parts.join('/') };
}

function decodeSegment(segment: string, what: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `malformed percent-encoding in the ${what}: ${segment.slice(0, 80)}`);
  }
}

/** IDs are relative names like "laptops/ana.img"; anything else cannot be in the catalog, so say why early. */
function checkImageId(id: string): void {
  if (id.includes('\0')) throw new HttpError(400, 'the image ID contains a NUL byte');
  if (id.startsWith('/') || /^[A-Za-z]:/.test(id)) throw new HttpError(400, 'the image ID must be relative to the served folder, not an absolute path');
  for (const part of id.split('/')) {
    if (part === '.' || part === '..' || part === '') throw new HttpError(400, `the image ID may not contain "${part || '//'}" components`);
  }
}

/** Also used for the `in=` parameter of search. */
export function checkPathSegment(part: string): void {
  if (part.includes('\0')) throw new HttpError(400, 'the path contains a NUL byte');
  if (part === '.' || part === '..') throw new HttpError(400, `the path may not contain "${part}" components`);
  if (part.includes('/')) throw new HttpError(400, 'a path component contains an encoded "/"');
}

/** A path given in a query parameter ("in=/p2/home"): same rules as one in the URL. */
export function parseQueryPath(value: unknown, name: string): string {
  if (value === undefined || value === '') return '/';
  if (typeof value !== 'string') throw new HttpError(400, `${name} must be given once`);
  const parts = value.split('/').filter((s) => s !== '');
  for (const p of parts) checkPathSegment(p);
  return '/' + parts.join('/');
}
