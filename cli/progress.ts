import type cliProgressModule from 'cli-progress';
import { createRequire } from 'node:module';
import { humanSize } from './format.js';

/**
 * cli-progress is loaded only when a bar is shown: importing it costs ~20 ms
 * of start-up (measured), paid by every `cat`/`ls` whose output is a pipe.
 */
const loadCliProgress = () => createRequire(import.meta.url)('cli-progress') as typeof cliProgressModule;

export interface Progress {
  update(bytes: number): void;
  stop(): void;
}

const silent: Progress = { update() {}, stop() {} };

/**
 * A byte progress bar (bytes, rate, ETA) on stderr when stderr is a terminal
 * and the work is big enough to watch; silent otherwise, so scripts and
 * pipes get clean output.
 */
export function byteProgress(total: number, label: string, options: { enabled?: boolean } = {}): Progress {
  const enabled = options.enabled ?? (process.stderr.isTTY === true && total >= 32 * 1024 * 1024);
  if (!enabled) return silent;
  const cliProgress = loadCliProgress();
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% {done}/{size} {rate}/s ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  bar.start(total, 0, { done: humanSize(0), size: humanSize(total), rate: humanSize(0) });
  return {
    update(bytes: number) {
      const secs = Math.max((Date.now() - started) / 1000, 0.001);
      bar.update(bytes, { done: humanSize(bytes), rate: humanSize(bytes / secs) });
    },
    stop() {
      bar.stop();
    },
  };
}
