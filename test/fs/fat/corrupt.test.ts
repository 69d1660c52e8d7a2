import { spawnSync } from 'node:child_process';
/**
 * Damaged FAT volumes: each test patches a copy of a real mkfs.fat/mtools image
 * and checks for a one-line CorruptError naming the structure and byte offset,
 * within a second, with the rest of the volume still readable where only one
 * thing is broken.
 */
import { copyFileSync, mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectFileSystem } from '../../../parsers/fs/index.js';
import { fatDriver, type FatFileSystem, type FatNode } from '../../../parsers/fs/fat/index.js';
import { RawFileSource } from '../../../parsers/source/raw.js';
import { tempDir } from '../../support/run.js';
import { closeImage, describeImageTree, expectCorrupt, makeFatImage, mtools, openImage, patch, patternBytes, peek, readWhole, sha256 } from './support.js';

let work: string;
let cleanup: () => void;
/** Pristine images, copied before every patch. */
const base: Record<'fat12' | 'fat16' | 'fat32', string> = { fat12: '', fat16: '', fat32: '' };
const content = {
  'a.bin': patternBytes(5000, 1),
  'b.bin': patternBytes(3000, 2),
  'A long name.txt': Buffer.from('long name\n'),
};

beforeAll(() => {
  const t = tempDir('loopless-fat-corrupt-');
  work = t.dir;
  cleanup = t.cleanup;
  const tree = join(work, 'tree');
  mkdirSync(join(tree, 'sub'), { recursive: true });
  for (const [name, data] of Object.entries(content)) writeFileSync(join(tree, name), data);
  for (let i = 0; i < 30; i++) writeFileSync(join(tree, 'sub', `${String(i).padStart(2, '0')} entry with a long name.txt`), `${i}\n`);
  writeFileSync(join(tree, 'zzz last.txt'), 'last\n');
  const specs = { fat12: [['-F', '12'], 1440], fat16: [['-F', '16', '-s', '1'], 12000], fat32: [['-F', '32', '-s', '1'], 40000] } as const;
  for (const [type, [args, kib]] of Object.entries(specs)) {
    base[type as keyof typeof base] = join(work, `${type}.img`);
    makeFatImage(join(work, `${type}.img`), [...args], kib, tree);
  }
});
afterAll(() => cleanup?.());

let copies = 0;
function copyOf(type: keyof typeof base): string {
  const to = join(work, `copy-${copies++}.img`);
  copyFileSync(base[type], to);
  return to;
}

async function nodeAt(fs: FatFileSystem, path: string): Promise<FatNode> {
  let node = await fs.root();
  for (const part of path.split('/').filter(Boolean)) node = (await fs.lookup(node, part))!;
  return node;
}

/** Facts about the pristine image needed to aim a patch. */
async function layout(image: string, path: string) {
  const o = await openImage(image);
  try {
    const fs = o.fs as FatFileSystem;
    const node = await nodeAt(fs, path);
    const g = fs.geometry;
    const bits = g.type === 'fat12' ? 12 : g.type === 'fat16' ? 16 : 32;
    /** Byte offset of `cluster`'s FAT entry (FAT12: the first of the two bytes it shares). */
    const entry = (cluster: number) => g.activeFatOffset + Math.floor((cluster * bits) / 8);
    /** The cluster after `cluster` in its chain, read straight from the image. */
    const next = (cluster: number) => {
      if (bits === 32) return peek(image, entry(cluster), 4).readUInt32LE(0) & 0x0fffffff;
      const pair = peek(image, entry(cluster), 2).readUInt16LE(0);
      if (bits === 16) return pair;
      return cluster & 1 ? pair >> 4 : pair & 0x0fff;
    };
    /** Point `cluster`'s FAT entry at `value` (FAT12: keeping the neighbour's half of the shared bytes). */
    const setNext = (cluster: number, value: number) => {
      const at = entry(cluster);
      const b = Buffer.alloc(bits === 32 ? 4 : 2);
      if (bits === 32) b.writeUInt32LE(value);
      else if (bits === 16) b.writeUInt16LE(value);
      else {
        const pair = peek(image, at, 2).readUInt16LE(0);
        b.writeUInt16LE(cluster & 1 ? (pair & 0x000f) | ((value & 0xfff) << 4) : (pair & 0xf000) | (value & 0xfff));
      }
      patch(image, at, b);
    };
    return { g, node, entry, next, setNext };
  } finally {
    await closeImage(o);
  }
}

/** FAT32's backup boot sector (sector 6 for mkfs.fat) would stand in for a damaged primary: damage both. */
function patchBoot(image: string, type: string, at: number, bytes: Buffer | number[]): void {
  patch(image, at, bytes);
  if (type === 'fat32') patch(image, 6 * 512 + at, bytes);
}

async function expectOthersReadable(image: string): Promise<void> {
  const o = await openImage(image);
  try {
    const b = await nodeAt(o.fs as FatFileSystem, '/b.bin');
    expect(sha256(await readWhole(o.fs, b))).toBe(sha256(content['b.bin']));
    const names = (await o.fs.readdir(await o.fs.root())).map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(['b.bin', 'zzz last.txt', 'sub']));
  } finally {
    await closeImage(o);
  }
}

describe.each(['fat12', 'fat16', 'fat32'] as const)('%s', (type) => {
  it('FAT copies that disagree: allocation counts what either marks in use (restore loses nothing), with a warning', async () => {
    const image = copyOf(type);
    const { g, node, next, setNext } = await layout(image, '/b.bin');
    const chain: number[] = [];
    for (let c = node.firstCluster; c >= 2 && c < g.clusterCount + 2 && chain.length < 100; c = next(c)) chain.push(c);
    expect(chain.length).toBeGreaterThan(0);
    for (const c of chain) setNext(c, 0); // b.bin's clusters look free in the FAT in use only
    expect(spawnSync('fsck.fat', ['-n', image], { encoding: 'utf8' }).stdout).toMatch(/FATs differ/);
    const o = await openImage(image);
    try {
      const ranges = await o.fs.allocatedRanges();
      const heap = g.heapOffset;
      for (const c of chain) {
        const at = heap + (c - 2) * g.clusterSize;
        expect(ranges.some((r) => r.start <= at && at < r.start + r.length), `cluster ${c}`).toBe(true);
      }
      expect(o.fs.info().warnings).toEqual([expect.stringMatching(new RegExp(`^FAT copy 2 at byte \\d+ marks ${chain.length} cluster\\(s\\) in use that the FAT in use marks free`))]);
    } finally {
      await closeImage(o);
    }
  });

  it('a cluster chain that loops back is a CorruptError naming the FAT chain', async () => {
    const image = copyOf(type);
    const { node, setNext } = await layout(image, '/a.bin');
    setNext(node.firstCluster + 3, node.firstCluster + 1);
    const o = await openImage(image);
    try {
      const a = await nodeAt(o.fs as FatFileSystem, '/a.bin');
      const e = await expectCorrupt(() => readWhole(o.fs, a), 'FAT chain');
      expect(e.message).toContain('/a.bin');
      expect(e.message).toContain('loops');
    } finally {
      await closeImage(o);
    }
    await expectOthersReadable(image);
  });

  it('a FAT entry pointing past the last cluster is a CorruptError at that entry', async () => {
    const image = copyOf(type);
    const { node, entry, g, next, setNext } = await layout(image, '/a.bin');
    const second = next(node.firstCluster);
    const at = entry(second);
    setNext(second, g.clusterCount + 100);
    const o = await openImage(image);
    try {
      const a = await nodeAt(o.fs as FatFileSystem, '/a.bin');
      const e = await expectCorrupt(() => readWhole(o.fs, a), 'FAT', at);
      expect(e.message).toContain('outside the cluster heap');
    } finally {
      await closeImage(o);
    }
    await expectOthersReadable(image);
  });

  it('a free entry in the middle of a chain is a CorruptError at that entry', async () => {
    const image = copyOf(type);
    const { node, entry, next, setNext } = await layout(image, '/a.bin');
    const second = next(node.firstCluster);
    const at = entry(second);
    setNext(second, 0);
    const o = await openImage(image);
    try {
      const a = await nodeAt(o.fs as FatFileSystem, '/a.bin');
      await expectCorrupt(() => readWhole(o.fs, a), 'FAT', at);
    } finally {
      await closeImage(o);
    }
  });

  it('a looping directory chain fails that directory only', async () => {
    const image = copyOf(type);
    const { node, next, setNext } = await layout(image, '/sub');
    // 30 long names need more than one 512-byte cluster: make the second link back to the first.
    const second = next(node.firstCluster);
    expect(second).toBeGreaterThan(1);
    expect(second).toBeLessThan(0xff0);
    setNext(second, node.firstCluster);
    const o = await openImage(image);
    try {
      const sub = await nodeAt(o.fs as FatFileSystem, '/sub');
      await expectCorrupt(() => o.fs.readdir(sub), 'FAT chain');
    } finally {
      await closeImage(o);
    }
    await expectOthersReadable(image);
  });

  it('a zeroed boot sector is not detected, and opening it names the BPB', async () => {
    const image = copyOf(type);
    patchBoot(image, type, 0, Buffer.alloc(512));
    const source = await RawFileSource.open(image);
    try {
      expect((await detectFileSystem(source)).type).toBeNull();
      await expectCorrupt(() => fatDriver.open(source), 'FAT boot sector (BPB)');
    } finally {
      await source.close();
    }
  });

  it.each([
    ['bytes per sector not a power of two', 11, [0x00, 0x03], 11],
    ['sectors per cluster not a power of two', 13, [3], 13],
    ['no reserved sectors', 14, [0, 0], 14],
    ['no FATs', 16, [0], 16],
    ['a bad media byte', 21, [0x12], 21],
    ['no boot signature', 510, [0, 0], 510],
  ])('a BPB with %s is rejected naming byte %i', async (_, at, bytes, reported) => {
    const image = copyOf(type);
    patchBoot(image, type, at as number, bytes as number[]);
    const source = await RawFileSource.open(image);
    try {
      expect((await detectFileSystem(source)).type).toBeNull();
      await expectCorrupt(() => fatDriver.open(source), 'FAT boot sector (BPB)', reported as number);
    } finally {
      await source.close();
    }
  });

  it('a directory entry with impossible name bytes is skipped, the rest listed', async () => {
    const image = copyOf(type);
    const { node } = await layout(image, '/b.bin');
    patch(image, node.entryOffset, [0x01, 0x02, 0x03]);
    const o = await openImage(image);
    try {
      const names = (await o.fs.readdir(await o.fs.root())).map((e) => e.name);
      expect(names).not.toContain('b.bin');
      expect(names).toEqual(expect.arrayContaining(['a.bin', 'A long name.txt', 'sub', 'zzz last.txt']));
      const a = await nodeAt(o.fs as FatFileSystem, '/a.bin');
      expect(sha256(await readWhole(o.fs, a))).toBe(sha256(content['a.bin']));
    } finally {
      await closeImage(o);
    }
  });

  it('a long name whose checksum does not match falls back to the 8.3 name', async () => {
    const image = copyOf(type);
    const { node } = await layout(image, '/A long name.txt');
    // The LFN piece right before the short entry: corrupt its checksum byte (13).
    const lfnAt = node.entryOffset - 32;
    expect(peek(image, lfnAt + 11, 1)[0]).toBe(0x0f);
    patch(image, lfnAt + 13, [peek(image, lfnAt + 13, 1)[0] ^ 0xff]);
    const o = await openImage(image);
    try {
      const names = (await o.fs.readdir(await o.fs.root())).map((e) => e.name);
      expect(names).not.toContain('A long name.txt');
      const short = names.find((n) => /^ALONGN~\d\.TXT$/.test(n));
      expect(short).toBeDefined();
      expect(names).toEqual(expect.arrayContaining(['a.bin', 'b.bin', 'zzz last.txt']));
    } finally {
      await closeImage(o);
    }
  });

  it('long-name pieces orphaned by a deleted short entry do not attach to the next entry', async () => {
    const image = copyOf(type);
    const { node } = await layout(image, '/A long name.txt');
    patch(image, node.entryOffset, [0xe5]);
    const o = await openImage(image);
    try {
      const entries = await o.fs.readdir(await o.fs.root());
      const names = entries.map((e) => e.name);
      expect(names.some((n) => /long name/i.test(n))).toBe(false);
      expect(names).toEqual(expect.arrayContaining(['a.bin', 'b.bin', 'sub', 'zzz last.txt']));
    } finally {
      await closeImage(o);
    }
  });

  it('a file whose size outruns its chain reads up to the chain end, then names the entry', async () => {
    const image = copyOf(type);
    const { node } = await layout(image, '/b.bin');
    patch(image, node.entryOffset + 28, [0x00, 0x00, 0x01, 0x00]); // 65536 bytes
    const o = await openImage(image);
    try {
      const b = await nodeAt(o.fs as FatFileSystem, '/b.bin');
      const head = Buffer.alloc(3000);
      expect(await o.fs.read(b, head, 0, 3000, 0)).toBe(3000);
      expect(sha256(head)).toBe(sha256(content['b.bin']));
      await expectCorrupt(() => readWhole(o.fs, b), 'FAT directory entry', node.entryOffset);
    } finally {
      await closeImage(o);
    }
  });

  it('a subdirectory entry with no first cluster fails only that directory', async () => {
    const image = copyOf(type);
    const { node } = await layout(image, '/sub');
    patch(image, node.entryOffset + 20, [0, 0]);
    patch(image, node.entryOffset + 26, [0, 0]);
    const o = await openImage(image);
    try {
      const sub = await nodeAt(o.fs as FatFileSystem, '/sub');
      await expectCorrupt(() => o.fs.readdir(sub), 'FAT directory entry', node.entryOffset);
    } finally {
      await closeImage(o);
    }
    await expectOthersReadable(image);
  });

  it('a truncated image opens with a warning; what is left stays readable', async () => {
    const image = copyOf(type);
    const o0 = await openImage(image);
    const heap = (o0.fs as FatFileSystem).geometry.heapOffset;
    await closeImage(o0);
    // Keep the metadata and the first few clusters: the big directory and later files are gone.
    truncateSync(image, heap + 16 * 1024);
    const o = await openImage(image);
    try {
      expect(o.fs.info().warnings?.join(' ')).toMatch(/truncated/);
      expect((await o.fs.readdir(await o.fs.root())).length).toBeGreaterThan(3);
      const a = await nodeAt(o.fs as FatFileSystem, '/a.bin');
      expect(sha256(await readWhole(o.fs, a))).toBe(sha256(content['a.bin']));
      // Walking everything reaches the missing part: a typed error naming where the volume ends.
      await expectCorrupt(() => describeImageTree(o.fs), /cluster heap|directory|FAT/);
    } finally {
      await closeImage(o);
    }
  });
});

describe('FAT32 specifics', () => {
  it.each([
    ['zeroed', 0, Buffer.alloc(512), /FAT boot sector \(BPB\) at byte 510: .*boot signature 0x55AA missing; using the backup boot sector at byte 3072/],
    ['with no FATs', 16, [0], /FAT boot sector \(BPB\) at byte 16: .*number of FATs is 0; using the backup boot sector at byte 3072/],
  ])('a %s boot sector: found through the backup in sector 6, every file intact, and the fallback reported', async (_, at, bytes, warning) => {
    const image = copyOf('fat32');
    patch(image, at as number, bytes as number[]);
    const source = await RawFileSource.open(image);
    try {
      expect((await detectFileSystem(source)).type).toBe('fat32');
    } finally {
      await source.close();
    }
    // fsck.fat cannot open it at all (it reads the backup only to compare it with a good primary).
    expect(spawnSync('fsck.fat', ['-n', image], { encoding: 'utf8' }).status).not.toBe(0);
    const o = await openImage(image);
    try {
      expect(o.fs.info().warnings?.join('\n')).toMatch(warning);
      expect(o.fs.info().type).toBe('fat32');
    } finally {
      await closeImage(o);
    }
    await expectOthersReadable(image);
  });

  it('a root cluster outside the heap is rejected naming byte 44', async () => {
    const image = copyOf('fat32');
    patchBoot(image, 'fat32', 44, [0xff, 0xff, 0xff, 0x0f]);
    const source = await RawFileSource.open(image);
    try {
      await expectCorrupt(() => fatDriver.open(source), 'FAT boot sector (BPB)', 44);
    } finally {
      await source.close();
    }
  });

  it('without a valid FSInfo the free count is counted from the FAT, and matches mtools', async () => {
    const image = copyOf('fat32');
    patch(image, 512, Buffer.alloc(512)); // FSInfo is sector 1 for mkfs.fat
    const o = await openImage(image);
    try {
      const info = o.fs.info();
      const m = /([\d ]+) bytes free/.exec(mtools('mdir', image, '::/'))!;
      expect(info.freeBlocks * info.blockSize).toBe(Number(m[1].replace(/ /g, '')));
    } finally {
      await closeImage(o);
    }
  });

  it('FSInfo free count is used when valid', async () => {
    const image = copyOf('fat32');
    const fsinfo = peek(image, 512, 512);
    fsinfo.writeUInt32LE(1234, 488);
    patch(image, 512, fsinfo);
    const o = await openImage(image);
    try {
      expect(o.fs.info().freeBlocks).toBe(1234);
    } finally {
      await closeImage(o);
    }
  });
});
