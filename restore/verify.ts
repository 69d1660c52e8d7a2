/** The writer's side of verification: hands synced batches to the verify worker. */
import { Worker } from 'node:worker_threads';
import type { ReadBackMethod } from './readback.js';

export interface VerifyItem {
  start: number;
  length: number;
  /**
   * What the target must hold there: the sha256 of what was written; 'image':
   * the image's bytes at the same offsets, read again from the image file
   * (a plain raw file, so pieces map 1:1 to image offsets) and compared byte
   * for byte; 'zeros': all zero.
   */
  expect: Uint8Array | 'image' | 'zeros';
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

  constructor(path: string, maxRead: number, imageFd: number | null) {
    this.worker = new Worker(new URL('./verify-worker.js', import.meta.url), { workerData: { path, maxRead, imageFd } });
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
 * Reads batches back on two threads, each taking half of a batch: with one
 * thread the read-back trails the writing (measured on 2 cores, when every
 * piece was hashed; comparing with the image's bytes costs far less CPU).
 * `imageFd`: the image file's descriptor (threads share the process's
 * descriptors), for items that expect the image's own bytes.
 */
export class Verifier {
  private readonly workers: VerifyWorker[];

  constructor(path: string, maxRead: number, imageFd: number | null, threads = 2) {
    this.workers = Array.from({ length: threads }, () => new VerifyWorker(path, maxRead, imageFd));
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
