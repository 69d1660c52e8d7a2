import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanup, loopless, mountLine, sh } from './support.js';

const isRoot = process.getuid?.() === 0;

/**
 * A file whose extent tree is destroyed (debugfs zeroes its header) reads as
 * EIO through the mount, the reason is one line in the log, and the rest of
 * the volume is unaffected. The image's name has a space and a comma, which
 * libfuse's option parser must not split.
 */
describe.runIf(isRoot)('a damaged file through the mount', () => {
  const c = new Cleanup();
  let image: string;
  let mnt: string;
  let log: string;

  beforeAll(() => {
    const dir = c.dir('loopless-fuse-damaged-');
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'victim.bin'), Buffer.alloc(100_000, 'victim'));
    writeFileSync(join(tree, 'fine.txt'), 'still fine\n');
    writeFileSync(join(tree, 'ghost.txt'), 'its inode is about to be marked free\n');
    image = join(dir, 'backup, damaged copy.img');
    sh('mkfs.ext4', ['-q', '-F', '-d', tree, image, '8M']);
    sh('debugfs', ['-w', '-R', 'sif /victim.bin block[0] 0', image]);
    sh('debugfs', ['-w', '-R', 'sif /ghost.txt mode 0', image]);
    mnt = join(dir, 'mnt');
    log = join(dir, 'mount.log');
    c.mount(image, mnt, ['--log', log]);
  });
  afterAll(() => c.cleanup());

  it('keeps a comma and a space in the image path as the mount source', () => {
    expect(mountLine(mnt)?.source).toBe(image);
  });

  it('reads give EIO and the log names the structure and offset, once', () => {
    const victim = join(mnt, 'fs', 'victim.bin');
    expect(statSync(victim).size).toBe(100_000);
    for (let i = 0; i < 3; i++) {
      let code = 'no error';
      try {
        readFileSync(victim);
      } catch (e) {
        code = (e as NodeJS.ErrnoException).code ?? String(e);
      }
      expect(code).toBe('EIO');
    }
    expect(readFileSync(join(mnt, 'fs', 'fine.txt'), 'utf8')).toBe('still fine\n');
    const lines = readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('victim.bin'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z loopless: \/fs\/victim\.bin: corrupt ext extent tree .* at byte \d+ .*bad extent header magic/);
  });

  it('leaves out an entry whose inode is unreadable, and the log names it, once', () => {
    for (let i = 0; i < 2; i++) expect(readdirSync(join(mnt, 'fs')).sort()).toEqual(['fine.txt', 'lost+found', 'victim.bin']);
    const lines = readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('ghost.txt'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/loopless: .*: fs: directory inode 2: entry "ghost\.txt" left out: corrupt ext inode \d+ at byte \d+: inode is not in use \(mode 0\)$/);
  });

  it('unmounts', () => {
    expect(loopless(['umount', mnt]).status).toBe(0);
  });
});
