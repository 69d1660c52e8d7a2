/** The writer's side of verification: hands synced batches to the verify worker. */
import { Worker } from 'node:worker_threads';
import type { ReadBackMethod } from './readback.js';

export interface VerifyItem {
  start: number;
  length: number;
  /** sha256 of what was written there. */
  digest: Uint8Array;
}

export interface VerifyRequest {
  id: number;
  items: VerifyItem[];
}

export interface VerifyReply {
  id: number;
  /** Indexes into the request's items that read back differently. */
  mismatches: number[];
  method: ReadBackMethod;
  error: string | null;
}

interface Pending {
  resolve(reply: VerifyReply): void;
  reject(e: Error): void;
  onProgress(bytes: number): void;
}

/** One read-back thread. */
class VerifyWorker {
  method: ReadBackMethod | null = null;
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | null = null;

  constructor(path: string, maxRead: number) {
    this.worker = new Worker(new URL('./verify-worker.js', import.meta.url), { workerData: { path, maxRead } });
    this.worker.on('message', (m: VerifyReply | { id: number; progress: number }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      if ('progress' in m) {
        p.onProgress(m.progress);
        return;
      }
      this.pending.delete(m.id);
      this.method = m.method;
      if (m.error) p.reject(new Error(`reading ${path} back failed: ${m.error}`));
      else p.resolve(m);
    });
    const fail = (e: Error) => {
      this.failure ??= e;
      for (const p of this.pending.values()) p.reject(this.failure);
      this.pending.clear();
    };
    this.worker.on('error', (e) => fail(new Error(`reading ${path} back failed: ${e.message}`)));
    this.worker.on('exit', () => fail(new Error(`the verify worker for ${path} stopped`)));
  }

  check(items: VerifyItem[], onProgress: (bytes: number) => void): Promise<VerifyReply> {
    const id = this.nextId++;
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, items } satisfies VerifyRequest);
    });
  }

  async close(): Promise<void> {
    if (this.failure) return;
    this.worker.postMessage('close');
    await new Promise<void>((resolve) => {
      this.worker.once('exit', () => resolve());
      setTimeout(() => void this.worker.terminate().then(() => resolve()), 2000).unref();
    });
  }
}

/**
 * Reads batches back on two threads, each taking half of a batch: hashing
 * what is read back costs as much CPU as the writer's own hashing, and
 * with one thread the read-back trails the writing (measured on 2 cores).
 */
export class Verifier {
  private readonly workers: VerifyWorker[];

  constructor(path: string, maxRead: number, threads = 2) {
    this.workers = Array.from({ length: threads }, () => new VerifyWorker(path, maxRead));
  }

  get method(): ReadBackMethod | null {
    return this.workers.find((w) => w.method)?.method ?? null;
  }

  /** Read the items back (they must be synced) and say which differ (indexes into `items`). */
  async check(items: VerifyItem[], onProgress: (bytes: number) => void): Promise<VerifyReply> {
    const share = Math.ceil(items.length / this.workers.length);
    const replies = await Promise.all(this.workers.map((w, i) => w.check(items.slice(i * share, (i + 1) * share), onProgress)));
    return {
      id: 0,
      mismatches: replies.flatMap((r, i) => r.mismatches.map((m) => m + i * share)),
      method: replies.find((r) => r.method === 'dropped-cache')?.method ?? replies[0].method,
      error: null,
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
