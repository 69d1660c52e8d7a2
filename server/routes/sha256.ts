import { createHash } from 'node:crypto';
import { fileEntry } from './cat.js';
import { clientGone, type ImageRoute } from './context.js';

/**
 * GET /api/images/ID/sha256/PATH: `{"path","size","sha256"}`, computed on
 * demand by reading the file through. Closing the connection stops the read.
 */
export async function sha256(route: ImageRoute): Promise<void> {
  const { res, disk } = route;
  const entry = await fileEntry(route);
  const gone = clientGone(res);
  const hash = createHash('sha256');
  // Leaving the loop (client gone) destroys the read stream.
  for await (const chunk of disk.createReadStream(entry)) {
    if (gone.aborted) return;
    hash.update(chunk as Buffer);
  }
  res.setHeader('Cache-Control', 'private, no-cache');
  res.json({ path: entry.path, size: entry.stat.size, sha256: hash.digest('hex') });
}
