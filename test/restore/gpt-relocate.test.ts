/**
 * Moving the backup GPT to the end of a larger disk gives exactly the bytes
 * `sgdisk -e` writes (protective MBR size, primary header, backup array and
 * header with their CRCs), also when the primary header was damaged and the
 * table had to be read from the backup.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { RawFileSource } from '../../parsers/source/raw.js';
import { readVolumeTable } from '../../parsers/volumes/index.js';
import { relocateGpt } from '../../parsers/volumes/gpt-relocate.js';
import { run, tempDir } from '../support/run.js';
import { samples } from './helpers.js';

const tmp = tempDir('loopless-gpt-relocate-');
afterAll(() => tmp.cleanup());

const GROW = 10 * 1024 * 1024 + 7 * 512;

async function patchesFor(image: string, diskSize: number) {
  const source = await RawFileSource.open(image);
  try {
    const table = await readVolumeTable(source);
    return { table, relocation: await relocateGpt(source, table.gpt!, diskSize) };
  } finally {
    await source.close();
  }
}

function apply(file: string, patches: { start: number; data: Buffer }[]): void {
  const fd = openSync(file, 'r+');
  try {
    for (const p of patches) writeSync(fd, p.data, 0, p.data.length, p.start);
  } finally {
    closeSync(fd);
  }
}

describe('relocateGpt', () => {
  const image = join(samples, 'gpt.img');
  const imageSize = readFileSync(image).length;
  const newSize = imageSize + GROW;

  it('writes what sgdisk -e writes', async () => {
    const oracle = tmp.path('sgdisk.img');
    copyFileSync(image, oracle);
    run('truncate', ['-s', String(newSize), oracle]);
    const ours = tmp.path('ours.img');
    copyFileSync(oracle, ours);
    run('sgdisk', ['-e', oracle]);

    const { relocation } = await patchesFor(image, newSize);
    expect(relocation.problems).toEqual([]);
    // sgdisk leaves the old backup where it was; we clear it (it would be a stale second backup).
    apply(ours, relocation.patches.filter((p) => !p.what.includes('(cleared)')));
    expect(readFileSync(ours).equals(readFileSync(oracle))).toBe(true);
    expect(run('sgdisk', ['-v', ours])).toMatch(/No problems found/);
    const sectors = Math.floor(newSize / 512);
    expect(relocation).toMatchObject({ backupHeaderLba: sectors - 1, backupArrayLba: sectors - 33, lastUsableLba: sectors - 34 });
    const cleared = relocation.patches.filter((p) => p.what.includes('(cleared)'));
    expect(cleared.map((p) => p.start)).toEqual([imageSize - 33 * 512, imageSize - 512]);
  });

  it('rebuilds the primary from the backup when the primary header is damaged', async () => {
    const damaged = tmp.path('damaged.img');
    copyFileSync(image, damaged);
    apply(damaged, [{ start: 512 + 24, data: Buffer.from([0x55]) }]); // breaks the header CRC
    const { table, relocation } = await patchesFor(damaged, newSize);
    expect(table.gpt!.usedBackup).toBe(true);
    const intact = await patchesFor(image, newSize);
    const header = (r: typeof relocation) => r.patches.find((p) => p.what === 'primary GPT header')!.data;
    expect(header(relocation).equals(header(intact.relocation))).toBe(true);
    const backup = (r: typeof relocation) => r.patches.find((p) => p.what === 'backup GPT header')!.data;
    expect(backup(relocation).equals(backup(intact.relocation))).toBe(true);
  });

  it('names the partitions a smaller disk cannot hold', async () => {
    const { relocation } = await patchesFor(image, 60 * 1024 * 1024);
    expect(relocation.problems.join('\n')).toMatch(/partition p5 ends at byte 74448896/);
    expect(relocation.problems.join('\n')).not.toMatch(/p4/);
  });
});
