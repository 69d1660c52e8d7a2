import { oneLine } from '../../parsers/errors.js';
import { walk } from '../../parsers/vfs/index.js';
import { HttpError } from '../http-errors.js';
import { parseQueryPath } from '../request-path.js';
import { clientGone, intParam, writeChunk, type ImageRoute } from './context.js';
import { lsEntry, resolveDirectory } from './listing.js';

/** "*.xlsx" and "budget?" are globs over the whole name; anything else matches as a substring. Both ignore case. */
export function nameMatcher(q: string): (name: string) => boolean {
  const needle = q.normalize('NFC').toLowerCase();
  if (/[*?]/.test(needle)) {
    const source = needle.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    const re = new RegExp(`^${source}$`, 's');
    return (name) => re.test(name.normalize('NFC').toLowerCase());
  }
  return (name) => name.normalize('NFC').toLowerCase().includes(needle);
}

const PROGRESS_MS = 400;

/**
 * GET /api/images/ID/search?q=NAME&in=/p2&limit=N: names matching q below `in`,
 * streamed as NDJSON while the walk goes on. Lines are `ls --json` entries,
 * plus `{"progress":{"scanned":N,"path":"..."}}` now and then,
 * `{"warning":"..."}` for a folder that could not be read, and one closing
 * `{"done":true,"matches":N,"scanned":N,"truncated":bool}`. Closing the
 * connection cancels the walk.
 */
export async function search(route: ImageRoute): Promise<void> {
  const { req, res, disk } = route;
  const q = typeof req.query.q === 'string' ? req.query.q.trim() : '';
  if (!q) throw new HttpError(400, 'q (the name to look for) is required');
  if (q.length > 200) throw new HttpError(400, 'q is too long (200 characters at most)');
  const limit = intParam(req.query.limit, 'limit', 1000, 1, 100_000);
  const within = parseQueryPath(req.query.in, 'in');
  const start = await resolveDirectory(disk, within);
  const matches = nameMatcher(q);

  res.setHeader('Content-Type', 'application/x-ndjson; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Accel-Buffering', 'no'); // let a fronting nginx pass lines through as they come
  res.flushHeaders();
  const gone = clientGone(res);
  const line = (o: unknown) => writeChunk(res, JSON.stringify(o) + '\n', gone);

  let found = 0;
  let scanned = 0;
  let truncated = false;
  let lastProgress = Date.now();
  const warnings: string[] = [];
  const walker = walk(disk, start, { onError: (p, e) => warnings.push(oneLine(e)) });
  for await (const e of walker) {
    if (gone.aborted) return; // leaving the loop ends the walk
    scanned++;
    while (warnings.length) if (!(await line({ warning: warnings.shift() }))) return;
    if (matches(e.name)) {
      if (found >= limit) {
        truncated = true;
        break;
      }
      found++;
      if (!(await line(await lsEntry(disk, e)))) return;
    }
    if (Date.now() - lastProgress > PROGRESS_MS) {
      lastProgress = Date.now();
      if (!(await line({ progress: { scanned, path: e.path } }))) return;
    }
  }
  for (const w of warnings) if (!(await line({ warning: w }))) return;
  await line({ done: true, matches: found, scanned, truncated });
  res.end();
}
