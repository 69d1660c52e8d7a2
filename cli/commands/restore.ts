import type { Command } from 'commander';
import { createInterface } from 'node:readline/promises';
import { oneLine } from '../../parsers/errors.js';
import { VerifyError } from '../../restore/errors.js';
import { restoreImage, type RestoreEvent, type RestoreSummary } from '../../restore/restore.js';
import { exitCodeFor, EXIT, warn } from '../exit.js';
import { humanSize } from '../format.js';
import { byteProgress, type Progress } from '../progress.js';

interface RestoreCliOptions {
  yes?: boolean;
  verify: boolean;
  bmap?: string;
  json?: boolean;
  zeroUnused?: boolean;
  allowSmaller?: boolean;
}

/** Minimum time between two --json progress lines. */
const JSON_PROGRESS_INTERVAL_MS = 250;

export function register(program: Command): void {
  program
    .command('restore')
    .description('write a disk image to a drive or a file: only used blocks, bmap-compatible, verified')
    .argument('<image>', 'disk image (raw, or .gz/.xz/.zst/.bz2 compressed)')
    .argument('<target>', 'block device (/dev/sdX) or file to write the disk to')
    .option('-y, --yes', 'do not ask before overwriting a drive or an existing file')
    .option('--no-verify', 'skip reading the written data back')
    .option('--bmap <file>', 'copy the blocks a bmaptool block map lists (versions 1.0-2.0; checksums are checked)')
    .option('--json', 'print progress events and the summary as JSON lines on stdout')
    .option('--zero-unused', 'zero everything not restored (free space, the rest of a larger target) instead of leaving old data')
    .option('--allow-smaller', 'restore onto a target smaller than the image when everything written fits')
    .addHelpText(
      'after',
      `
Writes the partition-table areas, everything outside the filesystems Loopless reads, and
each filesystem's allocated blocks; free space is skipped. A new file target stays sparse.
On a used drive the skipped areas keep their old contents (invisible to the restored
filesystems) unless --zero-unused. A GPT is moved to the end of a larger target.
Refuses targets that are mounted, held, the image itself, or too small. Exit code 8 when
the read-back differs from the image; 130/143 when interrupted (the target is then left
without a partition table).`,
    )
    .action(async (image: string, target: string, opts: RestoreCliOptions) => {
      process.exitCode = await restoreCommand(image, target, opts);
    });
}

async function restoreCommand(image: string, target: string, opts: RestoreCliOptions): Promise<number> {
  const json = opts.json === true;
  const controller = new AbortController();
  let signalName: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalName) {
      process.stderr.write(`loopless: ${sig} again: stopping now; ${target} is incomplete and has no valid partition table\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    signalName = sig;
    if (!json) process.stderr.write(`\nloopless: ${sig}: finishing the current write and syncing ${target} ...\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const reporter = json ? jsonReporter() : ttyReporter();
  try {
    const summary = await restoreImage({
      image,
      target,
      yes: opts.yes,
      verify: opts.verify,
      bmap: opts.bmap,
      zeroUnused: opts.zeroUnused,
      allowSmaller: opts.allowSmaller,
      confirm: process.stdin.isTTY && process.stderr.isTTY && !json ? askYes : undefined,
      signal: controller.signal,
      onEvent: reporter.event,
    });
    reporter.done();
    if (json) process.stdout.write(JSON.stringify(summary) + '\n');
    else process.stdout.write(renderSummary(summary));
    if (summary.status === 'interrupted') {
      process.stderr.write(`loopless: interrupted: ${summary.targetState}\n`);
      return signalName === 'SIGTERM' ? 143 : 130;
    }
    return EXIT.ok;
  } catch (e) {
    reporter.done();
    const code = e instanceof VerifyError ? EXIT.verifyFailed : exitCodeFor(e);
    if (json) process.stdout.write(JSON.stringify({ type: 'error', message: oneLine(e), exitCode: code, range: e instanceof VerifyError ? e.range : undefined }) + '\n');
    // Multi-line messages (the target description) are kept as they are.
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`loopless: ${message}\n`);
    return code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

interface Reporter {
  event(e: RestoreEvent): void;
  done(): void;
}

function jsonReporter(): Reporter {
  const started = Date.now();
  let last = 0;
  let lastPhase = '';
  return {
    event(e) {
      if (e.type === 'progress') {
        const now = Date.now();
        const finished = e.phase === 'write' ? e.written === e.total : e.verified === e.total;
        if (now - last < JSON_PROGRESS_INTERVAL_MS && e.phase === lastPhase && !finished) return;
        last = now;
        lastPhase = e.phase;
        const seconds = Math.max((now - started) / 1000, 0.001);
        const done = e.phase === 'write' ? e.written : e.verified;
        const rate = done / seconds;
        process.stdout.write(JSON.stringify({ ...e, rate: Math.round(rate), etaSeconds: rate > 0 ? Math.round((e.total - done) / rate) : null }) + '\n');
        return;
      }
      process.stdout.write(JSON.stringify(e) + '\n');
    },
    done() {},
  };
}

function ttyReporter(): Reporter {
  let bar: Progress | null = null;
  let verifyBar: Progress | null = null;
  let writing = true;
  return {
    event(e) {
      if (e.type === 'warning') warn(e.message);
      else if (e.type === 'phase') {
        if (e.phase === 'measure' || e.phase === 'zero') process.stderr.write(`loopless: ${e.message}\n`);
      } else if (e.phase === 'write' || writing) {
        bar ??= byteProgress(e.total, 'restoring');
        bar.update(e.written);
        if (e.written === e.total && writing) {
          writing = false;
          bar.stop();
        }
      } else {
        // Read-back of the last batches, after the writing is done.
        verifyBar ??= byteProgress(e.total, 'verifying');
        verifyBar.update(e.verified);
      }
    },
    done() {
      bar?.stop();
      verifyBar?.stop();
    },
  };
}

async function askYes(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    // Ctrl-C or Ctrl-D at the prompt means no (readline would otherwise just pause and wait).
    const answer = await new Promise<string | null>((resolve) => {
      rl.once('SIGINT', () => resolve(null));
      rl.once('close', () => resolve(null));
      rl.question(`${question}\nType "yes" to continue: `).then(resolve, () => resolve(null));
    });
    return answer?.trim().toLowerCase() === 'yes';
  } finally {
    rl.close();
  }
}

function renderSummary(s: RestoreSummary): string {
  const lines = [
    `${s.status === 'ok' ? 'Restored' : 'Interrupted restoring'} ${s.image} to ${s.target} in ${s.seconds.toFixed(1)} s`,
    `  copied     ${humanSize(s.copied)} of ${humanSize(s.imageSize)} (${humanSize(s.skipped)} unallocated, skipped; ${s.basis === 'bmap' ? 'from the block map' : 'from the allocation bitmaps'})`,
    `  written    ${humanSize(s.written)} at ${humanSize(s.writeRate)}/s${s.written < s.copied ? ' (zero runs left as holes)' : ''}${s.written > 0 && s.writtenDirect === 0 ? ', through the page cache (the target refuses O_DIRECT)' : ''}`,
    `  verified   ${s.readBack ? `${humanSize(s.verified)}, ${s.readBack}` : 'no (--no-verify)'}${s.retries.length ? `; ${s.retries.length} range(s) rewritten after a mismatch` : ''}`,
    `  throughput ${humanSize(s.throughput)}/s of image`,
  ];
  if (s.gptRelocated) lines.push(`  GPT        backup header and partition array moved to the end of the ${humanSize(s.targetSize)} target`);
  if (s.zeroUnused !== 'none') lines.push(`  unused     zeroed (${{ discard: 'blkdiscard --zeroout', truncate: 'file truncated to a hole', write: 'zeros written' }[s.zeroUnused]})`);
  else if (s.targetKind === 'block' || s.targetKind === 'file') lines.push('  unused     left as it was (old data stays in skipped areas; --zero-unused clears it)');
  if (s.streamed) lines.push(`  streamed   ${s.streamed.compression}, ${s.streamed.passes} decompression pass(es)`);
  return lines.join('\n') + '\n';
}
