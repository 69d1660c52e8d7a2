/**
 * Whole-tree comparison across the ext variants mkfs can produce: every name,
 * type, size, content hash, mode, owner, link count, mtime and symlink target
 * must match the source tree, and the allocated ranges must cover every block
 * debugfs says each inode uses.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectFileSystem } from '../../../parsers/fs/index.js';
import type { ByteRange } from '../../../parsers/source/types.js';
import {
  buildTree,
  compareTrees,
  debugfsBlocks,
  describeImageTree,
  describeSourceTree,
  makeImage,
  openExt,
  probeImage,
  removeDir,
  tempDir,
  type Entry,
} from './helpers.js';

interface Variant {
  name: string;
  kind: 'ext2' | 'ext3' | 'ext4';
  args: string[];
  sizeMiB: number;
  type: 'ext2' | 'ext3' | 'ext4';
  blockSize: number;
  /** Inodes of 128 bytes have no creation time. */
  smallInodes?: boolean;
  inline?: boolean;
}

const variants: Variant[] = [
  { name: 'ext2, 1 KiB blocks (indirect blocks)', kind: 'ext2', args: ['-b', '1024'], sizeMiB: 48, type: 'ext2', blockSize: 1024 },
  { name: 'ext2 without sparse_super', kind: 'ext2', args: ['-b', '1024', '-g', '2048', '-O', '^sparse_super,^resize_inode'], sizeMiB: 32, type: 'ext2', blockSize: 1024 },
  { name: 'ext3, 2 KiB blocks', kind: 'ext3', args: ['-b', '2048'], sizeMiB: 48, type: 'ext3', blockSize: 2048 },
  { name: 'ext4 defaults, 4 KiB blocks', kind: 'ext4', args: ['-b', '4096'], sizeMiB: 48, type: 'ext4', blockSize: 4096 },
  { name: 'ext4 64bit, metadata_csum, flex_bg', kind: 'ext4', args: ['-b', '4096', '-O', '64bit,metadata_csum,flex_bg'], sizeMiB: 48, type: 'ext4', blockSize: 4096 },
  {
    name: 'ext4 meta_bg without resize_inode, many small groups',
    kind: 'ext4',
    args: ['-b', '1024', '-g', '1024', '-O', '64bit,meta_bg,^resize_inode'],
    sizeMiB: 48,
    type: 'ext4',
    blockSize: 1024,
  },
  { name: 'ext4 with 128-byte inodes', kind: 'ext4', args: ['-I', '128'], sizeMiB: 48, type: 'ext4', blockSize: 1024, smallInodes: true },
  { name: 'ext4 without journal', kind: 'ext4', args: ['-O', '^has_journal', '-b', '4096'], sizeMiB: 48, type: 'ext4', blockSize: 4096 },
  { name: 'ext4 without extents (block maps)', kind: 'ext4', args: ['-O', '^extent,^64bit', '-b', '4096'], sizeMiB: 48, type: 'ext4', blockSize: 4096 },
  { name: 'ext4 inline_data', kind: 'ext4', args: ['-O', 'inline_data', '-b', '4096'], sizeMiB: 48, type: 'ext4', blockSize: 4096, inline: true },
  { name: 'ext4 sparse_super2', kind: 'ext4', args: ['-O', 'sparse_super2', '-b', '1024'], sizeMiB: 48, type: 'ext4', blockSize: 1024 },
  { name: 'ext4 bigalloc (16 KiB clusters)', kind: 'ext4', args: ['-O', 'bigalloc', '-C', '16384', '-b', '4096'], sizeMiB: 64, type: 'ext4', blockSize: 4096 },
  {
    name: 'ext4 with recent features (quota, project, ea_inode, large_dir, encrypt, casefold, orphan_file, verity)',
    kind: 'ext4',
    args: ['-b', '4096', '-O', 'quota,project,ea_inode,large_dir,encrypt,casefold,stable_inodes,orphan_file,verity'],
    sizeMiB: 48,
    type: 'ext4',
    blockSize: 4096,
  },
  { name: 'ext4 64 KiB blocks', kind: 'ext4', args: ['-b', '65536'], sizeMiB: 160, type: 'ext4', blockSize: 65536 },
];

let work: string;
let tree: string;
let expected: Map<string, Entry>;

beforeAll(() => {
  work = tempDir();
  tree = join(work, 'tree');
  buildTree(tree);
  expected = describeSourceTree(tree);
});

afterAll(() => removeDir(work));

/** Every block in `blocks` lies inside one of the sorted ranges. */
function uncovered(ranges: ByteRange[], blocks: number[], bs: number): number[] {
  const missing: number[] = [];
  for (const b of blocks) {
    const at = b * bs;
    let lo = 0;
    let hi = ranges.length - 1;
    let found = false;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = ranges[mid];
      if (at < r.start) hi = mid - 1;
      else if (at + bs > r.start + r.length) lo = mid + 1;
      else {
        found = true;
        break;
      }
    }
    if (!found) missing.push(b);
  }
  return missing;
}

describe.each(variants)('$name', (v) => {
  let image: string;
  beforeAll(() => {
    image = makeImage(v.kind, [...v.args, '-L', 'loopless-test', '-U', '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d'], v.sizeMiB, tree, work, `${v.name.replace(/\W+/g, '-')}.img`);
  });

  it('is detected with the right type, label and uuid', async () => {
    expect(probeImage(image)).toBe(v.type);
    const { fs, source } = await openExt(image);
    try {
      expect((await detectFileSystem(source)).type).toBe(v.type);
      const info = fs.info();
      expect(info.type).toBe(v.type);
      expect(info.label).toBe('loopless-test');
      expect(info.uuid).toBe('0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d');
      expect(info.blockSize).toBe(v.blockSize);
      expect(info.maxNameLength).toBe(255);
      expect(info.totalBlocks * info.blockSize).toBe(v.sizeMiB * 1024 * 1024);
    } finally {
      await fs.close();
      await source.close();
    }
  });

  it('reads back exactly the tree it was built from', async () => {
    const { fs, source } = await openExt(image);
    try {
      const actual = await describeImageTree(fs);
      expect(compareTrees(expected, actual)).toEqual([]);
      const sparse = actual.get('/sparse.bin')!;
      expect(sparse.allocatedSize).toBeLessThan(sparse.size / 4);
      // mke2fs -d marks a data-less file inline on inline_data filesystems, and
      // the kernel (ext4_getattr) then reports size/512 sectors; so do we.
      const hole = actual.get('/all-hole.bin')!;
      expect(hole.allocatedSize).toBe(v.inline ? Math.ceil(hole.size / 512) * 512 : 0);
      expect(actual.get('/large.bin')!.allocatedSize).toBeGreaterThanOrEqual(actual.get('/large.bin')!.size);
      const root = await fs.root();
      if (v.smallInodes) expect(root.stat.birthtimeNs).toBeNull();
      else expect(actual.get('/sizes') && (await fs.lookup(root, 'sizes'))!.stat.birthtimeNs).not.toBeNull();
      if (v.inline) {
        const sizes = (await fs.lookup(root, 'sizes'))!;
        const f59 = (await fs.lookup(sizes, 'f59'))!;
        expect(f59.stat.flags).toContain('inline');
        const emptyDir = (await fs.lookup(root, 'empty-dir'))!;
        expect(emptyDir.stat.flags).toContain('inline');
      }
    } finally {
      await fs.close();
      await source.close();
    }
  });

  it('reports allocated ranges that cover every block debugfs lists, and no more than the bitmaps hold', async () => {
    const { fs, source } = await openExt(image);
    try {
      const ranges = await fs.allocatedRanges();
      for (let i = 1; i < ranges.length; i++) expect(ranges[i].start).toBeGreaterThan(ranges[i - 1].start + ranges[i - 1].length);
      const bs = fs.info().blockSize;
      const actual = await describeImageTree(fs, []);
      // Fast symlinks and device nodes keep text or device numbers in i_block, not block numbers.
      const mapped = [...actual.values()].filter((e) => e.type === 'file' || e.type === 'dir' || (e.type === 'symlink' && e.size >= 60));
      const inos = [...new Set([2, 7, 8, 11, ...mapped.map((e) => e.ino!)])];
      const blocks = debugfsBlocks(image, inos);
      const missing: string[] = [];
      for (const [ino, list] of blocks) {
        const miss = uncovered(ranges, list, bs);
        if (miss.length) missing.push(`inode ${ino}: blocks ${miss.slice(0, 5).join(',')}`);
      }
      expect(missing).toEqual([]);
      expect([...blocks.values()].flat().length).toBeGreaterThan(100);
      // The bitmaps are exact after mkfs: used = total - free. (On 1 KiB filesystems the boot
      // block 0 lies before group 0: outside the free count, and in our ranges.)
      const info = fs.info();
      const used = ranges.reduce((s, r) => s + r.length, 0);
      expect(used).toBe((info.totalBlocks - info.freeBlocks) * bs);
    } finally {
      await fs.close();
      await source.close();
    }
  });
});
