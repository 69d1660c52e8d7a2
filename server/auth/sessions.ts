import { randomBytes } from 'node:crypto';

interface Session {
  user: string;
  created: number;
  lastSeen: number;
}

const IDLE_MS = 8 * 3600_000;
const MAX_AGE_MS = 24 * 3600_000;
const MAX_SESSIONS = 10_000;

/**
 * Logged-in sessions, in memory: a restart logs everyone out, which is the
 * safe side for a read-only service. Tokens are 256 random bits; a session
 * ends after 8 hours idle or 24 hours in all.
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  create(user: string): string {
    const token = randomBytes(32).toString('base64url');
    const now = Date.now();
    this.sessions.set(token, { user, created: now, lastSeen: now });
    if (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    return token;
  }

  /** The user of a live session, or null. */
  lookup(token: string | undefined): string | null {
    if (!token) return null;
    const s = this.sessions.get(token);
    if (!s) return null;
    const now = Date.now();
    if (now - s.lastSeen > IDLE_MS || now - s.created > MAX_AGE_MS) {
      this.sessions.delete(token);
      return null;
    }
    s.lastSeen = now;
    return s.user;
  }

  destroy(token: string | undefined): void {
    if (token) this.sessions.delete(token);
  }
}
