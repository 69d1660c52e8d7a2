import { afterAll, describe, expect, it } from 'vitest';
import { closeSync, openSync, writeSync } from 'node:fs';
import { RawFileSource } from '../../../parsers/source/raw.js';
import { detectFileSystem } from '../../../parsers/fs/index.js';
import { Disk } from '../../../parsers/vfs/index.js';
import { run, tempDir } from '../../support/run.js';
import { makeTree, readTree } from '../../support/tree.js';

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
