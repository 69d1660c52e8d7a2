import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { MemorySource } from '../../parsers/source/memory.js';
import { readVolumeTable } from '../../parsers/volumes/index.js';
import { LooplessError } from '../../parsers/errors.js';
import { rng } from '../support/rng.js';
import { run, tempDir } from '../support/run.js';

/**
 * Mutation fuzz of the partition-table parsers: MBR, the EBR chain and both
 * GPT copies get random byte changes; every outcome must be a table or a
 * typed error, never a crash, within a bounded time.
 */
const tmp = tempDir('loopless-vfuzz-');
afterAll(() => tmp.cleanup());

async function fuzz(image: Buffer, ranges: [number, number][], rounds: number, seed: number): Promise<{ ok: number; typed: number }> {
  const random = rng(seed);
  let ok = 0;
  let typed = 0;
  for (let round = 0; round < rounds; round++) {
    // Mutate in place and undo afterwards: copying the whole image per round would dominate.
    const copy = image;
    const undo: [number, number][] = [];
    const mutations = 1 + Math.floor(random() * 6);
    for (let i = 0; i < mutations; i++) {
      const [start, length] = ranges[Math.floor(random() * ranges.length)];
      const pos = start + Math.floor(random() * length);
      undo.push([pos, copy[pos]]);
      copy[pos] = random() < 0.5 ? Math.floor(random() * 256) : [0, 0xff, 0x05, 0x0f, 0xee, 0x80][Math.floor(random() * 6)];
    }
    const started = Date.now();
    try {
      const t = await readVolumeTable(new MemorySource(copy));
      for (const v of t.volumes) {
        expect(Number.isSafeInteger(v.start) && v.start >= 0, `seed ${seed} round ${round}`).toBe(true);
        expect(Number.isSafeInteger(v.size) && v.size >= 0, `seed ${seed} round ${round}`).toBe(true);
      }
      ok++;
    } catch (e) {
      if (!(e instanceof LooplessError)) throw new Error(`seed ${seed} round ${round}: crash: ${(e as Error).stack}`);
      expect((e as Error).message).not.toContain('\n');
      typed++;
    }
    expect(Date.now() - started, `seed ${seed} round ${round}`).toBeLessThan(1000);
    for (const [pos, byte] of undo.reverse()) copy[pos] = byte;
  }
  return { ok, typed };
}

describe('partition table fuzz', () => {
  it('MBR with an extended chain', async () => {
    const p = tmp.path('mbr.img');
    run('truncate', ['-s', '24M', p]);
    run('sfdisk', ['-q', p], { input: 'label: dos\n,2M,83\n,2M,7\n,,5\n,2M,83\n,2M,83\n,2M,83\n,2M,83\n' });
    const image = readFileSync(p);
    const parts = JSON.parse(run('sfdisk', ['--json', p])).partitiontable.partitions as { start: number }[];
    // MBR table area plus every EBR (2048 sectors before each logical partition).
    const ranges: [number, number][] = [[446, 66]];
    for (const part of parts.slice(3)) ranges.push([(part.start - 2048) * 512 + 446, 66]);
    const r = await fuzz(image, ranges, 1500, 1234);
    expect(r.ok + r.typed).toBe(1500);
  });

  it('GPT, both copies', async () => {
    const p = tmp.path('gpt.img');
    run('truncate', ['-s', '16M', p]);
    run('sgdisk', ['-n1:2048:+2M', '-n2:0:+2M', '-n3:0:+2M', '-c3:name', p]);
    const image = readFileSync(p);
    const end = image.length;
    const ranges: [number, number][] = [[446, 66], [512, 92], [1024, 512], [end - 512, 92], [end - 512 - 16384, 512]];
    const r = await fuzz(image, ranges, 1500, 99);
    expect(r.ok + r.typed).toBe(1500);
    expect(r.typed).toBeGreaterThan(0); // some rounds must break both copies or the header sanity checks
  });
});
