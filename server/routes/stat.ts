import mime from 'mime-types';
import { toStatJson } from '../../parsers/vfs/index.js';
import { oneLine } from '../../parsers/errors.js';
import type { StatAnswer } from '../api-json.js';
import { symlinkTargetPath } from './listing.js';
import { flag, type ImageRoute } from './context.js';

/**
 * GET /api/images/ID/stat/PATH: every piece of metadata (`loopless stat --json`),
 * plus what the details panel needs: the MIME type a download will carry and,
 * for a symlink, where inside the image it leads and whether that exists.
 * `follow=1` reports the link's target instead (stat -L).
 */
export async function stat({ req, res, disk, path }: ImageRoute): Promise<void> {
  const entry = flag(req.query.follow) ? await disk.stat(path) : await disk.lstat(path);
  const target = entry.stat.type === 'symlink' ? await disk.readlink(entry) : undefined;
  const out: StatAnswer = { ...toStatJson(entry, target), name: entry.name };
  if (entry.stat.type === 'file') out.mime = mime.lookup(entry.name) || 'application/octet-stream';
  if (target !== undefined && entry.volume) {
    out.targetPath = symlinkTargetPath(entry.path, entry.volume, target);
    try {
      const resolved = await disk.stat(entry.path);
      out.targetType = resolved.stat.type;
      out.targetError = null;
    } catch (e) {
      out.targetType = null;
      out.targetError = oneLine(e);
    }
  }
  res.setHeader('Cache-Control', 'private, no-cache');
  res.json(out);
}
