/**
 * Mutation fuzzing of NTFS metadata: the boot sector, the first MFT records
 * (metafiles), the records of user files and the directory index blocks.
 * Fixed seeds, bounded rounds; any untyped error, hang or memory blow-up fails.
 * The worker runs the compiled parsers in dist/ (npm test builds first).
 */
import { linkSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NtfsNode } from '../../../parsers/fs/ntfs/index.js';
import { NtfsFileSystem } from '../../../parsers/fs/ntfs/index.js';
import { AttrType } from '../../../parsers/fs/ntfs/record.js';
import { AttributeStream } from '../../../parsers/fs/ntfs/stream.js';
import { MemorySource } from '../../../parsers/source/memory.js';
import { fuzzVolume } from '../../support/fuzz.js';
import { buildImage, linkReparse, noise, removeDir, setNtfsAttributes, setReparse, tempDir } from './helpers.js';

let work: string;
let volume: Buffer;
const ranges: { start: number; length: number }[] = [];

beforeAll(async () => {
  work = tempDir();
  const image = join(work, 'fuzz.img');
  buildImage(image, { sizeMiB: 8, clusterSize: 1024, mountOptions: ['compression', 'streams_interface=windows'] }, (mnt) => {
    writeFileSync(join(mnt, 'small.txt'), 'resident\n');
    writeFileSync(join(mnt, 'data.bin'), noise(50000, 1));
    writeFileSync(join(mnt, 'data.bin:stream'), 'ads\n');
    mkdirSync(join(mnt, 'dir'));
    for (let i = 0; i < 300; i++) writeFileSync(join(mnt, 'dir', `file-${i}-${'y'.repeat(i % 30)}`), `${i}`);
    mkdirSync(join(mnt, 'zip'));
    setNtfsAttributes(join(mnt, 'zip'), 0x800);
    writeFileSync(join(mnt, 'zip', 'text.txt'), 'squeeze '.repeat(20000));
    writeFileSync(join(mnt, 'zip', 'mixed.bin'), Buffer.concat([noise(20000, 2), Buffer.alloc(40000)]));
    symlinkSync('dir/file-1-y', join(mnt, 'link'));
    mkdirSync(join(mnt, 'junction'));
    setReparse(join(mnt, 'junction'), linkReparse('junction', '\\??\\C:\\x', 'C:\\x'));
    mkdirSync(join(mnt, 'links'));
    writeFileSync(join(mnt, 'links', 'orig'), 'names\n');
    for (let i = 0; i < 60; i++) linkSync(join(mnt, 'links', 'orig'), join(mnt, 'links', `another-fairly-long-link-name-${i}`));
  });
  volume = readFileSync(image);

  // Locate the metadata with the (tested) parser itself.
  const fs = await NtfsFileSystem.open(new MemorySource(volume));
  const g = fs.geometry;
  ranges.push({ start: 0, length: 512 });
  const mftNode = (await fs.lookup(await fs.root(), '$MFT'))!;
  for (let r = 0; r < 40; r++) ranges.push({ start: mftNode.data!.physicalOffset(r * g.mftRecordSize)!, length: g.mftRecordSize });
  const visit = async (dir: NtfsNode, depth: number) => {
    for (const { node } of await fs.readdir(dir)) {
      if (node.stat.ino >= 64 && ranges.length < 200) ranges.push({ start: mftNode.data!.physicalOffset(node.stat.ino * g.mftRecordSize)!, length: g.mftRecordSize });
      if (node.stat.type === 'dir' && depth < 3) await visit(node, depth + 1);
    }
    const alloc = dir.indexAttributes.filter((a) => a.type === AttrType.indexAllocation);
    if (alloc.length) {
      const s = new AttributeStream(alloc, g.clusterSize, g.totalClusters, 'index');
      for (const run of s.mapping()) if (run.lcn !== null) ranges.push({ start: run.lcn * g.clusterSize, length: run.length * g.clusterSize });
    }
  };
  await visit(await fs.root(), 0);
}, 120_000);

afterAll(() => removeDir(work));

/** Fixed so failures replay; FUZZ_SEED=n explores other mutations (a failure names its seed and round). */
const SEED = Number(process.env.FUZZ_SEED ?? 1);
/** FUZZ_SCALE=n runs n times the rounds, for a longer hunt outside the suite. */
const ROUNDS_SCALE = Number(process.env.FUZZ_SCALE ?? 1);

describe('NTFS fuzzing', () => {
  it('mutated metadata never crashes, hangs or exhausts memory', async () => {
    expect(ranges.length).toBeGreaterThan(60);
    const failures: string[] = [];
    let opened = 0;
    for (const seed of [SEED, SEED + 1, SEED + 2]) {
      const result = await fuzzVolume({ volume, ranges, rounds: 120 * ROUNDS_SCALE, seed, mutationsPerRound: 6, roundTimeoutMs: 10_000 });
      failures.push(...result.failures);
      opened += result.opened;
    }
    expect(failures).toEqual([]);
    // Most mutations must leave a volume that still opens, or we fuzz only the boot sector check.
    expect(opened).toBeGreaterThan(180 * ROUNDS_SCALE);
  }, 180_000 * ROUNDS_SCALE);
});
