/**
 * Mutation fuzzing of ext metadata: superblock, group descriptors, the used
 * part of the inode table, directory blocks and extent/indirect blocks, on
 * small images of both mapping schemes. Fixed seeds so a failure replays.
 * The worker imports the compiled parsers: run `npx tsc -p .` first (npm test does).
 */
import { existsSync, mkdirSync, openSync, closeSync, ftruncateSync, readFileSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzVolume } from '../../support/fuzz.js';
import { debugfsBlocks, debugfsSections, makeImage, removeDir, run, tempDir } from './helpers.js';

/** Fixed so failures replay; FUZZ_SEED=n explores other mutations (a failure names its seed and round). */
const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);
/** FUZZ_SCALE=n runs n times the rounds, for a longer hunt outside the suite. */
const ROUNDS_SCALE = Number(process.env.FUZZ_SCALE ?? 1);

let work: string;
beforeAll(() => {
  work = tempDir();
});
afterAll(() => removeDir(work));

function buildFuzzTree(root: string): void {
  mkdirSync(join(root, 'a', 'b', 'c'), { recursive: true });
  mkdirSync(join(root, 'many'));
  for (let i = 0; i < 120; i++) writeFileSync(join(root, 'many', `file-with-a-longish-name-${i}`), `${i}\n`.repeat(i % 7));
  for (let i = 0; i < 20; i++) writeFileSync(join(root, 'a', `small-${i}`), 'x'.repeat(i * 13));
  writeFileSync(join(root, 'a', 'b', 'c', 'medium'), Buffer.alloc(300_000, 7));
  const fd = openSync(join(root, 'fragmented'), 'w');
  ftruncateSync(fd, 200 * 1024);
  for (let i = 0; i < 12; i++) writeSync(fd, Buffer.alloc(1024, i), 0, 1024, i * 16 * 1024);
  closeSync(fd);
  symlinkSync('a/b/c/medium', join(root, 'fast-link'));
  symlinkSync(`${'far/'.repeat(30)}away`, join(root, 'slow-link'));
  mkdirSync(join(root, 'empty'));
}

interface Target {
  name: string;
  volume: Buffer;
  ranges: { start: number; length: number }[];
}

/** The metadata worth mutating, located with dumpe2fs/debugfs (not with the parser under test). */
function metadataRanges(image: string): { start: number; length: number }[] {
  const header = run('dumpe2fs', ['-h', image]);
  const bs = Number(/Block size:\s+(\d+)/.exec(header)![1]);
  const inodeSize = Number(/Inode size:\s+(\d+)/.exec(header)?.[1] ?? 128);
  const table = Number(/Inode table at (\d+)/.exec(run('dumpe2fs', [image]))![1]);
  const ranges = [
    { start: 1024, length: 1024 }, // superblock
    { start: (bs === 1024 ? 2 : 1) * bs, length: bs }, // first group descriptor block
    // Inodes are handed out from the bottom: the first 200 cover everything in these images.
    { start: table * bs, length: 200 * inodeSize },
  ];
  const inos = Array.from({ length: 198 }, (_, i) => i + 2);
  const stats = debugfsSections(image, inos.map((ino) => `stat <${ino}>`));
  const blocks = debugfsBlocks(image, inos);
  inos.forEach((ino, k) => {
    const stat = stats[k] ?? '';
    if (/Type: directory/.test(stat)) for (const b of blocks.get(ino) ?? []) ranges.push({ start: b * bs, length: bs });
    for (const m of stat.matchAll(/\((?:IND|DIND|TIND|ETB\d+)\):(\d+)/g)) ranges.push({ start: Number(m[1]) * bs, length: bs });
  });
  return ranges;
}

describe('ext fuzzing', () => {
  const targets: Target[] = [];
  beforeAll(() => {
    if (!existsSync(new URL('../../../dist/parsers/fs/ext/index.js', import.meta.url))) {
      throw new Error('dist/ is missing the ext driver: run `npx tsc -p .` before the fuzz test');
    }
    const tree = join(work, 'tree');
    buildFuzzTree(tree);
    const ext2 = makeImage('ext2', ['-b', '1024', '-I', '128'], 4, tree, work, 'fuzz-ext2.img');
    const ext4 = makeImage('ext4', ['-b', '4096', '-O', 'inline_data,metadata_csum,64bit,^has_journal', '-N', '256'], 8, tree, work, 'fuzz-ext4.img');
    const ext4k1 = makeImage('ext4', ['-b', '1024', '-O', '^has_journal', '-N', '256'], 4, tree, work, 'fuzz-ext4-1k.img');
    try {
      run('e2fsck', ['-fyD', ext4k1]); // index the big directory (htree blocks to mutate)
    } catch (e) {
      if ((e as { status?: number }).status !== 1) throw e;
    }
    for (const [name, image] of [
      ['ext2 1 KiB block maps', ext2],
      ['ext4 extents + inline data', ext4],
      ['ext4 1 KiB htree', ext4k1],
    ] as const) {
      targets.push({ name, volume: readFileSync(image), ranges: metadataRanges(image) });
    }
  });

  it('survives mutated metadata without crashes, hangs or runaway memory', async () => {
    const report: string[] = [];
    for (const [i, t] of targets.entries()) {
      const result = await fuzzVolume({ volume: t.volume, ranges: t.ranges, rounds: 150 * ROUNDS_SCALE, seed: SEED + i, roundTimeoutMs: 5000 });
      report.push(`${t.name}: ${result.opened}/${result.rounds} opened`);
      expect(result.failures, t.name).toEqual([]);
      // Most mutations must leave the volume openable, or the walk tests nothing.
      expect(result.opened, t.name).toBeGreaterThan(result.rounds / 3);
    }
    console.log(report.join('\n'));
  }, 120_000 * ROUNDS_SCALE);
});
