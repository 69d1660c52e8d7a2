import cliProgress from 'cli-progress';
import { humanSize } from './format.js';

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
