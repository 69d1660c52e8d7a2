import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { SessionJson } from '../api-json.js';
import type { AuditLog } from '../audit.js';
import { HttpError, sendError } from '../http-errors.js';
import { DUMMY_HASH, verifyPassword } from './passwords.js';
import { LoginRateLimiter } from './rate-limit.js';
import { SessionStore } from './sessions.js';
import type { UsersSource } from './users-file.js';

const COOKIE = 'loopless_session';

/** Who is asking: a user name (null when login is off) and the folders they are limited to (null: all). */
export interface Requester {
  user: string | null;
  folders: string[] | null;
}

export function requester(res: Response): Requester {
  return res.locals.requester as Requester;
}

export interface AuthOptions {
  loginRequired: boolean;
  users: UsersSource;
  audit: AuditLog;
}

function originHost(origin: string): string | null {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
}

function cookieToken(req: Request): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Login, logout and the session check, plus the middleware that stops every
 * other /api request without a live session. Cookies are HttpOnly and
 * SameSite=Strict, and Secure whenever the request came over TLS (directly, or
 * per X-Forwarded-Proto from a proxy trusted with --trust-proxy).
 */
export class Auth {
  private readonly sessions = new SessionStore();
  private readonly perAddress = new LoginRateLimiter(20, 15 * 60_000);
  private readonly perUser = new LoginRateLimiter(5, 15 * 60_000);

  constructor(private readonly options: AuthOptions) {}

  get loginRequired(): boolean {
    return this.options.loginRequired;
  }

  routes(): Router {
    const router = express.Router();
    router.get('/api/session', async (req, res) => {
      const who = await this.identify(req);
      const session: SessionJson = { loginRequired: this.loginRequired, user: who?.user ?? null };
      res.json(session);
    });
    router.post('/api/login', express.json({ limit: '4kb' }), (req, res) => {
      this.login(req, res).catch((e) => sendError(res, e));
    });
    router.post('/api/logout', (req, res) => {
      const token = cookieToken(req);
      const user = this.sessions.lookup(token);
      this.sessions.destroy(token);
      if (user) this.options.audit.record({ event: 'logout', user, ip: req.ip ?? null });
      res.setHeader('Set-Cookie', this.cookie(req, '', 0));
      res.status(204).end();
    });
    return router;
  }

  /** Middleware for everything behind the login. */
  require() {
    return (req: Request, res: Response, next: NextFunction) => {
      this.identify(req).then(
        (who) => {
          if (!who) {
            sendError(res, new HttpError(401, 'log in first'));
            return;
          }
          res.locals.requester = who;
          next();
        },
        (e) => sendError(res, e),
      );
    };
  }

  private async identify(req: Request): Promise<Requester | null> {
    if (!this.loginRequired) return { user: null, folders: null };
    const name = this.sessions.lookup(cookieToken(req));
    if (!name) return null;
    const record = await this.options.users.user(name);
    if (!record) {
      this.sessions.destroy(cookieToken(req)); // user removed from the users file
      return null;
    }
    return { user: name, folders: record.folders };
  }

  private async login(req: Request, res: Response): Promise<void> {
    if (!this.loginRequired) throw new HttpError(400, 'this server does not use logins (it listens on the loopback address only)');
    if (!req.is('application/json')) throw new HttpError(400, 'send the login as JSON: {"user": "...", "password": "..."}');
    // Cross-site form posts cannot send JSON, and SameSite keeps the cookie home; an Origin from elsewhere is refused too.
    const origin = req.headers.origin;
    if (origin && origin !== 'null' && originHost(origin) !== req.headers.host) throw new HttpError(403, 'login from another site refused');
    const body = req.body as { user?: unknown; password?: unknown } | undefined;
    const user = typeof body?.user === 'string' ? body.user : '';
    const password = typeof body?.password === 'string' ? body.password : '';
    if (!user || !password) throw new HttpError(400, 'user and password are required');

    const ip = req.ip ?? 'unknown';
    const wait = Math.max(this.perAddress.retryAfter(ip), this.perUser.retryAfter(user));
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      throw new HttpError(429, `too many failed logins: try again in ${Math.ceil(seconds / 60)} minute(s)`, { 'Retry-After': String(seconds) });
    }
    const record = await this.options.users.user(user);
    const ok = await verifyPassword(password, record?.hash ?? DUMMY_HASH);
    if (!ok || !record) {
      this.perAddress.fail(ip);
      this.perUser.fail(user);
      this.options.audit.record({ event: 'login-failed', user, ip });
      throw new HttpError(401, 'wrong user name or password');
    }
    this.perUser.clear(user);
    const token = this.sessions.create(user);
    this.options.audit.record({ event: 'login', user, ip });
    res.setHeader('Set-Cookie', this.cookie(req, token));
    res.json({ user });
  }

  private cookie(req: Request, value: string, maxAge?: number): string {
    const parts = [`${COOKIE}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict'];
    if (req.secure) parts.push('Secure');
    if (maxAge !== undefined) parts.push(`Max-Age=${maxAge}`);
    return parts.join('; ');
  }
}
