import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { ExistsError } from '../../parsers/errors.js';
import { renderBmap } from '../../restore/bmap.js';
import { openInput } from '../../restore/input.js';
import { planFromAllocation } from '../../restore/plan.js';
import { totalLength } from '../../restore/ranges.js';
import { warn } from '../exit.js';
import { byteProgress } from '../progress.js';

export function register(program: Command): void {
  program
    .command('bmap')
    .description("write a bmaptool 2.0 block map of the image from its filesystems' allocation (for bmaptool copy / restore --bmap)")
    .argument('<image>', 'disk image (raw, or .gz/.xz/.zst/.bz2 compressed: the map describes the decompressed disk)')
    .option('-o, --output <file>', 'write the map to this file instead of standard output')
    .option('-f, --force', 'overwrite an existing output file')
    .action(async (image: string, opts: { output?: string; force?: boolean }) => {
      if (opts.output && !opts.force && existsSync(opts.output)) throw new ExistsError(opts.output);
      const input = await openInput(image, { onSizePass: (c) => warn(`${c}-compressed image: decompressing once to learn its size`) });
      const { disk } = input;
      try {
        const plan = await planFromAllocation(disk);
        for (const w of disk.warnings) warn(w);
        for (const v of plan.volumes) if (v.how === 'whole' && v.fs) warn(`${v.name} (${v.fs}) is mapped whole: ${v.reason}`);
        const progress = byteProgress(totalLength(plan.copy), 'hashing');
        let text: string;
        try {
          text = await renderBmap(disk.source, plan.copy, (n) => progress.update(n));
        } finally {
          progress.stop();
        }
        if (!opts.output) {
          process.stdout.write(text);
          return;
        }
        // Whole or nothing: a half-written map must never be mistaken for a good one.
        const temp = `${opts.output}.loopless-${process.pid}.tmp`;
        try {
          await writeFile(temp, text);
          await rename(temp, opts.output);
        } catch (e) {
          await unlink(temp).catch(() => {});
          throw e;
        }
      } finally {
        await disk.close();
      }
    });
}
