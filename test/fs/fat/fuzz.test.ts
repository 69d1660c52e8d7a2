/**
 * Mutation fuzzing of FAT12, FAT16, FAT32 and exFAT metadata: boot sectors
 * (BPB, FSInfo, the exFAT boot regions), the FATs, and the start of the data
 * region where the directories of these small trees live. Fixed seeds so a
 * failure replays. The worker imports the compiled parsers: run
 * `npx tsc -p .` first (npm test does).
 */
import { existsSync, mkdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzVolume } from '../../support/fuzz.js';
import { tempDir } from '../../support/run.js';
import { copyTree, makeFatImage, mtools, patternBytes, run, withExfatMount, withLoop } from './support.js';

/** Fixed so failures replay; FUZZ_SEED=n explores other mutations (a failure names its seed and round). */
const SEED = Number(process.env.FUZZ_SEED ?? 0xfa7);
/** FUZZ_SCALE=n runs n times the rounds, for a longer hunt outside the suite. */
const ROUNDS_SCALE = Number(process.env.FUZZ_SCALE ?? 1);

let work: string;
let cleanup: () => void;

function buildFuzzTree(root: string): void {
  mkdirSync(join(root, 'a', 'b', 'c'), { recursive: true });
  mkdirSync(join(root, 'many'));
  for (let i = 0; i < 100; i++) writeFileSync(join(root, 'many', `${String(i).padStart(3, '0')} with a longish name ü.txt`), `${i}\n`.repeat(i % 5));
  for (let i = 0; i < 12; i++) writeFileSync(join(root, 'a', `small-${i}.bin`), patternBytes(i * 700, i));
  writeFileSync(join(root, 'a', 'b', 'c', 'medium.bin'), patternBytes(100_000, 1));
  writeFileSync(join(root, 'readme.txt'), 'lower case 8.3\n');
  mkdirSync(join(root, 'empty'));
}

interface Target {
  name: string;
  rounds: number;
  volume: Buffer;
  ranges: { start: number; length: number }[];
}

/** FAT metadata located from the BPB fields directly (not with the parser under test). */
function fatRanges(volume: Buffer): Target['ranges'] {
  const bps = volume.readUInt16LE(11);
  const reserved = volume.readUInt16LE(14);
  const fats = volume[16];
  const rootEntries = volume.readUInt16LE(17);
  const fatSectors = volume.readUInt16LE(22) || volume.readUInt32LE(36);
  const fatStart = reserved * bps;
  const dataStart = (reserved + fats * fatSectors) * bps + Math.ceil((rootEntries * 32) / bps) * bps;
  const ranges = [{ start: 0, length: Math.min(reserved * bps, 8 * bps) }];
  // The used part of each FAT (these trees occupy the first few thousand clusters).
  for (let f = 0; f < fats; f++) ranges.push({ start: fatStart + f * fatSectors * bps, length: Math.min(fatSectors * bps, 8192) });
  if (rootEntries) ranges.push({ start: dataStart - Math.ceil((rootEntries * 32) / bps) * bps, length: rootEntries * 32 });
  // Directories are written first by mcopy -s, interleaved with the small files.
  ranges.push({ start: dataStart, length: 96 * 1024 });
  return ranges;
}

/** exFAT: both boot regions, the FAT's used part, and the start of the heap (bitmap, up-case table, directories). */
function exfatRanges(volume: Buffer): Target['ranges'] {
  const bps = 2 ** volume[108];
  const fatOffset = volume.readUInt32LE(80) * bps;
  const heap = volume.readUInt32LE(88) * bps;
  return [
    { start: 0, length: 24 * bps },
    { start: fatOffset, length: 4096 },
    { start: heap, length: 160 * 1024 },
  ];
}

beforeAll(() => {
  const t = tempDir('loopless-fat-fuzz-');
  work = t.dir;
  cleanup = t.cleanup;
});
afterAll(() => cleanup?.());

describe('FAT and exFAT fuzzing', () => {
  const targets: Target[] = [];

  beforeAll(async () => {
    for (const driver of ['fat', 'exfat']) {
      if (!existsSync(new URL(`../../../dist/parsers/fs/${driver}/index.js`, import.meta.url))) {
        throw new Error(`dist/ is missing the ${driver} driver: run \`npx tsc -p .\` before the fuzz test`);
      }
    }
    const tree = join(work, 'tree');
    buildFuzzTree(tree);
    for (const [name, args, kib] of [
      ['FAT12', ['-F', '12'], 1440],
      ['FAT16', ['-F', '16', '-s', '1'], 4200],
      ['FAT32', ['-F', '32', '-s', '1'], 34000],
    ] as const) {
      const image = join(work, `${name}.img`);
      makeFatImage(image, [...args, '-n', name], kib, tree);
      // A fragmented file too, so chains with several runs get mutated.
      for (let i = 0; i < 6; i++) {
        writeFileSync(join(work, `hole${i}`), patternBytes(2000, i));
        mtools('mcopy', image, join(work, `hole${i}`), `::/hole${i}`);
      }
      for (let i = 0; i < 6; i += 2) mtools('mdel', image, `::/hole${i}`);
      writeFileSync(join(work, 'frag'), patternBytes(9000, 9));
      mtools('mcopy', image, join(work, 'frag'), '::/fragmented.bin');
      // FAT32 needs 65525+ clusters (33 MiB here), but this tree lives in its first 2 MiB: fuzzing a
      // copy of the whole image each round would spend the time budget on memcpy. The cut volume
      // opens with a "truncated" warning and reads exactly the same tree.
      const volume = Buffer.from(readFileSync(image).subarray(0, 4 * 1024 * 1024));
      // The BPB and FSInfo fields are a few dozen bytes among kilobytes of FATs and directories: fuzz them on their own too.
      // FAT32's backup boot sector (sector 6) stands in for a damaged primary: mutate it too, or every round opens through it.
      const bootRanges = [{ start: 0, length: 90 }, { start: 512, length: 512 }];
      if (name === 'FAT32') bootRanges.push({ start: 6 * 512, length: 90 });
      targets.push({ name: `${name} boot sector`, rounds: 100, volume, ranges: bootRanges });
      targets.push({ name: `${name} FATs and directories`, rounds: 250, volume, ranges: fatRanges(volume) });
    }
    const exfat = join(work, 'exfat.img');
    writeFileSync(exfat, '');
    truncateSync(exfat, 8 * 1024 * 1024);
    await withLoop(exfat, async (device) => {
      run('mkfs.exfat', ['-L', 'fuzz', device]);
      await withExfatMount(device, join(work, 'mnt'), () => {
        copyTree(tree, join(work, 'mnt'));
        for (let i = 0; i < 6; i++) writeFileSync(join(work, 'mnt', `hole${i}`), patternBytes(5000, i));
        for (let i = 0; i < 6; i += 2) unlinkSync(join(work, 'mnt', `hole${i}`));
        writeFileSync(join(work, 'mnt', 'fragmented.bin'), patternBytes(20_000, 9));
      });
    });
    const volume = readFileSync(exfat);
    // Main region only: any change fails its checksum, and the backup region (checked the same way) opens instead.
    targets.push({ name: 'exFAT boot sector', rounds: 100, volume, ranges: [{ start: 0, length: 120 }] });
    targets.push({ name: 'exFAT', rounds: 300, volume, ranges: exfatRanges(volume) });
  }, 120_000);

  it('survives mutated metadata without crashes, hangs or runaway memory', async () => {
    const report: string[] = [];
    for (const [i, t] of targets.entries()) {
      const started = Date.now();
      const result = await fuzzVolume({ volume: t.volume, ranges: t.ranges, rounds: t.rounds * ROUNDS_SCALE, seed: SEED + i, roundTimeoutMs: 5000 });
      report.push(`${t.name}: ${result.opened}/${result.rounds} opened in ${Date.now() - started} ms`);
      expect(result.failures, t.name).toEqual([]);
      // Most mutations must leave the volume openable, or the walk tests nothing.
      expect(result.opened, t.name).toBeGreaterThan(result.rounds / 5);
    }
    console.log(report.join('\n'));
  }, 120_000 * ROUNDS_SCALE);
});
