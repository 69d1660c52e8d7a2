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
/** Largest read-back request. */
const READ_SPAN = Math.max(maxRead, 8 * 1024 * 1024);
const reader = new TargetReader(path, READ_SPAN);
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
    const { items } = request;
    for (let i = 0; i < items.length; ) {
      // Adjacent pieces are read back together: fewer, larger reads keep up better
      // with the writeback competing for the same device.
      let j = i + 1;
      while (j < items.length && items[j].start === items[j - 1].start + items[j - 1].length && items[j].start + items[j].length - items[i].start <= READ_SPAN) j++;
      const span = reader.read(items[i].start, items[j - 1].start + items[j - 1].length - items[i].start);
      for (let k = i; k < j; k++) {
        const item = items[k];
        const from = item.start - items[i].start;
        const back = span.subarray(from, from + item.length);
        const digest = createHash('sha256').update(back).digest();
        if (back.length !== item.length || !digest.equals(item.digest)) reply.mismatches.push(k);
        else sinceProgress += item.length;
      }
      if (sinceProgress >= PROGRESS_EVERY) {
        parentPort!.postMessage({ id: request.id, progress: sinceProgress });
        sinceProgress = 0;
      }
      i = j;
    }
    if (sinceProgress) parentPort!.postMessage({ id: request.id, progress: sinceProgress });
    reply.method = reader.method;
  } catch (e) {
    reply.error = e instanceof Error ? `${(e as NodeJS.ErrnoException).code ?? e.name}: ${e.message}` : String(e);
  }
  parentPort!.postMessage(reply);
});
