import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBareExtImage } from './images.js';
import { Cleanup, loopless, mountLine, processAlive, waitFor } from './support.js';

const isRoot = process.getuid?.() === 0;

describe.runIf(isRoot)('loopless mount DIR MOUNTPOINT', () => {
  const c = new Cleanup();
  let work: string;
  let folder: string;
  let mnt: string;
  let pid: number;
  const labelOf = (name: string) => readFileSync(join(mnt, name, 'fs', 'label.txt'), 'utf8').trim();

  beforeAll(() => {
    work = c.dir('loopless-fuse-folder-');
    folder = join(work, 'images');
    mkdirSync(folder);
    for (const name of ['alpha', 'beta', 'gamma', 'delta', 'alpha-two']) buildBareExtImage(work, `${name}.img`, `label ${name}`);
    copyFileSync(join(work, 'alpha.img'), join(folder, 'alpha.img'));
    copyFileSync(join(work, 'beta.img'), join(folder, 'beta.img'));
    // Not images, or not to be shown: a text file, a hidden copy, a subfolder.
    writeFileSync(join(folder, 'notes.txt'), 'these are my backups\n');
    copyFileSync(join(work, 'beta.img'), join(folder, '.partial.img'));
    mkdirSync(join(folder, 'old'));
    mnt = join(work, 'mnt');
    pid = c.mount(folder, mnt).pid;
  });
  afterAll(() => c.cleanup());

  it('shows one folder per image, named after the file, each with the image layout', () => {
    expect(mountLine(mnt)?.source).toBe(folder);
    expect(readdirSync(mnt)).toEqual(['alpha.img', 'beta.img']);
    expect(statSync(join(mnt, 'alpha.img')).isDirectory()).toBe(true);
    expect(readdirSync(join(mnt, 'alpha.img')).sort()).toEqual(['disk.img', 'fs', 'fs.img']);
    expect(labelOf('alpha.img')).toBe('label alpha');
    expect(labelOf('beta.img')).toBe('label beta');
    expect(statSync(join(mnt, 'beta.img', 'disk.img')).size).toBe(statSync(join(folder, 'beta.img')).size);
  });

  it('an image copied in later appears, whether listed first or looked up directly', () => {
    copyFileSync(join(work, 'gamma.img'), join(folder, 'gamma.img'));
    expect(readdirSync(mnt)).toEqual(['alpha.img', 'beta.img', 'gamma.img']);
    expect(labelOf('gamma.img')).toBe('label gamma');
    copyFileSync(join(work, 'delta.img'), join(folder, 'delta.img'));
    expect(labelOf('delta.img')).toBe('label delta');
  });

  it('a removed image disappears, and a replaced one is read afresh', async () => {
    expect(labelOf('alpha.img')).toBe('label alpha');
    unlinkSync(join(folder, 'beta.img'));
    copyFileSync(join(work, 'alpha-two.img'), join(folder, 'alpha.tmp'));
    renameSync(join(folder, 'alpha.tmp'), join(folder, 'alpha.img'));
    expect(readdirSync(mnt)).toEqual(['alpha.img', 'delta.img', 'gamma.img']);
    // The kernel trusts names and attributes for a second in a folder mount.
    await waitFor('beta.img to be gone', () => {
      try {
        statSync(join(mnt, 'beta.img'));
        return false;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === 'ENOENT';
      }
    });
    await waitFor('alpha.img to show the new image', () => labelOf('alpha.img') === 'label alpha-two');
  });

  it('unmounts with loopless umount', async () => {
    expect(loopless(['umount', mnt]).status).toBe(0);
    await waitFor('the mount process to exit', () => !processAlive(pid));
  });
});
