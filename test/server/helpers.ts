import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/**
 * One HTTP request with the path sent exactly as written (fetch and browsers
 * would normalize "/../" away before it ever reached the server).
 */
export function rawGet(base: string, path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<RawResponse> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, text: buf.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha256File(path: string): string {
  return sha256(readFileSync(path));
}

/** URL-encode each component of an in-image path. */
export function encodePath(path: string): string {
  return path
    .split('/')
    .map((p) => encodeURIComponent(p))
    .join('/');
}

/** Wait until `check` holds (resources are freed asynchronously after a disconnect). */
export async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Unzip into `dest` with Info-ZIP (a real, independent zip reader). */
export function unzip(zipFile: string, dest: string): void {
  execFileSync('unzip', ['-q', '-o', zipFile, '-d', dest], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `zipinfo` lines: permissions string first ("lrwxrwxrwx" for symlinks), name last. */
export function zipListing(zipFile: string): string[] {
  return execFileSync('zipinfo', ['-l', zipFile], { encoding: 'utf8' }).split('\n');
}
