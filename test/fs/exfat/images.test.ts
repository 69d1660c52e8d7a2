/**
 * exFAT images made by mkfs.exfat (exfatprogs) and filled through exfat-fuse:
 * every name, type, size, content hash and mtime (10 ms precision, UTC offsets)
 * must match the source tree; the label, serial, free count and allocated
 * ranges must match; the Sleuth Kit must list the same paths and give the same
 * bytes. Files exfat-fuse wrote contiguously carry NoFatChain; the fragmented
 * one is FAT-chained: both kinds are checked to be present.
 */
import { mkdirSync, rmSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExfatFileSystem, type ExfatNode } from '../../../parsers/fs/exfat/index.js';
import { tempDir } from '../../support/run.js';
import {
  buildTree,
  closeImage,
  compareTrees,
  copyRanges,
  copyTree,
  describeImageTree,
  describeSourceTree,
  type Entry,
  flsPaths,
  fragment,
  icat,
  openImage,
  patternBytes,
  readWhole,
  run,
  type SeenEntry,
  sha256,
  T2001,
  type TreeOptions,
  withExfatMount,
  withLoop,
} from '../fat/support.js';
import { dumpExfatFreeClusters, patchEntrySet, patchValidDataLength } from './support.js';

interface Variant {
  name: string;
  mkfs: string[];
  sizeMiB: number;
  sectorSize: number;
  clusterSize: number;
  tree: TreeOptions;
  label: string | null;
  /** Zone exfat-fuse writes in: its local times carry this UTC offset. */
  tz: string;
  fragmented?: { holes: number; holeBytes: number; bigBytes: number };
}

const variants: Variant[] = [
  {
    name: 'exFAT 4 KiB clusters, 1000-entry directory, 17 MiB file',
    mkfs: ['-L', 'Ünïcødé ✓'],
    sizeMiB: 64,
    sectorSize: 512,
    clusterSize: 4096,
    tree: { bigDir: 1000, largeFile: 17 * 1024 * 1024 + 5, astral: true, depth: 16 },
    label: 'Ünïcødé ✓',
    tz: 'UTC',
    fragmented: { holes: 8, holeBytes: 30_000, bigBytes: 200_000 },
  },
  {
    name: 'exFAT 512-byte clusters written at UTC+05:30',
    mkfs: ['-c', '512', '-L', 'small'],
    sizeMiB: 24,
    sectorSize: 512,
    clusterSize: 512,
    tree: { astral: true },
    label: 'small',
    tz: 'Asia/Kolkata',
    fragmented: { holes: 10, holeBytes: 3000, bigBytes: 25_000 },
  },
  {
    name: 'exFAT 4 KiB sectors, 128 KiB clusters, written at UTC-03:00',
    mkfs: ['-c', '128K'],
    sizeMiB: 96,
    sectorSize: 4096,
    clusterSize: 128 * 1024,
    tree: { largeFile: 3 * 1024 * 1024 },
    label: null,
    tz: 'America/Sao_Paulo',
  },
];

let work: string;
let cleanup: () => void;
beforeAll(() => {
  const t = tempDir('loopless-exfat-');
  work = t.dir;
  cleanup = t.cleanup;
});
afterAll(() => cleanup?.());

/**
 * An mtime with an odd second and hundredths. exFAT's 10 ms field must carry
 * the odd second (the DOS time has 2-second steps); exfat-fuse drops the
 * hundredths, so those are tested by patching the field below.
 */
const FRACTIONAL_MTIME = T2001 + 1.37;

describe.each(variants)('$name', (v) => {
  let image: string;
  let expected: Map<string, Entry>;
  let seen: Map<string, SeenEntry>;
  let opened: Awaited<ReturnType<typeof openImage>>;
  let serial: string;

  beforeAll(async () => {
    const dir = join(work, v.name.replace(/[^a-z0-9]+/gi, '-'));
    const tree = join(dir, 'tree');
    buildTree(tree, v.tree);
    const fractional = join(tree, 'fractional mtime.txt');
    writeFileSync(fractional, 'ten milliseconds\n');
    utimesSync(fractional, FRACTIONAL_MTIME, FRACTIONAL_MTIME);
    image = join(dir, 'exfat.img');
    truncateSync((writeFileSync(image, ''), image), v.sizeMiB * 1024 * 1024);
    const mnt = join(dir, 'mnt');
    await withLoop(
      image,
      async (device) => {
        run('mkfs.exfat', [...v.mkfs, device]);
        await withExfatMount(
          device,
          mnt,
          () => {
            copyTree(tree, mnt);
            if (v.fragmented) {
              fragment(
                (name, data) => writeFileSync(join(mnt, name), data),
                (name) => unlinkSync(join(mnt, name)),
                v.fragmented.holes,
                v.fragmented.holeBytes,
                patternBytes(v.fragmented.bigBytes, 77),
              );
            }
          },
          v.tz,
        );
      },
      v.sectorSize,
    );
    if (v.fragmented) {
      writeFileSync(join(tree, 'fragmented.bin'), patternBytes(v.fragmented.bigBytes, 77));
      for (let i = 1; i < v.fragmented.holes * 2; i += 2) {
        writeFileSync(join(tree, `filler-${String(i).padStart(3, '0')}.bin`), patternBytes(v.fragmented.holeBytes, 100 + i));
      }
    }
    expected = describeSourceTree(tree);
    // dump.exfat rather than fsstat: fsstat never finishes on volumes with 128 KiB clusters.
    const hex = /Volume Serial:\s*0x([0-9a-f]{8})/i.exec(run('dump.exfat', [image]))![1].toUpperCase();
    serial = `${hex.slice(0, 4)}-${hex.slice(4)}`;
    opened = await openImage(image);
    seen = await describeImageTree(opened.fs);
  }, 300_000);

  afterAll(async () => {
    if (opened) await closeImage(opened);
  });

  it('is detected as exFAT with the right geometry, label and serial', () => {
    expect(opened.type).toBe('exfat');
    const info = opened.fs.info();
    expect(info).toMatchObject({ type: 'exfat', label: v.label, uuid: serial, blockSize: v.clusterSize, maxNameLength: 255 });
    expect((opened.fs as ExfatFileSystem).geometry.bytesPerSector).toBe(v.sectorSize);
    expect(info.warnings).toBeUndefined();
  });

  it('reads every name, type, size and content as put in', () => {
    expect(compareTrees(expected, seen, false)).toEqual([]);
  });

  it('converts local times with their UTC offset back to the exact UTC mtime, to 10 ms', () => {
    const wrong = [...expected]
      .filter(([p, e]) => e.type === 'file' && !/filler-|fragmented/.test(p))
      .filter(([p, e]) => seen.get(p)!.mtimeS !== e.mtimeS)
      .map(([p]) => p);
    expect(wrong).toEqual([]);
    expect(seen.get('/fractional mtime.txt')!.node.stat.mtimeNs).toBe(BigInt(T2001 + 1) * 1_000_000_000n);
    // The creation time is "now" as the FUSE daemon saw it: it must be a recent UTC time whatever the zone.
    const birth = Number(seen.get('/readme.txt')!.node.stat.birthtimeNs! / 1_000_000n);
    expect(Math.abs(birth - Date.now())).toBeLessThan(10 * 60 * 1000);
  });

  it('has both NoFatChain and FAT-chained files, and reads both', () => {
    const files = [...seen.values()].filter((e) => e.type === 'file' && e.size > v.clusterSize).map((e) => e.node as ExfatNode);
    expect(files.some((n) => n.noFatChain)).toBe(true);
    if (v.fragmented) expect((seen.get('/fragmented.bin')!.node as ExfatNode).noFatChain).toBe(false);
  });

  it('finds names case-insensitively, as Windows does', async () => {
    const root = await opened.fs.root();
    expect((await opened.fs.lookup(root, 'README.TXT'))?.stat.ino).toBe(seen.get('/readme.txt')!.node.stat.ino);
    expect((await opened.fs.lookup(root, 'ÜNÏCØDÉ ФАЙЛ 日本語.TXT'))?.stat.size).toBe(8);
    expect(await opened.fs.lookup(root, 'readme.txt.missing')).toBeNull();
  });

  it('reports modes, attributes and free space the way the bitmap says', async () => {
    const stat = seen.get('/readme.txt')!.node.stat;
    expect(stat.mode).toBe(0o644);
    expect(stat.flags).toContain('archive');
    expect(seen.get('/lower')!.node.stat).toMatchObject({ type: 'dir', mode: 0o755 });
    const inos = new Set([...seen.values()].map((e) => e.node.stat.ino));
    expect(inos.size).toBe(seen.size);
    const info = opened.fs.info();
    expect(info.freeBlocks).toBe(dumpExfatFreeClusters(image));
    expect(info.totalBlocks).toBeGreaterThan(info.freeBlocks);
  });

  it('lists the same paths as the Sleuth Kit and icat gives the same bytes', () => {
    const fls = flsPaths(image);
    expect(new Set(fls.keys())).toEqual(new Set(seen.keys()));
    for (const path of ['/A Long File Name With Spaces.text', '/large.bin', '/fragmented.bin', '/many/00999 entry in a big directory.txt']) {
      const e = seen.get(path);
      if (!e) continue;
      expect(sha256(icat(image, fls.get(path)!))).toBe(e.sha256);
    }
  });

  it('coalesces a contiguous file into one source read per request', async () => {
    const big = [...seen.values()].filter((e) => e.type === 'file' && (e.node as ExfatNode).noFatChain).sort((a, b) => b.size - a.size)[0];
    const node = big.node;
    const source = opened.source;
    const original = source.read.bind(source);
    const sizes: number[] = [];
    source.read = (b, o, l, p) => {
      sizes.push(l);
      return original(b, o, l, p);
    };
    try {
      const buf = Buffer.alloc(node.stat.size);
      await opened.fs.read(node, buf, 0, buf.length, 0);
      expect(sha256(buf)).toBe(big.sha256);
    } finally {
      source.read = original;
    }
    expect(sizes.filter((s) => s === node.stat.size)).toHaveLength(1);
  });

  it('allocated ranges hold everything needed to read the tree', async () => {
    const fs = opened.fs as ExfatFileSystem;
    const ranges = await fs.allocatedRanges();
    for (let i = 1; i < ranges.length; i++) expect(ranges[i].start).toBeGreaterThan(ranges[i - 1].start + ranges[i - 1].length);
    const g = fs.geometry;
    expect(ranges[0]).toEqual({ start: 0, length: 24 * g.bytesPerSector });
    const inHeap = ranges.filter((r) => r.start >= g.heapOffset).reduce((s, r) => s + r.length, 0);
    expect(inHeap).toBe((g.clusterCount - fs.info().freeBlocks) * g.clusterSize);
    const copy = join(work, 'ranges-only.img');
    copyRanges(image, copy, ranges);
    const again = await openImage(copy);
    try {
      expect(compareTrees(expected, await describeImageTree(again.fs), false)).toEqual([]);
    } finally {
      await closeImage(again);
      rmSync(copy);
    }
  });
});

describe('exFAT entry fields exfat-fuse does not write', () => {
  it('adds the 10 ms increment and honours (or ignores) the UTC offset', async () => {
    const dir = join(work, 'times');
    mkdirSync(dir);
    const image = join(dir, 'times.img');
    truncateSync((writeFileSync(image, ''), image), 8 * 1024 * 1024);
    await withLoop(image, async (device) => {
      run('mkfs.exfat', [device]);
      await withExfatMount(
        device,
        join(dir, 'mnt'),
        () => {
          writeFileSync(join(dir, 'mnt', 'stamp.txt'), 'x');
          utimesSync(join(dir, 'mnt', 'stamp.txt'), T2001, T2001);
        },
        'Asia/Kolkata',
      );
    });
    const mtimeOf = async () => {
      const o = await openImage(image);
      try {
        return (await o.fs.lookup(await o.fs.root(), 'stamp.txt'))!.stat.mtimeNs;
      } finally {
        await closeImage(o);
      }
    };
    const second = 1_000_000_000n;
    expect(await mtimeOf()).toBe(BigInt(T2001) * second);
    // LastModified10msIncrement (byte 21 of the File entry): 137 = 1.37 s.
    const offsets: number[] = [];
    await patchEntrySet(image, 'stamp.txt', (set) => {
      offsets.push(set[23]);
      set[21] = 137;
    });
    expect(offsets[0]).toBe(0x80 | 22); // valid, +22 quarter hours: exfat-fuse wrote +05:30
    expect(await mtimeOf()).toBe(BigInt(T2001) * second + 1_370_000_000n);
    // With the offset marked invalid, the local time is taken as UTC: 5 h 30 min later.
    await patchEntrySet(image, 'stamp.txt', (set) => {
      set[23] = 0x16;
    });
    expect(await mtimeOf()).toBe(BigInt(T2001 + 5.5 * 3600) * second + 1_370_000_000n);
  });
});

describe('exFAT files with ValidDataLength below DataLength', () => {
  it('reads the unwritten tail as zeros, whatever the clusters hold', async () => {
    const dir = join(work, 'vdl');
    mkdirSync(dir);
    const image = join(dir, 'vdl.img');
    truncateSync((writeFileSync(image, ''), image), 16 * 1024 * 1024);
    const payload = patternBytes(50_000, 9);
    await withLoop(image, async (device) => {
      run('mkfs.exfat', [device]);
      await withExfatMount(device, join(dir, 'mnt'), () => writeFileSync(join(dir, 'mnt', 'preallocated.bin'), payload));
    });
    // exfat-fuse always zeroes on extension, so write the state Windows leaves after
    // SetEndOfFile without writing: ValidDataLength 12345 of 50000, checksum recomputed.
    await patchValidDataLength(image, 'preallocated.bin', 12345);
    const o = await openImage(image);
    try {
      const node = (await o.fs.lookup(await o.fs.root(), 'preallocated.bin')) as ExfatNode;
      expect(node.validDataLength).toBe(12345);
      expect(node.stat.size).toBe(50_000);
      expect(node.stat.flags).toContain('unwritten-tail');
      const data = await readWhole(o.fs, node);
      expect(data.subarray(0, 12345).equals(payload.subarray(0, 12345))).toBe(true);
      expect(data.subarray(12345).every((b) => b === 0)).toBe(true);
      // The clusters themselves still hold the old bytes: a raw read would not give zeros.
      expect(payload.subarray(12345).some((b) => b !== 0)).toBe(true);
      const straddle = Buffer.alloc(100, 0xaa);
      expect(await o.fs.read(node, straddle, 0, 100, 12300)).toBe(100);
      expect(straddle.subarray(0, 45).equals(payload.subarray(12300, 12345))).toBe(true);
      expect(straddle.subarray(45).every((b) => b === 0)).toBe(true);
      // Mapped for synchronous reads, the unwritten tail is a hole, not the clusters behind it.
      const pieces = await o.fs.mapFile!(node, 12000, 1000);
      expect(pieces).toHaveLength(2);
      expect(pieces![0].at).not.toBeNull();
      expect(pieces![0].length).toBe(345);
      expect(pieces![1]).toEqual({ at: null, length: 655 });
    } finally {
      await closeImage(o);
    }
  });
});
