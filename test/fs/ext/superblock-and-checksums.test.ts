import { afterAll, describe, expect, it } from 'vitest';
import { closeSync, existsSync, openSync, readSync, writeSync } from 'node:fs';
import { RawFileSource } from '../../../parsers/source/raw.js';
import { detectFileSystem } from '../../../parsers/fs/index.js';
import { Disk } from '../../../parsers/vfs/index.js';
import { run, tempDir } from '../../support/run.js';
import { makeTree, readTree } from '../../support/tree.js';
import { debugfsInode, inodeOffset, patch } from './helpers.js';

const tmp = tempDir('loopless-ext-backup-');
afterAll(() => tmp.cleanup());

function wipe(path: string, offset: number, length: number): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(length), 0, length, offset);
  closeSync(fd);
}

describe('ext with a damaged primary superblock', () => {
  it.each([
    ['1 KiB blocks', ['-b', '1024'], 8193 * 1024],
    ['4 KiB blocks', ['-b', '4096'], 32768 * 4096],
    ['4 KiB blocks, meta_bg', ['-b', '4096', '-O', 'meta_bg,^resize_inode'], 32768 * 4096],
  ])('%s: found, opened from the group 1 backup, every file intact, and the fallback reported', async (_label, mkfsArgs, backupOffset) => {
    const src = tmp.path(`src-${backupOffset}-${mkfsArgs.length}`);
    makeTree(src);
    const img = tmp.path(`img-${backupOffset}-${mkfsArgs.length}.img`);
    run('mkfs.ext4', ['-q', '-F', ...mkfsArgs, '-d', src, img, '160M']);
    // The first 4 KiB hold the primary superblock and (for 4 KiB blocks) the descriptors' first block.
    wipe(img, 0, 4096);
    const source = await RawFileSource.open(img);
    expect((await detectFileSystem(source)).type).toBe('ext4');
    await source.close();

    const disk = await Disk.open(img);
    try {
      const info = await disk.info();
      expect(info.volumes[0]).toMatchObject({ fs: 'ext4', supported: true });
      expect(info.warnings.join('\n')).toContain(`using the backup superblock at byte ${backupOffset}`);
      const got: string[] = [];
      const want = readTree(src, '/fs').map((e) => `${e.path} ${e.type} ${e.type === 'file' ? e.size : ''}`);
      const { walk } = await import('../../../parsers/vfs/index.js');
      for await (const e of walk(disk, await disk.lstat('/fs'))) if (!e.path.startsWith('/fs/lost+found')) got.push(`${e.path} ${e.stat.type} ${e.stat.type === 'file' ? e.stat.size : ''}`);
      expect(got).toEqual(want);
      const readme = await disk.stat('/fs/docs/readme.txt');
      const buf = Buffer.alloc(64);
      expect(buf.subarray(0, await disk.read(readme, buf, 0, 64, 0)).toString()).toBe('hello loopless\n');
    } finally {
      await disk.close();
    }
  });
});

describe('ext4 metadata checksums (metadata_csum)', () => {
  const src = tmp.path('csum-src');
  const img = tmp.path('csum.img');

  // 128-byte inodes have no i_checksum_hi: only the low 16 bits are stored and compared.
  it.each([['256', img], ['128', tmp.path('csum-128.img')]])('%s-byte inodes: flags an inode whose checksum does not match, as e2fsck does, and still reads the file', async (inodeSize, img) => {
    if (!existsSync(src)) makeTree(src);
    run('mkfs.ext4', ['-q', '-F', '-I', inodeSize, '-O', 'metadata_csum', '-d', src, img, '160M']);
    const disk0 = await Disk.open(img);
    try {
      expect((await disk0.stat('/fs/docs/readme.txt')).stat.flags ?? []).not.toContain('checksum-mismatch');
    } finally {
      await disk0.close();
    }
    // Damage the inode's atime (0x08): nothing a reader needs, only the checksum catches it.
    const blockSize = Number(/Block size:\s+(\d+)/.exec(run('dumpe2fs', ['-h', img]))![1]);
    patch(img, inodeOffset(img, debugfsInode(img, '/docs/readme.txt'), blockSize) + 0x08, [0x12, 0x34, 0x56, 0x78]);
    const fsck = run('sh', ['-c', `e2fsck -fn ${img} 2>&1; true`]);
    expect(fsck).toMatch(/checksum does not match inode/);

    const disk = await Disk.open(img);
    try {
      const readme = await disk.stat('/fs/docs/readme.txt');
      expect(readme.stat.flags).toContain('checksum-mismatch');
      const buf = Buffer.alloc(64);
      expect(buf.subarray(0, await disk.read(readme, buf, 0, 64, 0)).toString()).toBe('hello loopless\n');
      // Only that inode: its directory and neighbours check out.
      expect((await disk.stat('/fs/docs')).stat.flags ?? []).not.toContain('checksum-mismatch');
      const flagged: string[] = [];
      const { walk } = await import('../../../parsers/vfs/index.js');
      for await (const e of walk(disk, await disk.lstat('/fs'))) if (e.stat.flags?.includes('checksum-mismatch')) flagged.push(e.path);
      expect(flagged).toEqual(['/fs/docs/readme.txt']);
    } finally {
      await disk.close();
    }
  });

  it('takes the backup when the primary superblock fails its checksum, and says so', async () => {
    const copy = tmp.path('csum-sb.img');
    run('cp', [img, copy]);
    // s_wtime (0x30): consistent-looking, but the checksum no longer matches.
    patch(copy, 1024 + 0x30, [0x12, 0x34, 0x56, 0x78]);
    const disk = await Disk.open(copy);
    try {
      const info = await disk.info();
      expect(info.volumes[0]).toMatchObject({ fs: 'ext4', supported: true });
      expect(info.warnings.join('\n')).toMatch(/ext superblock at byte 1024: checksum mismatch; using the backup superblock at byte \d+/);
      expect((await disk.stat('/fs/docs/readme.txt')).stat.size).toBe(15);
    } finally {
      await disk.close();
    }
  });
});

describe('ext group descriptor checksums', () => {
  /** Byte offsets of group `n`'s descriptor in the primary table and in group 1's copy, from dumpe2fs. */
  function descriptorOffsets(img: string, group: number): { primary: number; backup: number; blockSize: number; descSize: number } {
    const dump = run('dumpe2fs', [img]);
    const blockSize = Number(/Block size:\s+(\d+)/.exec(dump)![1]);
    const descSize = Number(/Group descriptor size:\s+(\d+)/.exec(dump)?.[1] ?? 32);
    const primary = Number(/Primary superblock at \d+, Group descriptors at (\d+)/.exec(dump)![1]);
    const backup = Number(/Group 1: .*\n\s+Backup superblock at \d+, Group descriptors at (\d+)/.exec(dump)![1]);
    return { primary: primary * blockSize + group * descSize, backup: backup * blockSize + group * descSize, blockSize, descSize };
  }

  it.each([
    ['metadata_csum (crc32c)', 'metadata_csum'],
    ['gdt_csum (crc16)', '^metadata_csum,uninit_bg'],
  ])('%s: a damaged descriptor is found by its checksum, as e2fsck finds it, and group 1\'s copy is used', async (_label, features) => {
    const src = tmp.path(`gd-src-${features}`);
    makeTree(src);
    const img = tmp.path(`gd-${features}.img`);
    run('mkfs.ext4', ['-q', '-F', '-O', features, '-d', src, img, '160M']);
    const { primary, backup } = descriptorOffsets(img, 0);
    // bg_inode_table_lo of group 0 pointed elsewhere: the root inode would be garbage without the copy.
    patch(img, primary + 8, [0x05, 0x00, 0x00, 0x00]);
    expect(run('sh', ['-c', `e2fsck -fn ${img} 2>&1; true`])).toMatch(/Group descriptors look bad\.\.\. trying backup blocks/); // e2fsck turns to the same copy
    const disk = await Disk.open(img);
    try {
      const got: string[] = [];
      const want = readTree(src, '/fs').map((e) => `${e.path} ${e.type} ${e.type === 'file' ? e.size : ''}`);
      const { walk } = await import('../../../parsers/vfs/index.js');
      for await (const e of walk(disk, await disk.lstat('/fs'))) if (!e.path.startsWith('/fs/lost+found')) got.push(`${e.path} ${e.stat.type} ${e.stat.type === 'file' ? e.stat.size : ''}`);
      expect(got).toEqual(want);
      expect(disk.warnings).toContain(`fs: ext group descriptor 0 at byte ${primary}: checksum mismatch; using group 1's copy at byte ${backup}`);
    } finally {
      await disk.close();
    }
  });

  it('a descriptor failing its checksum with no good copy is still used, with a warning', async () => {
    const src = tmp.path('gd-src-both');
    makeTree(src);
    const img = tmp.path('gd-both.img');
    run('mkfs.ext4', ['-q', '-F', '-O', 'metadata_csum', '-d', src, img, '160M']);
    const { primary, backup } = descriptorOffsets(img, 0);
    // bg_free_blocks_count_lo (0x0c) in both copies: harmless to a reader, caught only by the checksum.
    patch(img, primary + 0x0c, [0x01, 0x00]);
    patch(img, backup + 0x0c, [0x01, 0x00]);
    expect(run('sh', ['-c', `e2fsck -fn ${img} 2>&1; true`])).toMatch(/Group descriptor 0 checksum is 0x[0-9a-f]+, should be 0x[0-9a-f]+/);
    const disk = await Disk.open(img);
    try {
      expect((await disk.stat('/fs/docs/readme.txt')).stat.size).toBe(15);
      expect(disk.warnings).toContain(`fs: ext group descriptor 0 at byte ${primary}: checksum mismatch (no good copy in group 1); using it anyway`);
    } finally {
      await disk.close();
    }
  });
});

describe('ext block bitmap checksums', () => {
  it('a block bitmap failing its checksum counts its whole group as in use (restore copies it all), with a warning', async () => {
    const src = tmp.path('bb-src');
    makeTree(src);
    const img = tmp.path('bb.img');
    run('mkfs.ext4', ['-q', '-F', '-b', '1024', '-O', 'metadata_csum', '-d', src, img, '160M']);
    const group1 = /Group 1: \(Blocks (\d+)-(\d+)\)[^\n]*\n(?:.*\n)*?\s+Block bitmap at (\d+)[^\n]*\n(?:.*\n)*?\s+Free blocks: (\d+)-/.exec(run('dumpe2fs', [img]))!;
    const [first, last, bitmapBlock, freeBlock] = group1.slice(1, 5).map(Number);
    const covers = (ranges: { start: number; length: number }[], block: number) => ranges.some((r) => r.start <= block * 1024 && block * 1024 < r.start + r.length);
    const allocated = async () => {
      const disk = await Disk.open(img);
      try {
        return { ranges: await (await disk.filesystem('fs')).allocatedRanges(), warnings: [...disk.warnings] };
      } finally {
        await disk.close();
      }
    };
    const before = await allocated();
    expect(covers(before.ranges, freeBlock)).toBe(false);
    expect(before.warnings).toEqual([]);
    // Mark the free block in use: the bitmap no longer matches its checksum (e2fsck sees the bit as wrong).
    const at = bitmapBlock * 1024 + Math.floor((freeBlock - first) / 8);
    const fd = openSync(img, 'r+');
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, at);
    byte[0] |= 1 << ((freeBlock - first) % 8);
    writeSync(fd, byte, 0, 1, at);
    closeSync(fd);
    expect(run('sh', ['-c', `e2fsck -fn ${img} 2>&1; true`])).toMatch(new RegExp(`Block bitmap differences:\\s+-${freeBlock}\\b`));
    const after = await allocated();
    expect(after.ranges.some((r) => r.start <= first * 1024 && (last + 1) * 1024 <= r.start + r.length)).toBe(true);
    expect(after.warnings).toEqual([`fs: ext block bitmap of group 1 at byte ${bitmapBlock * 1024}: checksum mismatch; the whole group counts as in use`]);
  });
});
