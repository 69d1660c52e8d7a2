/**
 * The read-back half of verification, on its own thread, beside the writer:
 * reads the target back and compares each piece with what it must hold —
 * the image's own bytes read again (pread on the image's descriptor, from
 * the page cache; Buffer.equals is a memcmp), all zeros, or a sha256.
 */
import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { alignedBuffer } from './aligned.js';
import { TargetReader } from './readback.js';
import type { VerifyItem, VerifyReply, VerifyRequest } from './verify.js';

const { path, maxRead, imageFd } = workerData as { path: string; maxRead: number; imageFd: number | null };
/** Largest read-back request. */
const READ_SPAN = Math.max(maxRead, 8 * 1024 * 1024);
const reader = new TargetReader(path, READ_SPAN);
const PROGRESS_EVERY = 32 * 1024 * 1024;
/** Page-aligned: the kernel copies into it ~2.5x faster than into malloc's 16-byte-aligned memory (see parsers/source/aligned.ts). */
const imageBuffer = alignedBuffer(maxRead);
const zeros = Buffer.alloc(maxRead);

/** Whether `back` (read from the target at `item.start`) holds what the item expects. */
function matches(back: Buffer, item: VerifyItem): boolean {
  if (back.length !== item.length) return false;
  if (item.expect === 'zeros') return back.equals(zeros.subarray(0, item.length));
  if (item.expect === 'image') {
    if (imageFd === null) throw new Error('no image descriptor to compare with');
    let done = 0;
    while (done < item.length) {
      const n = readSync(imageFd, imageBuffer, done, item.length - done, item.start + done);
      if (n === 0) return false; // the image shrank: it changed
      done += n;
    }
    return back.equals(imageBuffer.subarray(0, item.length));
  }
  return createHash('sha256').update(back).digest().equals(item.expect);
}

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
        if (!matches(back, item)) reply.mismatches.push(k);
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
