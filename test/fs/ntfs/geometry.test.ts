/**
 * Every geometry mkntfs can make: sectors of 512 and 4096 bytes, clusters of
 * 512 B to 2 MiB (sectors-per-cluster as a plain count and as the negative
 * exponent 2^(256-v)), MFT/index record sizes given in clusters or as
 * negative exponents, index blocks smaller than a cluster (VCNs in 512-byte
 * units). The same small tree goes into each and must come out identical.
 */
import { linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, fls, hasTool, icat, noise, openNtfs, removeDir, setNtfsAttributes, sha256, tempDir, walk } from './helpers.js';

interface Variant {
  sector: number;
  cluster: number;
  sizeMiB: number;
  /** Boot sector byte 13 (sectors per cluster) as mkntfs writes it. */
  spcByte: number;
  /** Boot sector byte 0x40: MFT record size, in clusters (positive) or 2^-v bytes (negative). */
  mftRecordNegative: boolean;
}

const variants: Variant[] = [
  { sector: 512, cluster: 512, sizeMiB: 48, spcByte: 1, mftRecordNegative: false },
  { sector: 512, cluster: 1024, sizeMiB: 48, spcByte: 2, mftRecordNegative: false },
  { sector: 512, cluster: 4096, sizeMiB: 48, spcByte: 8, mftRecordNegative: true },
  { sector: 4096, cluster: 4096, sizeMiB: 64, spcByte: 1, mftRecordNegative: false },
  { sector: 512, cluster: 65536, sizeMiB: 96, spcByte: 0x80, mftRecordNegative: true },
  { sector: 4096, cluster: 65536, sizeMiB: 96, spcByte: 16, mftRecordNegative: true },
  { sector: 512, cluster: 131072, sizeMiB: 128, spcByte: 0xf8, mftRecordNegative: true },
  // mkntfs refuses 2 MiB clusters on 256 MiB ("$LogFile would be created with invalid size").
  { sector: 512, cluster: 2 * 1024 * 1024, sizeMiB: 160, spcByte: 0xf4, mftRecordNegative: true },
];

let work: string;

beforeAll(() => {
  work = tempDir();
});

afterAll(() => removeDir(work));

describe.each(variants)('NTFS with $sector-byte sectors and $cluster-byte clusters', (v) => {
  const image = () => join(work, `ntfs-${v.sector}-${v.cluster}.img`);
  const expected = new Map<string, { type: 'file' | 'dir'; sha256?: string; size?: number }>();
  const compressible = v.cluster <= 4096;

  beforeAll(() => {
    const put = (mnt: string, rel: string, data: Buffer) => {
      writeFileSync(join(mnt, rel), data);
      expected.set(`/${rel}`, { type: 'file', sha256: sha256(data), size: data.length });
    };
    buildImage(image(), { sizeMiB: v.sizeMiB, sectorSize: v.sector, clusterSize: v.cluster, mountOptions: ['compression', 'streams_interface=windows'] }, (mnt) => {
      mkdirSync(join(mnt, 'files'));
      expected.set('/files', { type: 'dir' });
      const sizes = [...new Set([0, 1, 700, v.cluster - 1, v.cluster, v.cluster + 1, 3 * v.cluster + 5, 200000])];
      for (const s of sizes) put(mnt, `files/f${s}`, noise(s, s));
      mkdirSync(join(mnt, 'dir400'));
      expected.set('/dir400', { type: 'dir' });
      for (let i = 0; i < 400; i++) put(mnt, `dir400/name-${String(i).padStart(4, '0')}-padding-padding`, Buffer.from(`${i}`));
      put(mnt, 'ads.txt', Buffer.from('main\n'));
      writeFileSync(join(mnt, 'ads.txt:extra'), 'stream\n');
      linkSync(join(mnt, 'ads.txt'), join(mnt, 'link.txt'));
      expected.set('/link.txt', { ...expected.get('/ads.txt')! });
      // ntfs-3g compresses only with clusters up to 4 KiB (as Windows does).
      if (compressible) {
        mkdirSync(join(mnt, 'zip'));
        expected.set('/zip', { type: 'dir' });
        setNtfsAttributes(join(mnt, 'zip'), 0x800);
        const text = Buffer.from('compressible text, compressible text\n'.repeat(5000));
        put(mnt, 'zip/text.txt', text);
        put(mnt, 'zip/mixed.bin', Buffer.concat([noise(70000, 9), Buffer.alloc(70000), text.subarray(0, 30000)]));
      }
    });
  }, 120_000);

  it('has the boot sector encodings this variant is meant to cover', () => {
    const boot = readFileSync(image()).subarray(0, 512);
    expect(boot.readUInt16LE(11)).toBe(v.sector);
    expect(boot[13]).toBe(v.spcByte);
    expect(boot[0x40] >= 0x80).toBe(v.mftRecordNegative);
  });

  it('shows the tree that was put in', async () => {
    const { fs, close } = await openNtfs(image());
    try {
      expect(fs.info().blockSize).toBe(v.cluster);
      expect(fs.geometry.mftRecordSize).toBe(v.sector === 4096 ? 4096 : 1024);
      const seen = await walk(fs);
      expect([...seen.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [path, want] of expected) {
        const got = seen.get(path)!;
        expect({ path, type: got.node.stat.type, size: want.size === undefined ? undefined : got.node.stat.size, sha256: got.sha256 }).toEqual({
          path,
          type: want.type,
          size: want.size,
          sha256: want.sha256,
        });
      }
      expect(seen.get('/ads.txt')!.node.stat.streams).toEqual([{ name: 'extra', size: 7 }]);
      expect(seen.get('/link.txt')!.node.stat.nlink).toBe(2);
      if (compressible) expect(seen.get('/zip/text.txt')!.node.stat.flags).toContain('compressed');
      // A multi-block index: lookups descend through $INDEX_ALLOCATION.
      const dir = seen.get('/dir400')!.node;
      expect(dir.stat.size).toBeGreaterThan(4096);
      expect((await fs.lookup(dir, 'name-0399-padding-padding'))?.stat.size).toBe(3);
      const ranges = await fs.allocatedRanges();
      const bytes = ranges.reduce((s, r) => s + r.length, 0);
      const info = fs.info();
      expect(bytes).toBeGreaterThanOrEqual((info.totalBlocks - info.freeBlocks) * v.cluster);
    } finally {
      await close();
    }
  });

  // The Sleuth Kit does not open volumes with clusters above 64 KiB.
  if (v.cluster <= 65536) it.runIf(hasTool('fls'))('agrees with fls and icat', async () => {
    const theirs = fls(image()).filter((e) => !e.deleted && !e.path.startsWith('/$') && !e.path.includes(':'));
    expect(theirs.map((e) => e.path).sort()).toEqual([...expected.keys()].sort());
    for (const e of theirs.filter((x) => x.type === 'r' && (x.path.startsWith('/files/') || x.path.startsWith('/zip/')))) {
      expect({ path: e.path, sha256: sha256(icat(image(), String(e.inode))) }).toEqual({ path: e.path, sha256: expected.get(e.path)!.sha256 });
    }
  });
});

