import { toLsJson, walk, type Disk, type Entry, type LsJson } from '../../parsers/vfs/index.js';
import { ListingCache } from '../listing-cache.js';
import { clientGone, flag, intParam, type ImageRoute } from './context.js';

/** The symlink target for `ls --json`; a link that cannot be read is listed without one, as the CLI does. */
export async function lsEntry(disk: Disk, e: Entry): Promise<LsJson> {
  if (e.stat.type !== 'symlink') return toLsJson(e);
  try {
    return toLsJson(e, await disk.readlink(e));
  } catch {
    return toLsJson(e);
  }
}

/** A path that names a volume whose filesystem cannot be read: say why instead of listing a blob. */
export async function resolveDirectory(disk: Disk, path: string): Promise<Entry> {
  const start = await disk.lstat(path);
  if (start.kind === 'volume' && !start.fs) await disk.filesystem(start.volume!);
  return start;
}

export const RECURSIVE_LIMIT_DEFAULT = 10_000;
export const RECURSIVE_LIMIT_MAX = 100_000;

/**
 * GET /api/images/ID/ls/PATH: the entries `loopless ls --json` prints. A file
 * lists as itself. `recursive=1` walks below PATH, at most `limit` entries
 * (header Loopless-Truncated: true when cut); directories that cannot be read
 * are skipped and counted in Loopless-Warnings. Plain listings are cached per
 * image state, so coming back to a big folder costs nothing.
 */
export async function ls({ req, res, disk, path, signature, listings }: ImageRoute): Promise<void> {
  const all = flag(req.query.all);
  const recursive = flag(req.query.recursive);
  const limit = intParam(req.query.limit, 'limit', RECURSIVE_LIMIT_DEFAULT, 1, RECURSIVE_LIMIT_MAX);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'private, no-cache');
  const start = await resolveDirectory(disk, path);
  const cacheKey = !recursive && start.stat.type === 'dir' ? ListingCache.key(signature, start.path, all) : null;
  const cached = cacheKey ? listings.get(cacheKey) : undefined;
  if (cached) {
    imageWarnings(res, disk);
    res.send(cached);
    return;
  }

  let entries: Entry[];
  if (start.stat.type !== 'dir') entries = [start];
  else if (!recursive) entries = await disk.readdir(start, { all });
  else {
    entries = [];
    let warnings = 0;
    const gone = clientGone(res);
    for await (const e of walk(disk, start, { all, onError: () => warnings++ })) {
      if (gone.aborted) return;
      if (entries.length >= limit) {
        res.setHeader('Loopless-Truncated', 'true');
        break;
      }
      entries.push(e);
    }
    if (warnings) res.setHeader('Loopless-Warnings', String(warnings));
  }
  // One stringify of the whole array: about twice as fast as one per entry for big folders.
  const items: LsJson[] = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    items[i] = e.stat.type === 'symlink' ? await lsEntry(disk, e) : toLsJson(e);
  }
  const body = Buffer.from(JSON.stringify(items));
  if (cacheKey) listings.set(cacheKey, body);
  imageWarnings(res, disk);
  res.send(body);
}

/**
 * Loopless-Image-Warnings: how many warnings the image has so far (GET
 * /api/images/ID lists them), counting damaged records listings left out,
 * so a page can say that something here was not shown.
 */
function imageWarnings(res: ImageRoute['res'], disk: Disk): void {
  const count = disk.warnings.length;
  if (count) res.setHeader('Loopless-Image-Warnings', String(count));
}

/** Lexical target of a symlink inside the image: absolute targets start at the volume root, as the vfs resolves them. */
export function symlinkTargetPath(linkPath: string, volume: string, target: string): string {
  const base = target.startsWith('/') ? [volume] : linkPath.split('/').filter(Boolean).slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (base.length > 1) base.pop(); // never above the volume root: links stay inside the image
    } else base.push(part);
  }
  return '/' + base.join('/');
}
