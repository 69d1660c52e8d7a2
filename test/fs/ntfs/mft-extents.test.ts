/**
 * A fragmented $MFT, as on long-used Windows disks: the MFT grew into many
 * scattered runs until its runlist no longer fit in record 0, so $MFT has an
 * $ATTRIBUTE_LIST and a second $DATA extent in another record. Records past
 * the first extent are only reachable through that extension.
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NtfsFileSystem } from '../../../parsers/fs/ntfs/index.js';
import { MemorySource } from '../../../parsers/source/memory.js';
import { buildImage, fls, hasTool, istat, openNtfs, readAll, removeDir, tempDir } from './helpers.js';

const TINY = 12000;
let work: string;
let image: string;

beforeAll(() => {
  work = tempDir();
  image = join(work, 'mft.img');
  buildImage(image, { sizeMiB: 64, clusterSize: 1024 }, (mnt) => {
    // Fill the volume, free a pseudo-random half: free space is now 16 KiB holes.
    const fill = join(mnt, 'fill');
    mkdirSync(fill);
    const chunk = Buffer.alloc(16 * 1024, 7);
    let n = 0;
    try {
      for (; n < 100000; n++) writeFileSync(join(fill, String(n)), chunk);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    }
    let seed = 99;
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed / 0x7fffffff);
    for (let i = 0; i < n; i++) if (random() < 0.5) unlinkSync(join(fill, String(i)));
    // Thousands of new files: each MFT extension lands in a different hole.
    mkdirSync(join(mnt, 'tiny'));
    for (let i = 0; i < TINY; i++) writeFileSync(join(mnt, 'tiny', `t${i}`), `tiny ${i}\n`);
  });
}, 180_000);

afterAll(() => removeDir(work));

describe('NTFS with a fragmented $MFT', () => {
  it('has an $MFT spread over extension records (checked with istat)', () => {
    const text = istat(image, 0);
    expect(text).toMatch(/\$ATTRIBUTE_LIST/);
    const extents = [...text.matchAll(/^Type: 128-\d+\s+MFT Entry: (\d+)\s+VCN: (\d+)/gm)];
    expect(extents.length).toBeGreaterThanOrEqual(2);
    expect(extents.some((m) => m[1] !== '0')).toBe(true);
  });

  it('reads every record, including those mapped only by the extension', async () => {
    const { fs, close } = await openNtfs(image);
    try {
      const mft = (await fs.lookup(await fs.root(), '$MFT'))!;
      const lastExtentVcn = Math.max(...[...istat(image, 0).matchAll(/^Type: 128-\d+\s+MFT Entry: \d+\s+VCN: (\d+)/gm)].map((m) => Number(m[1])));
      const firstRecordOfLastExtent = (lastExtentVcn * 1024) / fs.geometry.mftRecordSize;
      expect(mft.stat.size / 1024).toBeGreaterThan(firstRecordOfLastExtent);
      expect(mft.data!.mapping().length).toBeGreaterThan(50);

      const tiny = (await fs.lookup(await fs.root(), 'tiny'))!;
      const entries = await fs.readdir(tiny);
      expect(entries).toHaveLength(TINY);
      const beyond = entries.filter((e) => e.node.stat.ino >= firstRecordOfLastExtent);
      expect(beyond.length).toBeGreaterThan(10);
      for (const e of [...entries.slice(0, 20), ...beyond]) {
        expect((await readAll(fs, e.node)).toString()).toBe(`tiny ${e.name.slice(1)}\n`);
      }
      expect(fs.info().totalInodes).toBe(mft.stat.size / 1024);
    } finally {
      await close();
    }
  });

  it('reads each $MFT extension record once, however often the attribute list names it', async () => {
    // Patch a copy: every other same-sized entry of $MFT's attribute list becomes
    // another "$DATA is in record N" entry for the extension record.
    const img = readFileSync(image);
    const bps = img.readUInt16LE(0x0b);
    const clusterSize = bps * img[0x0d];
    const recSize = img.readInt8(0x40) < 0 ? 2 ** -img.readInt8(0x40) : img[0x40] * clusterSize;
    const rec = img.subarray(Number(img.readBigUInt64LE(0x30)) * clusterSize).subarray(0, recSize);
    let a = rec.readUInt16LE(0x14);
    while (rec.readUInt32LE(a) !== 0x20) a += rec.readUInt32LE(a + 4);
    // Non-resident in this image (the list outgrew record 0); its bytes are not fixup-protected.
    expect(rec[a + 8]).toBe(1);
    const runs = a + rec.readUInt16LE(a + 0x20);
    const lenBytes = rec[runs] & 15;
    const offBytes = rec[runs] >> 4;
    const clusters = rec.readUIntLE(runs + 1, lenBytes);
    const lcn = rec.readIntLE(runs + 1 + lenBytes, offBytes);
    const size = Number(rec.readBigUInt64LE(a + 0x30));
    expect(clusters * clusterSize).toBeGreaterThanOrEqual(size); // one run holds it all
    const list = img.subarray(lcn * clusterSize, lcn * clusterSize + size);
    const entries: number[] = [];
    for (let e = 0; e < list.length; e += list.readUInt16LE(e + 4)) entries.push(e);
    const ext = entries.find((e) => list.readUInt32LE(e) === 0x80 && list.readUIntLE(e + 0x10, 6) !== 0)!;
    expect(ext).toBeDefined();
    let copies = 0;
    for (const e of entries) {
      if (list.readUInt32LE(e) === 0x80 || list.readUInt16LE(e + 4) !== list.readUInt16LE(ext + 4)) continue;
      list.copy(list, e, ext, ext + list.readUInt16LE(ext + 4));
      copies++;
    }
    expect(copies).toBeGreaterThan(0);
    const fs = await NtfsFileSystem.open(new MemorySource(img, 'patched copy'));
    const tiny = (await fs.lookup(await fs.root(), 'tiny'))!;
    const names = await fs.readdir(tiny);
    expect(names).toHaveLength(TINY);
    const last = names.reduce((x, y) => (y.node.stat.ino > x.node.stat.ino ? y : x));
    expect((await readAll(fs, last.node)).toString()).toBe(`tiny ${last.name.slice(1)}\n`);
    await fs.close();
  });

  it.runIf(hasTool('fls'))('agrees with fls on the names', async () => {
    const theirs = fls(image)
      .filter((e) => !e.deleted && e.path.startsWith('/tiny/'))
      .map((e) => e.path)
      .sort();
    const { fs, close } = await openNtfs(image);
    try {
      const tiny = (await fs.lookup(await fs.root(), 'tiny'))!;
      expect((await fs.readdir(tiny)).map((e) => `/tiny/${e.name}`).sort()).toEqual(theirs);
    } finally {
      await close();
    }
  });
});
