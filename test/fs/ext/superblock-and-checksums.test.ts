import { afterAll, describe, expect, it } from 'vitest';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
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
