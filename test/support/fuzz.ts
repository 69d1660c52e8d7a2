import { Worker } from 'node:worker_threads';
import { rng } from './rng.js';

/**
 * Mutation fuzzer for filesystem parsers. Each round copies a volume image,
 * overwrites a few bytes inside the given metadata ranges (seeded, so a
 * failure can be replayed), and has a worker walk the whole tree. A round
 * fails on any error that is not a typed LooplessError (a crash), on a hang
 * (no answer within `roundTimeoutMs`), or on the worker running out of its
 * bounded heap.
 */
export interface FuzzOptions {
  /** The filesystem's bytes (a whole volume). */
  volume: Buffer;
  /** Byte ranges holding metadata worth mutating. */
  ranges: { start: number; length: number }[];
  rounds: number;
  seed: number;
  mutationsPerRound?: number;
  roundTimeoutMs?: number;
}

export interface FuzzResult {
  rounds: number;
  opened: number;
  failures: string[];
}

const INTERESTING = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe];

function mutate(volume: Buffer, ranges: FuzzOptions['ranges'], random: () => number, count: number): Buffer {
  // Buffer.alloc never uses the shared pool, so the copy's ArrayBuffer can be transferred.
  const copy = Buffer.alloc(volume.length);
  volume.copy(copy);
  const total = ranges.reduce((s, r) => s + r.length, 0);
  for (let i = 0; i < count && total > 0; i++) {
    let pick = Math.floor(random() * total);
    const r = ranges.find((x) => (pick < x.length ? true : ((pick -= x.length), false)))!;
    const pos = r.start + pick;
    if (pos >= copy.length) continue;
    const how = random();
    if (how < 0.4) copy[pos] = Math.floor(random() * 256);
    else if (how < 0.8) copy[pos] = INTERESTING[Math.floor(random() * INTERESTING.length)];
    else copy[pos] ^= 1 << Math.floor(random() * 8);
  }
  return copy;
}

function startWorker(): Promise<Worker> {
  const w = new Worker(new URL('./fuzz-worker.mjs', import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: 512 } });
  return new Promise((resolve, reject) => {
    w.once('message', () => resolve(w));
    w.once('error', reject);
  });
}

export async function fuzzVolume(opts: FuzzOptions): Promise<FuzzResult> {
  const random = rng(opts.seed);
  const timeout = opts.roundTimeoutMs ?? 10_000;
  const failures: string[] = [];
  let opened = 0;
  let worker = await startWorker();
  try {
    for (let round = 0; round < opts.rounds; round++) {
      const bytes = mutate(opts.volume, opts.ranges, random, opts.mutationsPerRound ?? 8);
      const outcome = await new Promise<{ crashes: string[]; opened: boolean } | string>((resolve) => {
        const timer = setTimeout(() => resolve(`hang: no answer within ${timeout} ms`), timeout);
        const onMessage = (m: { crashes: string[]; opened: boolean }) => {
          cleanup();
          resolve(m);
        };
        const onError = (e: Error) => {
          cleanup();
          resolve(`worker died: ${e.message}`);
        };
        const onExit = (code: number) => {
          cleanup();
          resolve(`worker exited with ${code} (out of memory?)`);
        };
        function cleanup() {
          clearTimeout(timer);
          worker.off('message', onMessage).off('error', onError).off('exit', onExit);
        }
        worker.on('message', onMessage).on('error', onError).on('exit', onExit);
        worker.postMessage({ bytes }, [bytes.buffer as ArrayBuffer]);
      });
      if (typeof outcome === 'string') {
        failures.push(`seed ${opts.seed} round ${round}: ${outcome}`);
        await worker.terminate();
        worker = await startWorker();
        continue;
      }
      if (outcome.opened) opened++;
      for (const c of outcome.crashes) failures.push(`seed ${opts.seed} round ${round}: ${c}`);
    }
  } finally {
    await worker.terminate();
  }
  return { rounds: opts.rounds, opened, failures };
}
