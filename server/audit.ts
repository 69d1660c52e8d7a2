import { createWriteStream, type WriteStream } from 'node:fs';
import type { Writable } from 'node:stream';

/** One audit event; `time` is added when it is written. */
export interface AuditEvent {
  event: 'download' | 'zip' | 'login' | 'login-failed' | 'logout';
  user: string | null;
  ip: string | null;
  image?: string;
  path?: string;
  /** Bytes actually sent to the client. */
  bytes?: number;
  /** False when the client went away or a read failed before the end. */
  complete?: boolean;
  status?: number;
  range?: string;
  files?: number;
  /** Entries left out of a zip or cut short (listed in its LOOPLESS-ERRORS.txt). */
  problems?: number;
  error?: string;
}

/**
 * The audit trail: one JSON object per line for every file download, zip and
 * login, written to a file (appended) or to a stream (stdout by default).
 */
export class AuditLog {
  private readonly out: Writable;
  private readonly owned: WriteStream | null;

  constructor(target: string | Writable) {
    if (typeof target === 'string') {
      this.owned = createWriteStream(target, { flags: 'a', mode: 0o600 });
      this.out = this.owned;
    } else {
      this.owned = null;
      this.out = target;
    }
  }

  record(event: AuditEvent): void {
    this.out.write(JSON.stringify({ time: new Date().toISOString(), ...event }) + '\n');
  }

  close(): Promise<void> {
    const owned = this.owned;
    if (!owned) return Promise.resolve();
    return new Promise((resolve) => owned.end(resolve));
  }
}
