/**
 * Damaged exFAT volumes: patched copies of one mkfs.exfat + exfat-fuse image.
 * A damaged main boot region falls back to the backup with a warning; both
 * damaged is a clear error; a damaged entry set loses that file only; broken
 * chains and impossible cluster numbers are CorruptErrors naming the structure
 * and offset, each within a second.
 */
import { copyFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exfatDriver, type ExfatFileSystem, type ExfatNode } from '../../../parsers/fs/exfat/index.js';
import { detectFileSystem } from '../../../parsers/fs/index.js';
import { RawFileSource } from '../../../parsers/source/raw.js';
import { tempDir } from '../../support/run.js';
import { closeImage, expectCorrupt, openImage, patch, patternBytes, peek, readWhole, run, sha256, withExfatMount, withLoop } from '../fat/support.js';
import { entrySetOf, patchEntrySet } from './support.js';

let work: string;
let cleanup: () => void;
let pristine: string;
const chained = patternBytes(40_000, 3);
const contiguous = patternBytes(20_000, 4);

beforeAll(async () => {
  const t = tempDir('loopless-exfat-corrupt-');
  work = t.dir;
  cleanup = t.cleanup;
  pristine = join(work, 'pristine.img');
  writeFileSync(pristine, '');
  truncateSync(pristine, 8 * 1024 * 1024);
  await withLoop(pristine, async (device) => {
    run('mkfs.exfat', ['-L', 'broken', device]);
    await withExfatMount(device, join(work, 'mnt'), () => {
      const m = (n: string) => join(work, 'mnt', n);
      for (let i = 0; i < 6; i++) writeFileSync(m(`hole${i}`), patternBytes(5000, i));
      for (let i = 0; i < 6; i += 2) unlinkSync(m(`hole${i}`));
      writeFileSync(m('chained.bin'), chained); // fills the holes: FAT-chained
      writeFileSync(m('contiguous.bin'), contiguous);
      writeFileSync(m('victim.txt'), 'this entry set gets damaged\n');
      writeFileSync(m('zzz after.txt'), 'still here\n');
    });
  });
}, 120_000);
afterAll(() => cleanup?.());

let copies = 0;
function copy(): string {
  const to = join(work, `copy-${copies++}.img`);
  copyFileSync(pristine, to);
  return to;
}

async function rootNames(image: string): Promise<string[]> {
  const o = await openImage(image);
  try {
    return (await o.fs.readdir(await o.fs.root())).map((e) => e.name);
  } finally {
    await closeImage(o);
  }
}

async function withFile<T>(image: string, name: string, fn: (fs: ExfatFileSystem, node: ExfatNode) => Promise<T>): Promise<T> {
  const o = await openImage(image);
  try {
    const node = (await o.fs.lookup(await o.fs.root(), name)) as ExfatNode;
    return await fn(o.fs as ExfatFileSystem, node);
  } finally {
    await closeImage(o);
  }
}

describe('exFAT damage', () => {
  it('the pristine image has a chained and a contiguous file', async () => {
    await withFile(pristine, 'chained.bin', async (fs, node) => {
      expect(node.noFatChain).toBe(false);
      expect(sha256(await readWhole(fs, node))).toBe(sha256(chained));
    });
    await withFile(pristine, 'contiguous.bin', async (_, node) => expect(node.noFatChain).toBe(true));
  });

  it('a bad main boot checksum falls back to the backup region, with a warning', async () => {
    const image = copy();
    patch(image, 9 * 512 + 100, [0x42]); // OEM parameters sector: covered by the checksum
    const o = await openImage(image);
    try {
      expect(o.fs.info().warnings?.[0]).toMatch(/main boot region unusable \(boot checksum mismatch.*at byte 5632\); using the backup/);
      expect(o.fs.info().label).toBe('broken');
      expect(await rootNames(image)).toContain('chained.bin');
    } finally {
      await closeImage(o);
    }
  });

  it('a wiped main boot sector is still detected through the backup', async () => {
    const image = copy();
    patch(image, 0, Buffer.alloc(512));
    const o = await openImage(image);
    try {
      expect(o.type).toBe('exfat');
      expect(o.fs.info().warnings?.[0]).toMatch(/using the backup boot region/);
    } finally {
      await closeImage(o);
    }
  });

  it('bad checksums in both boot regions are a CorruptError naming the boot region', async () => {
    const image = copy();
    patch(image, 9 * 512 + 100, [0x42]);
    patch(image, (12 + 9) * 512 + 100, [0x42]);
    const source = await RawFileSource.open(image);
    try {
      expect((await detectFileSystem(source)).type).toBe('exfat');
      const e = await expectCorrupt(() => exfatDriver.open(source), 'exFAT boot region', 11 * 512);
      expect(e.message).toMatch(/checksum mismatch.*backup boot region at byte 6144 is unusable too/);
    } finally {
      await source.close();
    }
  });

  it('a boot sector field out of range is named with its offset', async () => {
    const image = copy();
    patch(image, 110, [3]); // NumberOfFats
    patch(image, (12 * 512) + 110, [3]);
    const source = await RawFileSource.open(image);
    try {
      const e = await expectCorrupt(() => exfatDriver.open(source), 'exFAT boot region', 110);
      expect(e.message).toContain('NumberOfFats 3');
    } finally {
      await source.close();
    }
  });

  it('one damaged entry set loses that file only', async () => {
    const image = copy();
    const { offset } = await entrySetOf(image, 'victim.txt');
    patch(image, offset + 64 + 4, [0x58]); // a name character, without fixing the checksum
    const o = await openImage(image);
    try {
      const names = (await o.fs.readdir(await o.fs.root())).map((e) => e.name);
      expect(names).not.toContain('victim.txt');
      expect(names).toEqual(expect.arrayContaining(['chained.bin', 'contiguous.bin', 'zzz after.txt', 'hole1']));
      expect(o.fs.info().warnings).toEqual(['root directory: 1 damaged entry set(s) skipped']);
      const after = (await o.fs.lookup(await o.fs.root(), 'zzz after.txt'))!;
      expect((await readWhole(o.fs, after)).toString()).toBe('still here\n');
    } finally {
      await closeImage(o);
    }
  });

  it('an entry set with an impossible SecondaryCount is skipped, the rest listed', async () => {
    const image = copy();
    await patchEntrySet(image, 'victim.txt', (set) => {
      set[1] = 0xff;
    });
    const names = await rootNames(image);
    expect(names).not.toContain('victim.txt');
    expect(names).toContain('zzz after.txt');
  });

  it('a looping FAT chain is a CorruptError naming the chain', async () => {
    const image = copy();
    const { first, fatOffset } = await withFile(image, 'chained.bin', async (fs, node) => ({ first: node.firstCluster, fatOffset: fs.geometry.activeFatOffset }));
    const second = peek(image, fatOffset + first * 4, 4).readUInt32LE(0);
    const loopBack = Buffer.alloc(4);
    loopBack.writeUInt32LE(first);
    patch(image, fatOffset + second * 4, loopBack);
    await withFile(image, 'chained.bin', async (fs, node) => {
      const e = await expectCorrupt(() => readWhole(fs, node), 'FAT chain');
      expect(e.message).toContain('/chained.bin');
    });
    expect(await rootNames(image)).toContain('contiguous.bin');
  });

  it('a FAT link past the last cluster is a CorruptError at that FAT entry', async () => {
    const image = copy();
    const { first, fatOffset } = await withFile(image, 'chained.bin', async (fs, node) => ({ first: node.firstCluster, fatOffset: fs.geometry.activeFatOffset }));
    patch(image, fatOffset + first * 4, [0x00, 0x00, 0x00, 0x70]);
    await withFile(image, 'chained.bin', async (fs, node) => {
      await expectCorrupt(() => readWhole(fs, node), 'FAT', fatOffset + first * 4);
    });
  });

  it('a contiguous file running past the cluster heap is a CorruptError naming its entry set', async () => {
    const image = copy();
    const offset = await patchEntrySet(image, 'contiguous.bin', (set) => set.writeUInt32LE(0x00fffff0, 32 + 20));
    await withFile(image, 'contiguous.bin', async (fs, node) => {
      const e = await expectCorrupt(() => readWhole(fs, node), 'exFAT directory entry set', offset);
      expect(e.message).toContain('outside the cluster heap');
    });
  });

  it('a missing allocation bitmap entry leaves files readable; allocated ranges say what is missing', async () => {
    const image = copy();
    const o0 = await openImage(image);
    const fs0 = o0.fs as ExfatFileSystem;
    const rootAt = fs0.geometry.heapOffset + (fs0.geometry.rootCluster - 2) * fs0.geometry.clusterSize;
    await closeImage(o0);
    // Clear the in-use bit of the 0x81 entry (it follows the label entry in the root).
    let at = rootAt;
    while (peek(image, at, 1)[0] !== 0x81) at += 32;
    patch(image, at, [0x01]);
    const o = await openImage(image);
    try {
      expect(o.fs.info().warnings?.join(' ')).toMatch(/allocation bitmap unreadable/);
      const node = (await o.fs.lookup(await o.fs.root(), 'chained.bin'))!;
      expect(sha256(await readWhole(o.fs, node))).toBe(sha256(chained));
      await expectCorrupt(() => o.fs.allocatedRanges(), 'exFAT root directory');
    } finally {
      await closeImage(o);
    }
  });
});
