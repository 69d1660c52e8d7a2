/**
 * Compressed images as restore input: gzip, xz, zstd and bzip2, recognized
 * by their magic (the files here are all named .img), streamed through the
 * decompressor, with or without a block map. The target must come out
 * byte-for-byte as the restore of the uncompressed image makes it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, statSync, truncateSync, copyFileSync } from 'node:fs';
import { hasTool, run, tempDir } from '../support/run.js';
import { buildJunkDisk, expectSameDisk, jsonLines, loopless, type JunkDisk } from './helpers.js';

const tmp = tempDir('loopless-restore-compressed-');
afterAll(() => tmp.cleanup());

const compressors = {
  gzip: ['gzip', '-c'],
  xz: ['xz', '-c', '-T1'],
  zstd: ['zstd', '-q', '-c'],
  bzip2: ['bzip2', '-c'],
} as const;

let junk: JunkDisk;
let reference: Buffer;
let bmap: string;

beforeAll(() => {
  junk = buildJunkDisk(tmp.dir, 'disk.img');
  const r = loopless(['restore', junk.path, tmp.path('reference.img')]);
  expect(r.status, r.stderr).toBe(0);
  reference = readFileSync(tmp.path('reference.img'));
  bmap = tmp.path('disk.bmap');
  expect(loopless(['bmap', junk.path, '-o', bmap]).status).toBe(0);
  for (const [name, [cmd, ...args]] of Object.entries(compressors)) {
    if (hasTool(cmd)) run('sh', ['-c', `${cmd} ${args.join(' ')} ${junk.path} > ${tmp.path(`${name}.img`)}`]);
  }
});

describe('compressed images, detected by magic', () => {
  for (const name of Object.keys(compressors) as (keyof typeof compressors)[]) {
    it.skipIf(!hasTool(compressors[name][0]))(`${name}: streamed, same target as the raw image gives`, () => {
      const target = tmp.path(`${name}-out.img`);
      const r = loopless(['restore', tmp.path(`${name}.img`), target, '--json']);
      expect(r.status, r.stderr).toBe(0);
      const summary = jsonLines(r.stdout).at(-1)!;
      expect(summary.streamed.compression).toBe(name);
      expect(summary.streamed.passes).toBeGreaterThanOrEqual(1);
      expect(summary.imageSize).toBe(junk.size);
      expect(readFileSync(target).equals(reference)).toBe(true);
    });
  }

  it.skipIf(!hasTool('bzip2'))('bzip2 with a block map: the size comes from the map, the ranges are checked', async () => {
    const target = tmp.path('bzip2-bmap-out.img');
    const r = loopless(['restore', '--bmap', bmap, tmp.path('bzip2.img'), target, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const summary = jsonLines(r.stdout).at(-1)!;
    expect(summary.basis).toBe('bmap');
    expect(summary.streamed.compression).toBe('bzip2');
    await expectSameDisk(junk.path, target);
  });

  it.skipIf(!hasTool('xz'))('a truncated compressed image fails clearly (exit 4)', () => {
    const cut = tmp.path('cut.img');
    copyFileSync(tmp.path('xz.img'), cut);
    truncateSync(cut, Math.floor(statSync(cut).size / 2));
    const r = loopless(['restore', cut, tmp.path('cut-out.img')]);
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/xz stream/);
  });
});
