import type { Request, Response } from 'express';
import { isLooplessError, oneLine } from '../../parsers/errors.js';
import type { ImageSummary } from '../api-json.js';
import type { AuditLog } from '../audit.js';
import { requester, type Requester } from '../auth/auth.js';
import { isInside, type ImageCatalog, type ImageFile } from '../catalog.js';
import { fileSignature, type DiskPool } from '../disk-pool.js';
import { HttpError, sendError } from '../http-errors.js';
import { ListingCache } from '../listing-cache.js';
import { parseImageRequest } from '../request-path.js';
import { cat } from './cat.js';
import type { ImageRoute } from './context.js';
import { ls } from './listing.js';
import { search } from './search.js';
import { sha256 } from './sha256.js';
import { stat } from './stat.js';
import { zip } from './zip.js';

const VERBS: Record<string, (route: ImageRoute) => Promise<void>> = { ls, stat, cat, zip, search, sha256 };

export interface ImagesOptions {
  catalog: ImageCatalog;
  pool: DiskPool;
  audit: AuditLog;
}

function mayOpen(who: Requester, image: ImageFile): boolean {
  return who.folders === null || who.folders.some((f) => isInside(image.path, f));
}

/** Host paths never reach the client: error messages name the image by its ID. */
function scrubber(image: ImageFile): (message: string) => string {
  return (m) => m.split(image.path).join(image.id);
}

/**
 * Everything under /api/images. The URL is taken apart by hand (see
 * request-path.ts) because an ID may hold an encoded "/" and every segment
 * must be decoded exactly once.
 */
export class ImagesApi {
  /** Image summaries by path, valid while the file keeps its signature. */
  private readonly summaries = new Map<string, { signature: string; summary: ImageSummary }>();
  private readonly listings = new ListingCache();

  constructor(private readonly options: ImagesOptions) {}

  handler() {
    return (req: Request, res: Response) => {
      this.handle(req, res).catch((e) => sendError(res, e));
    };
  }

  private async handle(req: Request, res: Response): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'the image API is read-only: use GET', { Allow: 'GET, HEAD' });
    const who = requester(res);
    const r = parseImageRequest(req.url);
    if (r.id === null) {
      res.setHeader('Cache-Control', 'no-cache');
      res.json(await this.list(who));
      return;
    }
    const image = await this.options.catalog.get(r.id);
    if (!image) throw new HttpError(404, `no such image: ${r.id}`);
    if (!mayOpen(who, image)) throw new HttpError(403, `${who.user ?? 'you'} may not open ${r.id}`);
    const handler = r.verb === null ? null : VERBS[r.verb];
    if (r.verb !== null && !handler) throw new HttpError(404, `unknown action "${r.verb}" (use ${Object.keys(VERBS).join(', ')})`);

    let lease;
    try {
      lease = await this.options.pool.acquire(image.path, image.folder);
    } catch (e) {
      // Removed since the folder was last scanned: as gone as an ID never seen.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new HttpError(404, `no such image: ${r.id}`);
      sendError(res, e, scrubber(image));
      return;
    }
    try {
      if (!handler) {
        res.setHeader('Cache-Control', 'no-cache');
        res.json(await lease.disk.info());
        return;
      }
      await handler({ req, res, image, disk: lease.disk, signature: lease.signature, path: r.path, who, audit: this.options.audit, listings: this.listings });
    } catch (e) {
      sendError(res, e, scrubber(image));
    } finally {
      lease.release();
    }
  }

  private async list(who: Requester): Promise<ImageSummary[]> {
    const out: ImageSummary[] = [];
    for (const image of await this.options.catalog.list()) {
      if (mayOpen(who, image)) out.push(await this.summary(image));
    }
    return out;
  }

  private async summary(image: ImageFile): Promise<ImageSummary> {
    const base = { id: image.id, fileSize: image.size, modified: new Date(image.mtimeMs).toISOString() };
    let signature: string;
    try {
      signature = await fileSignature(image.path);
    } catch (e) {
      return { ...base, size: image.size, table: null, error: scrubber(image)(`cannot read the image file: ${oneLine(e)}`), code: 'IO' };
    }
    const known = this.summaries.get(image.path);
    if (known?.signature === signature) return known.summary;
    let summary: ImageSummary;
    try {
      const lease = await this.options.pool.acquire(image.path, image.folder);
      try {
        summary = { ...base, size: lease.disk.size, table: lease.disk.table.table, error: null, code: null };
      } finally {
        lease.release();
      }
    } catch (e) {
      const message = scrubber(image)(oneLine(e));
      summary = { ...base, size: image.size, table: null, error: message, code: isLooplessError(e) ? e.code : 'IO' };
    }
    this.summaries.set(image.path, { signature, summary });
    return summary;
  }
}
