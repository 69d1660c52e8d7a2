import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Auth } from './auth/auth.js';
import { hostName, isLoopback } from './host.js';
import { HttpError, sendError } from './http-errors.js';
import type { ImagesApi } from './routes/images.js';

export interface AppParts {
  auth: Auth;
  images: ImagesApi;
  webRoot: string;
  /** Express "trust proxy": who may tell us the client address and scheme (X-Forwarded-*). */
  trustProxy: boolean | string;
  /** The address the server listens on (accepted as Host besides the loopback names). */
  host: string;
}

const PAGE_CSP = [
  "default-src 'self'",
  "img-src 'self' data: blob:",
  "style-src 'self'",
  "script-src 'self'",
  "frame-src 'self'",
  "object-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'self'",
].join('; ');

function securityHeaders(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'SAMEORIGIN');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Content-Security-Policy', PAGE_CSP);
  next();
}

/**
 * Without logins the server trusts whoever reaches it, which only the loopback
 * address makes safe. A web page elsewhere could still point its own host name
 * at 127.0.0.1 (DNS rebinding) and read our answers as same-origin: refusing
 * any Host header that is not a loopback name closes that door.
 */
function loopbackHostOnly(boundHost: string) {
  return (req: Request, res: Response, next: NextFunction) => {
    const header = req.headers.host;
    if (header) {
      const name = hostName(header);
      if (!isLoopback(name) && name !== boundHost.toLowerCase()) {
        sendError(res, new HttpError(403, `this server answers to localhost only (Host: ${header.slice(0, 100)} refused)`));
        return;
      }
    }
    next();
  };
}

export function createApp(parts: AppParts): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', parts.trustProxy);
  app.set('etag', 'strong');
  app.use(securityHeaders);
  if (!parts.auth.loginRequired) app.use(loopbackHostOnly(parts.host));

  app.use(parts.auth.routes());
  app.use('/api/images', parts.auth.require(), parts.images.handler());
  app.use('/api', (_req, res) => sendError(res, new HttpError(404, 'no such API route (see the README: /api/images ...)')));

  // The page: index.html for "/" and "/login", the bundle next to it.
  const index = join(parts.webRoot, 'index.html');
  const page = (_req: Request, res: Response) => {
    if (!existsSync(index)) {
      res.status(503).type('text/plain').send('The web page has not been built: run `npm run build` (the JSON API under /api works without it).\n');
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(index);
  };
  app.get(['/', '/login'], page);
  app.use(express.static(parts.webRoot, { index: false, redirect: false, dotfiles: 'ignore', cacheControl: true, maxAge: 0 }));
  app.use((req, res) => {
    res.status(404).type('text/plain').send(`Not found: ${req.path.slice(0, 200)}\n`);
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => sendError(res, err));
  return app;
}
