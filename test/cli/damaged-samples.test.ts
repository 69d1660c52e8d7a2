import { afterAll, describe, expect, it } from 'vitest';
import { closeSync, copyFileSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { readManifest, samples } from '../support/manifests.js';
import { cli, tempDir } from '../support/run.js';

/** Damage done to copies of the sample images, seen through the CLI as a user would. */
const tmp = tempDir('loopless-damaged-');
afterAll(() => tmp.cleanup());

function volumeOf(image: string, fs: string): { name: string; start: number; size: number } {
  return readManifest(image.replace(/\.img$/, '.manifest.json')).volumes.find((v) => v.fs === fs)!;
}

function damagedCopy(image: string, offset: number, bytes: Buffer): string {
  const copy = tmp.path(`${Math.random().toString(36).slice(2)}-${image}`);
  copyFileSync(join(samples, image), copy);
  const fd = openSync(copy, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
  return copy;
}

describe('damaged sample images', () => {
  it('an NTFS volume whose boot sector is wiped is found and read through its backup boot sector', () => {
    const v = volumeOf('gpt.img', 'ntfs');
    const copy = damagedCopy('gpt.img', v.start, Buffer.alloc(512));
    const info = JSON.parse(cli(['info', copy, '--json']).stdout.toString());
    expect(info.volumes.find((x: { name: string }) => x.name === v.name).fs).toBe('ntfs');
    const r = cli(['ls', copy, `/${v.name}`, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.toString()).length).toBeGreaterThan(3);
  });

  it('a wiped primary GPT header is reported once and the volumes still open', () => {
    const copy = damagedCopy('gpt.img', 512, Buffer.alloc(92));
    const r = cli(['info', copy]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^loopless: warning: primary GPT header at byte 512: no "EFI PART" signature; using the backup GPT at LBA \d+ instead\n$/);
    expect(r.stdout.toString()).toMatch(/p1 .* ext4/);
  });

  it('a corrupt volume fails alone: the other volumes of the image stay readable', () => {
    const v = volumeOf('mbr.img', 'ext2');
    // Wreck the superblock's geometry, magic kept (this 2 MiB volume has one group: no backup superblock).
    const copy = damagedCopy('mbr.img', v.start + 1024 + 32, Buffer.from([0, 0, 0, 0]));
    const info = JSON.parse(cli(['info', copy, '--json']).stdout.toString());
    const bad = info.volumes.find((x: { name: string }) => x.name === v.name);
    expect(bad.supported).toBe(false);
    const ls = cli(['ls', copy, `/${v.name}`]);
    expect([4, 5]).toContain(ls.status);
    expect(ls.stderr.trim().split('\n')).toHaveLength(1);
    for (const other of info.volumes.filter((x: { name: string; fs: string | null }) => x.name !== v.name && x.fs)) {
      expect(cli(['ls', copy, `/${other.name}`]).status, other.name).toBe(0);
    }
  });
});
