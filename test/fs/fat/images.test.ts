/**
 * FAT12/16/32 images built by mkfs.fat (various sector and cluster sizes) and
 * filled by mtools: every name, type, size, content hash and mtime must match
 * the source tree; the label, serial, free count and allocated ranges must
 * match what the tools say; the Sleuth Kit must list the same paths and give
 * the same bytes.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FatFileSystem, type FatNode } from '../../../parsers/fs/fat/index.js';
import { FatTable } from '../../../parsers/fs/fat/fat-table.js';
import { tempDir } from '../../support/run.js';
import {
  buildTree,
  closeImage,
  compareTrees,
  copyRanges,
  describeImageTree,
  describeSourceTree,
  flsPaths,
  fragment,
  icat,
  makeFatImage,
  mtools,
  openImage,
  patch,
  patternBytes,
  peek,
  readWhole,
  sha256,
  type SeenEntry,
  T2001,
  type TreeOptions,
} from './support.js';

interface Variant {
  name: string;
  mkfs: string[];
  sizeKiB: number;
  type: 'fat12' | 'fat16' | 'fat32';
  clusterSize: number;
  tree: TreeOptions;
  label: string | null;
  uuid: string;
  /** Build a fragmented file in it. */
  fragmented?: { holes: number; holeBytes: number; bigBytes: number };
}

const variants: Variant[] = [
  {
    name: 'FAT12 1.44 MB floppy, 1000-entry directory',
    mkfs: ['-F', '12', '-n', 'FLOPPY', '-i', '1234ABCD'],
    sizeKiB: 1440,
    type: 'fat12',
    clusterSize: 512,
    tree: { bigDir: 1000, depth: 12 },
    label: 'FLOPPY',
    uuid: '1234-ABCD',
    fragmented: { holes: 6, holeBytes: 1500, bigBytes: 8000 },
  },
  {
    name: 'FAT12 with 4 KiB sectors',
    mkfs: ['-F', '12', '-S', '4096', '-s', '1', '-i', '0000BEEF'],
    sizeKiB: 8192,
    type: 'fat12',
    clusterSize: 4096,
    tree: {},
    label: null,
    uuid: '0000-BEEF',
  },
  {
    name: 'FAT16 2 KiB clusters, 1200-entry directory, 17 MiB file',
    mkfs: ['-F', '16', '-s', '4', '-n', 'SIXTEEN', '-i', 'DEADBEEF'],
    sizeKiB: 65536,
    type: 'fat16',
    clusterSize: 2048,
    tree: { bigDir: 1200, largeFile: 17 * 1024 * 1024 + 123 },
    label: 'SIXTEEN',
    uuid: 'DEAD-BEEF',
    fragmented: { holes: 8, holeBytes: 9000, bigBytes: 50_000 },
  },
  {
    name: 'FAT16 with 2 KiB sectors, one FAT, 512 root entries',
    mkfs: ['-F', '16', '-S', '2048', '-s', '1', '-f', '1', '-r', '512', '-n', 'ONE FAT', '-i', '0BADF00D'],
    sizeKiB: 49152,
    type: 'fat16',
    clusterSize: 2048,
    tree: {},
    label: 'ONE FAT',
    uuid: '0BAD-F00D',
  },
  {
    name: 'FAT32 4 KiB clusters, 1000-entry directory, 20 MiB file',
    mkfs: ['-F', '32', '-s', '8', '-n', 'THIRTYTWO', '-i', 'CAFE1234'],
    sizeKiB: 307200,
    type: 'fat32',
    clusterSize: 4096,
    tree: { bigDir: 1000, largeFile: 20 * 1024 * 1024 },
    label: 'THIRTYTWO',
    uuid: 'CAFE-1234',
    fragmented: { holes: 10, holeBytes: 20_000, bigBytes: 150_000 },
  },
  {
    name: 'FAT32 512-byte clusters',
    mkfs: ['-F', '32', '-s', '1', '-n', 'tiny clus', '-i', '00000001'],
    sizeKiB: 40000,
    type: 'fat32',
    clusterSize: 512,
    tree: { depth: 20 },
    label: 'tiny clus',
    uuid: '0000-0001',
    fragmented: { holes: 12, holeBytes: 3000, bigBytes: 30_000 },
  },
  {
    name: 'FAT32 with 4 KiB sectors and one FAT',
    mkfs: ['-F', '32', '-S', '4096', '-s', '1', '-f', '1', '-i', 'FFFFFFFF'],
    sizeKiB: 300 * 1024,
    type: 'fat32',
    clusterSize: 4096,
    tree: { largeFile: 3 * 1024 * 1024 },
    label: null,
    uuid: 'FFFF-FFFF',
  },
];

let work: string;
let cleanup: () => void;

beforeAll(() => {
  const t = tempDir('loopless-fat-');
  work = t.dir;
  cleanup = t.cleanup;
});
afterAll(() => cleanup?.());

/** mdir's "N bytes free" line: mtools' own free count. */
function mtoolsFreeBytes(image: string): number {
  const m = /([\d ]+) bytes free/.exec(mtools('mdir', image, '-a', '::/'));
  return Number(m![1].replace(/ /g, ''));
}

describe.each(variants)('$name', (v) => {
  let image: string;
  let expected: Map<string, import('./support.js').Entry>;
  let seen: Map<string, SeenEntry>;
  let opened: Awaited<ReturnType<typeof openImage>>;

  beforeAll(async () => {
    const dir = join(work, v.name.replace(/[^a-z0-9]+/gi, '-'));
    const tree = join(dir, 'tree');
    buildTree(tree, v.tree);
    image = join(dir, 'fat.img');
    makeFatImage(image, v.mkfs, v.sizeKiB, tree);
    if (v.fragmented) {
      const scratch = join(dir, 'scratch');
      mkdirSync(scratch);
      const big = patternBytes(v.fragmented.bigBytes, 77);
      fragment(
        (name, data) => {
          const p = join(scratch, name);
          writeFileSync(p, data);
          if (name === 'fragmented.bin' && v.type === 'fat32') {
            // mtools allocates after FSInfo's next-free hint; "unknown" makes it start over and fill the holes.
            const bpb = peek(image, 0, 512);
            patch(image, bpb.readUInt16LE(48) * bpb.readUInt16LE(11) + 492, [0xff, 0xff, 0xff, 0xff]);
          }
          mtools('mcopy', image, '-m', p, `::/${name}`);
          if (name === 'fragmented.bin') writeFileSync(join(tree, name), data);
        },
        (name) => mtools('mdel', image, `::/${name}`),
        v.fragmented.holes,
        v.fragmented.holeBytes,
        big,
      );
      for (let i = 1; i < v.fragmented.holes * 2; i += 2) {
        const name = `filler-${String(i).padStart(3, '0')}.bin`;
        writeFileSync(join(tree, name), patternBytes(v.fragmented.holeBytes, 100 + i));
      }
      rmSync(scratch, { recursive: true });
    }
    // mtools stamps copies with the time of the copy unless -m; the fragment files were copied with -m from fresh files.
    expected = describeSourceTree(tree);
    opened = await openImage(image);
    seen = await describeImageTree(opened.fs);
  }, 300_000);

  afterAll(async () => {
    if (opened) await closeImage(opened);
  });

  it('is detected by cluster count with the right type', () => {
    expect(opened.type).toBe(v.type);
    expect(opened.fs.info().type).toBe(v.type);
    expect(opened.fs.info().blockSize).toBe(v.clusterSize);
  });

  it('reads every name, type, size, content and mtime as put in', () => {
    // Fragment helpers were written at "now"; only the tree's own files have fixed mtimes.
    const problems = compareTrees(expected, seen, false);
    expect(problems).toEqual([]);
    const mtimeProblems = [...expected]
      .filter(([p, e]) => e.type === 'file' && !/filler-|fragmented/.test(p))
      .filter(([p, e]) => seen.get(p)!.mtimeS !== e.mtimeS)
      .map(([p, e]) => `${p}: ${seen.get(p)!.mtimeS} != ${e.mtimeS}`);
    expect(mtimeProblems).toEqual([]);
    expect(seen.get('/readme.txt')!.node.stat.mtimeNs).toBe(BigInt(T2001) * 1_000_000_000n);
  });

  it('keeps lowercase 8.3 names lowercase via the NT case flags, not long names', () => {
    for (const [path, flags] of [
      ['/readme.txt', 0x18],
      ['/lower', 0x08],
    ] as const) {
      const node = seen.get(path)!.node as FatNode;
      const entry = peek(image, node.entryOffset, 32);
      expect(entry.subarray(0, 11).toString('latin1')).toBe(path === '/lower' ? 'LOWER      ' : 'README  TXT');
      expect(entry[12] & 0x18).toBe(flags);
      // The entry before is not a long-name piece: the lowercase really comes from the flags.
      const before = peek(image, node.entryOffset - 32, 32);
      expect(before[11] & 0x3f).not.toBe(0x0f);
    }
  });

  it('reports label, serial, free space (as mtools counts it) and synthesized modes', () => {
    const info = opened.fs.info();
    expect(info.label).toBe(v.label);
    expect(info.uuid).toBe(v.uuid);
    expect(info.freeBlocks * info.blockSize).toBe(mtoolsFreeBytes(image));
    expect(info.maxNameLength).toBe(255);
    const file = seen.get('/readme.txt')!.node.stat;
    expect(file.mode).toBe(0o644);
    expect(file.flags).toContain('archive');
    expect(seen.get('/lower')!.node.stat.mode).toBe(0o755);
    expect(file.ino).toBe((seen.get('/readme.txt')!.node as FatNode).entryOffset);
    const inos = new Set([...seen.values()].map((e) => e.node.stat.ino));
    expect(inos.size).toBe(seen.size);
  });

  it('finds names case-insensitively and by their 8.3 alias', async () => {
    const root = await opened.fs.root();
    expect((await opened.fs.lookup(root, 'README.TXT'))?.stat.ino).toBe(seen.get('/readme.txt')!.node.stat.ino);
    expect((await opened.fs.lookup(root, 'mixedcase.txt'))?.stat.ino).toBe(seen.get('/MixedCase.Txt')!.node.stat.ino);
    const long = await opened.fs.lookup(root, 'A Long File Name With Spaces.text');
    expect(long?.stat.size).toBe(5000);
    expect((await opened.fs.lookup(root, 'ALONGF~1.TEX'))?.stat.ino).toBe(long!.stat.ino);
    expect(await opened.fs.lookup(root, 'no such file')).toBeNull();
  });

  it('lists the same paths as the Sleuth Kit and icat gives the same bytes', () => {
    const fls = flsPaths(image);
    const ours = new Set(seen.keys());
    // TSK ignores the NT lowercase flags for 8.3 names, so compare case-insensitively.
    const fold = (s: Set<string>) => new Set([...s].map((p) => p.toUpperCase()));
    expect(fold(new Set(fls.keys()))).toEqual(fold(ours));
    const byUpper = new Map([...fls].map(([p, ino]) => [p.toUpperCase(), ino]));
    for (const path of ['/A Long File Name With Spaces.text', '/one-more-than-4096.bin', '/large.bin', '/fragmented.bin']) {
      const e = seen.get(path);
      if (!e) continue;
      expect(sha256(icat(image, byUpper.get(path.toUpperCase())!))).toBe(e.sha256);
    }
  });

  // Only the volumes built with a fragmented file have this test.
  if (v.fragmented) it('reads a fragmented file correctly, one source read per fragment', async () => {
    const node = seen.get('/fragmented.bin')!.node as FatNode;
    const g = (opened.fs as FatFileSystem).geometry;
    const table = new FatTable(opened.source, {
      bits: g.type === 'fat12' ? 12 : g.type === 'fat16' ? 16 : 32,
      exfat: false,
      offset: g.activeFatOffset,
      clusterCount: g.clusterCount,
    });
    const runs = await table.chain(node.firstCluster, Math.ceil(node.stat.size / g.clusterSize), { name: 'x', structure: 'x', entryOffset: 0 });
    expect(runs.length).toBeGreaterThan(2);
    // Count the reads that reach the source for one whole-file read.
    const source = opened.source;
    const original = source.read.bind(source);
    let reads = 0;
    source.read = (b, o, l, p) => {
      reads++;
      return original(b, o, l, p);
    };
    try {
      const buf = Buffer.alloc(node.stat.size);
      await opened.fs.read(node, buf, 0, buf.length, 0);
      expect(sha256(buf)).toBe(expected.get('/fragmented.bin')!.sha256);
      expect(reads).toBe(runs.length);
    } finally {
      source.read = original;
    }
  });

  it('reads at odd offsets across cluster boundaries and clamps at end of file', async () => {
    const node = seen.get('/A Long File Name With Spaces.text')!.node;
    const whole = await readWhole(opened.fs, node);
    const buf = Buffer.alloc(2000);
    const n = await opened.fs.read(node, buf, 0, 2000, 511);
    expect(n).toBe(2000);
    expect(buf.equals(whole.subarray(511, 2511))).toBe(true);
    expect(await opened.fs.read(node, buf, 0, 2000, 4500)).toBe(500);
    expect(await opened.fs.read(node, buf, 0, 10, 5000)).toBe(0);
    const empty = seen.get('/empty')!.node;
    expect(await opened.fs.read(empty, buf, 0, 10, 0)).toBe(0);
  });

  it('allocated ranges cover metadata and every file, and nothing else is needed to read the tree', async () => {
    const fs = opened.fs as FatFileSystem;
    const ranges = await fs.allocatedRanges();
    for (let i = 1; i < ranges.length; i++) expect(ranges[i].start).toBeGreaterThan(ranges[i - 1].start + ranges[i - 1].length);
    const g = fs.geometry;
    expect(ranges[0]).toMatchObject({ start: 0 });
    expect(ranges[0].length).toBeGreaterThanOrEqual(g.heapOffset);
    const allocated = ranges.reduce((s, r) => s + r.length, 0);
    const used = (g.clusterCount - fs.info().freeBlocks) * g.clusterSize;
    expect(allocated).toBe(g.heapOffset + used);
    // An image holding only the allocated ranges must read back identically.
    const copy = join(work, `${v.type}-ranges-only.img`);
    copyRanges(image, copy, ranges);
    const again = await openImage(copy);
    try {
      const tree = await describeImageTree(again.fs);
      expect(compareTrees(expected, tree, false)).toEqual([]);
    } finally {
      await closeImage(again);
      rmSync(copy);
    }
  });
});

describe('short names without long names', () => {
  it('decodes OEM code page 437 and the 0x05 escape for 0xE5', async () => {
    const dir = join(work, 'cp437');
    mkdirSync(dir);
    const image = join(dir, 'cp437.img');
    makeFatImage(image, ['-F', '12'], 1440);
    const mtoolsrc = join(dir, 'mtoolsrc');
    writeFileSync(mtoolsrc, 'default_codepage=437\n');
    for (const name of ['¥EN.TXT', 'CAFÉ.TXT', 'XIGMA.TXT']) {
      writeFileSync(join(dir, name), name);
      // Short names only, in code page 437, exactly as DOS would have written them.
      const { execFileSync } = await import('node:child_process');
      execFileSync('mcopy', ['-i', image, join(dir, name), '::/'], {
        env: { ...process.env, TZ: 'UTC', MTOOLSRC: mtoolsrc, MTOOLS_NO_VFAT: '1', MTOOLS_SKIP_CHECK: '1' },
      });
    }
    // A name starting with 0xE5 ('σ' in CP437) is stored with 0x05, since 0xE5 marks deleted entries.
    const o1 = await openImage(image);
    const xigma = (await o1.fs.lookup(await o1.fs.root(), 'XIGMA.TXT')) as FatNode;
    await closeImage(o1);
    patch(image, xigma.entryOffset, [0x05]);
    const o = await openImage(image);
    try {
      const names = (await o.fs.readdir(await o.fs.root())).map((e) => e.name);
      expect(names).toEqual(['¥EN.TXT', 'CAFÉ.TXT', 'σIGMA.TXT']);
      const yen = (await o.fs.lookup(await o.fs.root(), '¥en.txt'))!;
      expect((await readWhole(o.fs, yen)).toString()).toBe('¥EN.TXT');
    } finally {
      await closeImage(o);
    }
  });
});

describe('FAT timestamps', () => {
  it('decodes creation time with its 10 ms field, the access date, and an unset write date', async () => {
    const dir = join(work, 'times');
    mkdirSync(dir);
    const image = join(dir, 'times.img');
    makeFatImage(image, ['-F', '12'], 1440);
    writeFileSync(join(dir, 'stamp.txt'), 'x');
    mtools('mcopy', image, join(dir, 'stamp.txt'), '::/stamp.txt');
    const o1 = await openImage(image);
    const node = (await o1.fs.lookup(await o1.fs.root(), 'stamp.txt')) as FatNode;
    await closeImage(o1);
    // 2021-06-15 13:45:58 + 1.37 s created, accessed 2022-01-02, written 2023-12-31 23:59:58.
    const dosDate = (y: number, m: number, d: number) => ((y - 1980) << 9) | (m << 5) | d;
    const dosTime = (h: number, mi: number, s: number) => (h << 11) | (mi << 5) | (s / 2);
    const e = peek(image, node.entryOffset, 32);
    e[13] = 137;
    e.writeUInt16LE(dosTime(13, 45, 58), 14);
    e.writeUInt16LE(dosDate(2021, 6, 15), 16);
    e.writeUInt16LE(dosDate(2022, 1, 2), 18);
    e.writeUInt16LE(dosTime(23, 59, 58), 22);
    e.writeUInt16LE(dosDate(2023, 12, 31), 24);
    patch(image, node.entryOffset, e);
    const ms = (iso: string) => BigInt(Date.parse(iso)) * 1_000_000n;
    let o = await openImage(image);
    try {
      const s = (await o.fs.lookup(await o.fs.root(), 'stamp.txt'))!.stat;
      expect(s.birthtimeNs).toBe(ms('2021-06-15T13:45:59.370Z'));
      expect(s.atimeNs).toBe(ms('2022-01-02T00:00:00.000Z'));
      expect(s.mtimeNs).toBe(ms('2023-12-31T23:59:58.000Z'));
      expect(s.ctimeNs).toBe(s.mtimeNs);
    } finally {
      await closeImage(o);
    }
    // Unset fields: no creation time, the write date falls back to the DOS epoch, access to the write time.
    patch(image, node.entryOffset + 13, Buffer.alloc(7));
    patch(image, node.entryOffset + 22, Buffer.alloc(4));
    o = await openImage(image);
    try {
      const s = (await o.fs.lookup(await o.fs.root(), 'stamp.txt'))!.stat;
      expect(s.birthtimeNs).toBeNull();
      expect(s.mtimeNs).toBe(ms('1980-01-01T00:00:00.000Z'));
      expect(s.atimeNs).toBe(s.mtimeNs);
    } finally {
      await closeImage(o);
    }
  });
});
