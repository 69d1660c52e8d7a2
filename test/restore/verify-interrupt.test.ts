/**
 * Verification catches a damaged target (a fault injected between the write
 * and the read-back by the preloaded hook), retries once, and fails with
 * exit 8 naming the range; an interrupted restore stops cleanly and says
 * what the target holds; progress and the confirmation prompt on a terminal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { Disk } from '../../parsers/vfs/index.js';
import { hasTool, run, tempDir } from '../support/run.js';
import { BIN, buildJunkDisk, bytesOf, expectSameDisk, jsonLines, loopless, MiB, startLoopless, type JunkDisk } from './helpers.js';

const tmp = tempDir('loopless-restore-verify-');
afterAll(() => tmp.cleanup());

let junk: JunkDisk;
/** Big enough (> 32 MiB written) for the terminal progress bar. */
let big: JunkDisk;
beforeAll(() => {
  junk = buildJunkDisk(tmp.dir, 'disk.img');
  big = buildJunkDisk(tmp.dir, 'big.img', { p1MiB: 64, diskMiB: 72, extraMiB: 36 });
});

describe('verification', () => {
  it('a byte flipped on the target before the read-back is found, rewritten, and the restore succeeds', async () => {
    const target = tmp.path('once.img');
    const r = loopless(['restore', junk.path, target, '--json'], { fault: { LOOPLESS_TEST_FAULT: 'corrupt-once' } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/fault-hook: flipped byte/);
    const summary = jsonLines(r.stdout).at(-1)!;
    expect(summary.retries).toHaveLength(1);
    await expectSameDisk(junk.path, target);
  });

  it('damage that comes back after the rewrite fails the restore with exit 8 and the range', () => {
    const r = loopless(['restore', junk.path, tmp.path('always.img'), '--json'], { fault: { LOOPLESS_TEST_FAULT: 'corrupt-always' } });
    expect(r.status).toBe(8);
    const flipped = [...r.stderr.matchAll(/flipped byte (\d+)/g)].map((m) => Number(m[1]));
    expect(flipped.length).toBeGreaterThanOrEqual(2);
    const error = jsonLines(r.stdout).at(-1)!;
    expect(error).toMatchObject({ type: 'error', exitCode: 8 });
    // The range named is the one the fault hit.
    expect(flipped[0]).toBeGreaterThanOrEqual(error.range.start);
    expect(flipped[0]).toBeLessThan(error.range.start + error.range.length);
    expect(r.stderr).toContain(`target bytes ${error.range.start}..${error.range.start + error.range.length}`);
  });

  it('an image modified during the restore is caught: the read-back compares with the image file itself', () => {
    const image = tmp.path('changing.img');
    copyFileSync(junk.path, image);
    const r = loopless(['restore', image, tmp.path('changing-target.img'), '--json'], {
      fault: { LOOPLESS_TEST_FAULT: 'corrupt-once', LOOPLESS_TEST_FAULT_FILE: image },
    });
    expect(r.stderr).toMatch(/fault-hook: flipped byte/);
    expect(r.status).toBe(8);
    expect(r.stderr).toMatch(/the image changed while it was being restored/);
  });

  it('without verification the same damage goes unnoticed (so it is the read-back that catches it)', () => {
    const target = tmp.path('unverified.img');
    const r = loopless(['restore', junk.path, target, '--no-verify', '--json'], { fault: { LOOPLESS_TEST_FAULT: 'corrupt-always' } });
    expect(r.status, r.stderr).toBe(0);
    expect(jsonLines(r.stdout).at(-1)).toMatchObject({ verified: 0, readBack: null });
    const at = Number(/flipped byte (\d+)/.exec(r.stderr)![1]);
    expect(bytesOf(target, at, 1).equals(bytesOf(junk.path, at, 1))).toBe(false);
  });
});

describe('interruption', () => {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`${signal} stops after syncing and says the target has no partition table yet`, async () => {
      // A used target holding a valid copy of the disk: after the interruption it must not look whole.
      const target = tmp.path(`interrupted-${signal}.img`);
      copyFileSync(junk.path, target);
      run('truncate', ['-s', String(big.size), target]);
      const job = startLoopless(['restore', big.path, target, '--yes', '--json'], { fault: { LOOPLESS_TEST_FAULT: 'slow', LOOPLESS_TEST_DELAY_MS: '15' } });
      await new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if (jsonLines(job.output()).some((e) => e.type === 'progress' && e.written > 4 * MiB)) {
            clearInterval(poll);
            resolve();
          }
        }, 20);
      });
      job.child.kill(signal);
      const r = await job.done;
      expect(r.status).toBe(code);
      expect(r.stderr).toMatch(/interrupted: .* is incomplete: \d+ of \d+ bytes were written/);
      expect(r.stderr).toMatch(/zeroed at the start and are only written at the end, so no system will mount or recognize it/);
      expect(r.stderr).toMatch(/Run the same command again/);
      const summary = jsonLines(r.stdout).at(-1)!;
      expect(summary).toMatchObject({ type: 'summary', status: 'interrupted' });
      expect(summary.written).toBeGreaterThan(4 * MiB);
      expect(summary.written).toBeLessThan(40 * MiB);
      expect(bytesOf(target, 0, 1024).equals(Buffer.alloc(1024))).toBe(true);
      const disk = await Disk.open(target);
      try {
        expect(disk.table.table).toBe('none');
      } finally {
        await disk.close();
      }
      // And running it again restores it.
      const again = loopless(['restore', big.path, target, '--yes']);
      expect(again.status, again.stderr).toBe(0);
      await expectSameDisk(big.path, target);
    });
  }
});

describe.skipIf(!hasTool('script'))('on a terminal', () => {
  /** Run the CLI under a pseudo-terminal (util-linux script), typing `input`. */
  function onTerminal(args: string[], input: string, env: Record<string, string> = {}) {
    const command = [process.execPath, '--import', `${import.meta.dirname}/fault-hook.mjs`, BIN, ...args].map((a) => `'${a}'`).join(' ');
    const r = spawnSync('script', ['-qec', command, '/dev/null'], { input, encoding: 'utf8', env: { ...process.env, ...env } });
    return { status: r.status, output: r.stdout };
  }

  it('asks before overwriting, takes only "yes", and shows a bar with bytes, rate and ETA', async () => {
    const target = tmp.path('tty.img');
    copyFileSync(junk.path, target);
    run('truncate', ['-s', String(big.size), target]);
    const before = readFileSync(target);
    const no = onTerminal(['restore', big.path, target], 'no\n');
    expect(no.status).toBe(6);
    expect(no.output).toMatch(/existing file, 72M/);
    expect(no.output).toMatch(/current partition table: gpt/);
    expect(no.output).toMatch(/Type "yes" to continue/);
    expect(readFileSync(target).equals(before)).toBe(true);

    const yes = onTerminal(['restore', big.path, target], 'yes\n', { LOOPLESS_TEST_FAULT: 'slow', LOOPLESS_TEST_DELAY_MS: '5' });
    expect(yes.status, yes.output).toBe(0);
    expect(yes.output).toMatch(/restoring \[[^\]]*\] +\d+% [\d.]+[KMG]\/[\d.]+[KMG] [\d.]+[KMGB]+\/s ETA/);
    expect(yes.output).toMatch(/Restored .* in [\d.]+ s/);
    await expectSameDisk(big.path, target);
  });
});
