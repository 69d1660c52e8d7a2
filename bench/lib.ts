import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Shared helpers for `npm run bench`: timing whole processes, side by side, in one run. */

export const repoRoot = join(import.meta.dirname, '..', '..');
export const loopless = `${process.execPath} ${join(repoRoot, 'bin', 'loopless.js')}`;
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

export function sh(cmd: string): string {
  return execFileSync('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

export interface Timing {
  /** Median wall-clock seconds. */
  seconds: number;
  /** Peak RSS in MB of the largest process in the pipeline (GNU time %M). */
  peakRssMb: number;
  runs: number[];
}

/**
 * Time a shell pipeline `runs` times (after one warm-up) and report the median.
 * Peak RSS comes from /usr/bin/time when it is installed.
 */
export function time(cmd: string, runs = 5): Timing {
  const withTime = hasTool('/usr/bin/time');
  const samples: number[] = [];
  let peak = 0;
  for (let i = 0; i <= runs; i++) {
    const started = process.hrtime.bigint();
    const r = spawnSync('sh', ['-c', withTime ? `/usr/bin/time -f 'RSS %M' sh -c '${cmd.replace(/'/g, `'\\''`)}'` : cmd], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    const secs = Number(process.hrtime.bigint() - started) / 1e9;
    if (r.status !== 0) throw new Error(`bench command failed (${r.status}): ${cmd}\n${r.stderr}`);
    const m = /RSS (\d+)/.exec(r.stderr ?? '');
    if (m) peak = Math.max(peak, Number(m[1]) / 1024);
    if (i > 0) samples.push(secs);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return { seconds: sorted[Math.floor(sorted.length / 2)], peakRssMb: peak, runs: samples };
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(process.env.BENCH_TMPDIR ?? tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function fmt(t: Timing): string {
  return `${t.seconds.toFixed(3)} s (peak RSS ${t.peakRssMb.toFixed(0)} MB)`;
}

/** "1.52x" where >1 means Loopless is faster than the reference. */
export function ratio(reference: Timing, ours: Timing): string {
  return `${(reference.seconds / ours.seconds).toFixed(2)}x`;
}

export function heading(title: string): void {
  process.stdout.write(`\n== ${title} ==\n`);
}

export function row(label: string, value: string): void {
  process.stdout.write(`  ${label.padEnd(44)} ${value}\n`);
}
