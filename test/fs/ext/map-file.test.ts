/**
 * The synchronous bulk-read path (ExtFileSystem.mapFile + Disk.syncReader,
 * used by `cat`/`cp`) gives exactly the bytes read() gives: holes, fragments,
 * indirect blocks, every window and chunk size, and a truncated image fails
 * with the same typed error.
 */
import { closeSync, ftruncateSync, mkdirSync, openSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptError } from '../../../parsers/errors.js';
import { Disk, type Entry } from '../../../parsers/vfs/index.js';
import { copyToTemp, debugfs, makeImage, patch, removeDir, tempDir } from './helpers.js';

let work: string;
let tree: string;
const images: Record<string, string> = {};

beforeAll(() => {
  work = tempDir('loopless-mapfile-');
  tree = join(work, 'tree');
  mkdirSync(tree);
  // Random-looking bytes so a misplaced block cannot pass.
  const noise = (n: number, seed: number) => {
    const b = Buffer.allocUnsafe(n);
    let x = seed;
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      b[i] = x >>> 24;
    }
    return b;
  };
  writeFileSync(join(tree, 'big.bin'), noise(5 * 1024 * 1024 + 777, 1));
  writeFileSync(join(tree, 'small.txt'), 'small\n');
  // Data, hole, data, hole at the end.
  const fd = openSync(join(tree, 'sparse.bin'), 'w');
  writeSync(fd, noise(70_000, 2), 0, 70_000, 0);
  writeSync(fd, noise(10_000, 3), 0, 10_000, 3 * 1024 * 1024);
  ftruncateSync(fd, 6 * 1024 * 1024 + 5);
  closeSync(fd);
  images.ext4 = makeImage('ext4', [], 32, tree, work, 'ext4.img');
  images.ext2 = makeImage('ext2', ['-b', '1024'], 32, tree, work, 'ext2.img');
  // Unwritten extents read as zeros: preallocate blocks inside sparse.bin's hole.
  images.unwritten = copyToTemp(images.ext4, work, 'unwritten.img');
  debugfs(images.unwritten, 'fallocate /sparse.bin 100 300', true);
  const extents = /\(100-300\[u\]\):(\d+)-(\d+)/.exec(debugfs(images.unwritten, 'stat /sparse.bin'));
  expect(extents).not.toBeNull();
  // Stale bytes in the preallocated blocks: they must still read as zeros (1 KiB blocks at this size).
  patch(images.unwritten, Number(extents![1]) * 1024, noise(201 * 1024, 4));
});

afterAll(() => removeDir(work));

async function viaRead(disk: Disk, entry: Entry): Promise<Buffer> {
  const out = Buffer.alloc(entry.stat.size);
  for (let pos = 0; pos < out.length; ) {
    const n = await disk.read(entry, out, pos, Math.min(1 << 20, out.length - pos), pos);
    expect(n).toBeGreaterThan(0);
    pos += n;
  }
  return out;
}

async function viaSyncReader(disk: Disk, entry: Entry, window: number, chunk: number): Promise<Buffer> {
  const reader = disk.syncReader(entry);
  expect(reader).not.toBeNull();
  const out = Buffer.alloc(entry.stat.size);
  let pos = 0;
  while (pos < out.length) {
    expect(await reader!.map(pos, window)).toBe(true);
    const end = Math.min(out.length, reader!.mappedEnd);
    expect(end).toBeGreaterThan(pos);
    while (pos < end) {
      const n = reader!.readSync(out, pos, Math.min(chunk, end - pos), pos);
      expect(n).toBeGreaterThan(0);
      pos += n;
    }
  }
  // Outside the mapped window nothing is read.
  expect(reader!.readSync(Buffer.alloc(1), 0, 1, 0)).toBe(out.length > window ? 0 : out.length ? 1 : 0);
  return out;
}

describe('synchronous reads equal read()', () => {
  for (const kind of ['ext4', 'ext2', 'unwritten']) {
    it(kind, async () => {
      const disk = await Disk.open(images[kind]);
      try {
        for (const name of ['big.bin', 'sparse.bin', 'small.txt']) {
          const entry = await disk.stat(`/fs/${name}`);
          const expected = await viaRead(disk, entry);
          for (const [window, chunk] of [
            [64 << 20, 1 << 20],
            [100_000, 4096],
            [1 << 20, 333_333],
          ]) {
            const got = await viaSyncReader(disk, entry, window, chunk);
            expect(got.equals(expected), `${kind} ${name} window ${window} chunk ${chunk}`).toBe(true);
          }
          if (name === 'sparse.bin') expect(expected.subarray(70_000, 3 * 1024 * 1024).every((b) => b === 0)).toBe(true);
        }
      } finally {
        await disk.close();
      }
    });
  }

  it('mapFile pieces cover the range exactly, zeros as null', async () => {
    const disk = await Disk.open(images.ext4);
    try {
      const entry = await disk.stat('/fs/sparse.bin');
      const pieces = (await entry.fs!.mapFile!(entry.node!, 0, entry.stat.size + 100))!;
      expect(pieces.reduce((n, p) => n + p.length, 0)).toBe(entry.stat.size);
      expect(pieces.some((p) => p.at === null)).toBe(true);
      expect(pieces[pieces.length - 1].at).toBeNull(); // the trailing hole
      expect(await entry.fs!.mapFile!(entry.node!, entry.stat.size, 10)).toEqual([]);
      const dir = await disk.stat('/fs');
      expect(disk.syncReader(dir)).toBeNull();
    } finally {
      await disk.close();
    }
  });

  it('a truncated image fails with the same corrupt-structure error as read()', async () => {
    const copy = copyToTemp(images.ext4, work, 'truncated.img');
    const disk0 = await Disk.open(copy);
    const entry0 = await disk0.stat('/fs/big.bin');
    const pieces = (await entry0.fs!.mapFile!(entry0.node!, 0, entry0.stat.size))!;
    await disk0.close();
    // Cut the image in the middle of big.bin's data.
    truncateSync(copy, pieces[0].at! + 4096);
    const disk = await Disk.open(copy);
    try {
      const entry = await disk.stat('/fs/big.bin');
      const asyncErr = await viaRead(disk, entry).catch((e: unknown) => e);
      const syncErr = await viaSyncReader(disk, entry, 64 << 20, 1 << 20).catch((e: unknown) => e);
      expect(asyncErr).toBeInstanceOf(CorruptError);
      expect(syncErr).toBeInstanceOf(CorruptError);
      expect((syncErr as Error).message).toMatch(/^\/fs\/big\.bin: corrupt .* \(truncated image\?\)$/);
    } finally {
      await disk.close();
    }
  });
});
