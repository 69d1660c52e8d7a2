/**
 * The read-back half of verification, on its own thread: reading the target
 * and hashing it costs as much CPU as writing and hashing the image, so it
 * runs beside the writer instead of taking turns with it.
 */
import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { TargetReader } from './readback.js';
import type { VerifyReply, VerifyRequest } from './verify.js';

const { path, maxRead } = workerData as { path: string; maxRead: number };
const reader = new TargetReader(path, maxRead);
const PROGRESS_EVERY = 32 * 1024 * 1024;

parentPort!.on('message', (request: VerifyRequest | 'close') => {
  if (request === 'close') {
    reader.close();
    parentPort!.close();
    return;
  }
  const reply: VerifyReply = { id: request.id, mismatches: [], method: reader.method, error: null };
  try {
    reader.beforeReads();
    let sinceProgress = 0;
    request.items.forEach((item, index) => {
      const back = reader.read(item.start, item.length);
      const digest = createHash('sha256').update(back).digest();
      if (back.length !== item.length || !digest.equals(item.digest)) reply.mismatches.push(index);
      else sinceProgress += item.length;
      if (sinceProgress >= PROGRESS_EVERY) {
        parentPort!.postMessage({ id: request.id, progress: sinceProgress });
        sinceProgress = 0;
      }
    });
    if (sinceProgress) parentPort!.postMessage({ id: request.id, progress: sinceProgress });
    reply.method = reader.method;
  } catch (e) {
    reply.error = e instanceof Error ? `${(e as NodeJS.ErrnoException).code ?? e.name}: ${e.message}` : String(e);
  }
  parentPort!.postMessage(reply);
});
