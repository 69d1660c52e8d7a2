/**
 * Whole-disk restore to file targets: the sample images round-trip (table,
 * every volume's files through our parser, ext volumes through a kernel
 * mount), free space is skipped and the target stays sparse, old data on a
 * used target is kept or zeroed as documented, a GPT moves to the end of a
 * larger target, a smaller target is refused unless allowed and possible.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, readFileSync, openSync, writeSync, closeSync, statSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Disk } from '../../parsers/vfs/index.js';
import { isRoot, run, tempDir } from '../support/run.js';
import {
  allocatedBytes,
  buildJunkDisk,
  bytesOf,
  expectKernelMatchesManifest,
  expectSameDisk,
  jsonLines,
  loopless,
  manifest,
  MiB,
  samples,
  sha256,
  withLoop,
  withMount,
  type JunkDisk,
} from './helpers.js';

const tmp = tempDir('loopless-restore-file-');
afterAll(() => tmp.cleanup());

/** sfdisk's dump without the lines naming the file, so two disks compare. */
function tableDump(path: string): string {
  return run('sfdisk', ['--dump', path])
    .split('\n')
    .filter((l) => !l.startsWith('device:'))
    .map((l) => l.replace(/^\S+ : /, ''))
    .join('\n');
}

describe('restore of the sample images to a new file', () => {
  for (const image of ['gpt.img', 'mbr.img', 'ext4-bare.img', 'fat12-floppy.img']) {
    it(`${image}: same table, same files on every volume, sparse target`, async () => {
      const source = join(samples, image);
      const target = tmp.path(`restored-${image}`);
      const r = loopless(['restore', source, target, '--json']);
      expect(r.status, r.stderr).toBe(0);
      const events = jsonLines(r.stdout);
      const summary = events.at(-1)!;
      expect(summary.type).toBe('summary');
      expect(summary.status).toBe('ok');
      expect(summary.copied + summary.skipped).toBe(statSync(source).size);
      expect(summary.verified).toBeGreaterThanOrEqual(summary.copied);
      expect(summary.readBack).toBe('read back with O_DIRECT');
      expect(statSync(target).size).toBe(statSync(source).size);
      // Sparse: only what was written occupies blocks (plus filesystem slack).
      expect(allocatedBytes(target)).toBeLessThanOrEqual(summary.written + 256 * 1024);

      if (image === 'gpt.img' || image === 'mbr.img') expect(tableDump(target)).toBe(tableDump(source));
      if (image === 'gpt.img') expect(run('sgdisk', ['-v', target])).toMatch(/No problems found/);
      const compared = await expectSameDisk(source, target);
      expect(compared).toBeGreaterThan(image === 'fat12-floppy.img' ? 3 : 10);
    });
  }

  it.skipIf(!isRoot)('the ext volumes of the restored images mount in the kernel and hold the manifest files', async () => {
    let checked = 0;
    for (const image of ['gpt.img', 'mbr.img', 'ext4-bare.img']) {
      const target = tmp.path(`restored-${image}`);
      expect(existsSync(target), 'restored by the test above').toBe(true);
      const truth = manifest(image);
      for (const v of truth.volumes.filter((x) => x.fs?.startsWith('ext'))) {
        await withLoop(target, { readOnly: true, offset: v.start, sizelimit: v.size }, (device) =>
          withMount(device, tmp.path(`mnt-${image}-${v.name}`), (mnt) => {
            checked += expectKernelMatchesManifest(mnt, v.name, truth.entries);
          }),
        );
      }
    }
    expect(checked).toBeGreaterThan(100);
  });
});

let junk: JunkDisk;
let disk: string;
let junkBlocks: JunkDisk['junkBlocks'];
let P1: JunkDisk['p1'];
let P2: JunkDisk['p2'];
const DISK_SIZE = 40 * MiB;

beforeAll(() => {
  junk = buildJunkDisk(tmp.dir, 'junk.img', { diskMiB: 40 });
  ({ path: disk, junkBlocks, p1: P1, p2: P2 } = junk);
  expect(run('sgdisk', ['-v', disk])).toMatch(/No problems found/);
});

function junkFilled(path: string): boolean {
  return junkBlocks.every((b) => !bytesOf(path, b.start, b.length).equals(Buffer.alloc(b.length)));
}

describe('writing past the page cache', () => {
  /** Bytes of `path` resident in the page cache (util-linux fincore). */
  const cachedBytes = (path: string) => Number(run('fincore', ['--bytes', '--noheadings', '--output', 'RES', path]).trim());

  it('writes a file target with O_DIRECT: the written data does not stay in the page cache', async () => {
    const source = join(samples, 'gpt.img');
    const target = tmp.path('direct-gpt.img');
    const r = loopless(['restore', source, target, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const summary = jsonLines(r.stdout).at(-1)!;
    expect(summary.written).toBeGreaterThan(8 * MiB);
    // All but the odd unaligned piece and the header (written last, through the cache).
    expect(summary.writtenDirect).toBeGreaterThan(summary.written * 0.9);
    expect(cachedBytes(target)).toBeLessThan(summary.written / 4);
    await expectSameDisk(source, target);
  });

  // ramfs has no direct I/O at all (open with O_DIRECT: EINVAL); tmpfs has accepted it since Linux 6.6.
  it.runIf(isRoot)('falls back to the page cache on a target that refuses O_DIRECT (ramfs), and says so', async () => {
    const source = join(samples, 'mbr.img');
    const dir = tmp.path('ramfs');
    mkdirSync(dir);
    run('mount', ['-t', 'ramfs', 'ramfs', dir]);
    try {
      const target = join(dir, 'restored.img');
      const json = loopless(['restore', source, target, '--json']);
      expect(json.status, json.stderr).toBe(0);
      const summary = jsonLines(json.stdout).at(-1)!;
      expect(summary.written).toBeGreaterThan(MiB);
      expect(summary.writtenDirect).toBe(0);
      expect(summary.readBack).toMatch(/dropping the page cache/);
      await expectSameDisk(source, target);
      const human = loopless(['restore', source, join(dir, 'again.img')]);
      expect(human.status, human.stderr).toBe(0);
      expect(human.stdout).toMatch(/through the page cache \(the target refuses O_DIRECT\)/);
    } finally {
      run('umount', [dir]);
    }
  });
});

describe('restore writes only what is in use', () => {
  it('skips the freed blocks, copies the boot gap and the unformatted partition, and the ext4 volume checks clean', async () => {
    expect(junkFilled(disk), 'the source holds the deleted data').toBe(true);
    const target = tmp.path('junk-restored.img');
    const r = loopless(['restore', disk, target, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const summary = jsonLines(r.stdout).at(-1)!;
    expect(summary.skipped).toBeGreaterThanOrEqual(8 * MiB);
    const p1 = summary.volumes.find((v: { name: string }) => v.name === 'p1');
    expect(p1).toMatchObject({ how: 'allocation', fs: 'ext4' });
    expect(summary.volumes.find((v: { name: string }) => v.name === 'p2')).toMatchObject({ how: 'whole', fs: null });
    // The deleted file's blocks were not written: they read as the new file's zeros.
    for (const b of junkBlocks) expect(bytesOf(target, b.start, b.length).equals(Buffer.alloc(b.length))).toBe(true);
    expect(sha256(bytesOf(target, P2.start, P2.size))).toBe(sha256(bytesOf(disk, P2.start, P2.size)));
    expect(sha256(bytesOf(target, 0, P1.start))).toBe(sha256(bytesOf(disk, 0, P1.start)));
    await expectSameDisk(disk, target);
    if (isRoot) {
      await withLoop(target, { readOnly: true, offset: P1.start, sizelimit: P1.size }, (device) => {
        const fsck = run('sh', ['-c', `e2fsck -fn ${device} >/dev/null 2>&1; echo $?`]).trim();
        expect(fsck).toBe('0');
      });
    }
  });

  it('on a used target keeps old data in the skipped areas by default, and --zero-unused clears it', async () => {
    const used = tmp.path('used.img');
    run('sh', ['-c', `head -c ${DISK_SIZE} /dev/urandom > ${used}`]);
    const before = sha256(readFileSync(used));

    // No terminal and no --yes: refused, nothing written.
    const refused = loopless(['restore', disk, used]);
    expect(refused.status).toBe(6);
    expect(refused.stderr).toMatch(/existing file, 40M/);
    expect(refused.stderr).toMatch(/pass --yes/);
    expect(sha256(readFileSync(used))).toBe(before);

    const r = loopless(['restore', disk, used, '--yes']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/left as it was/);
    await expectSameDisk(disk, used);
    // Old bytes survive where the restore did not write (the deleted file's blocks).
    expect(junkFilled(used)).toBe(true);
    for (const b of junkBlocks.slice(0, 4)) expect(bytesOf(used, b.start, b.length).equals(bytesOf(disk, b.start, b.length))).toBe(false);

    const z = loopless(['restore', disk, used, '--yes', '--zero-unused', '--json']);
    expect(z.status, z.stderr).toBe(0);
    expect(jsonLines(z.stdout).at(-1)!.zeroUnused).toBe('truncate');
    await expectSameDisk(disk, used);
    for (const b of junkBlocks) expect(bytesOf(used, b.start, b.length).equals(Buffer.alloc(b.length))).toBe(true);
    expect(allocatedBytes(used)).toBeLessThan(DISK_SIZE / 2);
  });
});

describe('target size', () => {
  it('moves the GPT backup to the end of a larger target, as sgdisk -e does', async () => {
    const target = tmp.path('larger.img');
    const size = DISK_SIZE + 24 * MiB + 3 * 512;
    run('truncate', ['-s', String(size), target]);
    const r = loopless(['restore', disk, target, '--yes', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(jsonLines(r.stdout).at(-1)!.gptRelocated).toBe(true);
    expect(run('sgdisk', ['-v', target])).toMatch(/No problems found/);
    await expectSameDisk(disk, target);

    const sectors = Math.floor(size / 512);
    const restored = await Disk.open(target);
    try {
      expect(restored.table.warnings).toEqual([]);
      expect(restored.table.gpt).toMatchObject({ backupHeaderLba: sectors - 1, lastUsableLba: sectors - 34, usedBackup: false });
    } finally {
      await restored.close();
    }
    // Protective MBR covers the new disk.
    const mbr = bytesOf(target, 0, 512);
    expect(mbr[446 + 4]).toBe(0xee);
    expect(mbr.readUInt32LE(446 + 12)).toBe(sectors - 1);
    // The image's old backup GPT, now mid-disk, was cleared.
    expect(bytesOf(target, DISK_SIZE - 512, 512).equals(Buffer.alloc(512))).toBe(true);

    // The relocated backup is a valid GPT on its own: wipe the primary header, read again.
    const damaged = tmp.path('larger-damaged.img');
    copyFileSync(target, damaged);
    const fd = openSync(damaged, 'r+');
    writeSync(fd, Buffer.alloc(512), 0, 512, 512);
    closeSync(fd);
    const fallback = await Disk.open(damaged);
    const original = await Disk.open(disk);
    try {
      expect(fallback.table.gpt?.usedBackup).toBe(true);
      expect(fallback.volumes).toEqual(original.volumes);
    } finally {
      await fallback.close();
      await original.close();
    }
  });

  it('refuses a smaller target with the sizes; --allow-smaller restores when everything fits', async () => {
    const fits = tmp.path('smaller.img');
    const fitsSize = 30 * MiB;
    run('truncate', ['-s', String(fitsSize), fits]);
    const refused = loopless(['restore', disk, fits, '--yes']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`target is ${fitsSize} bytes, the image ${DISK_SIZE} bytes`));
    expect(refused.stderr).toMatch(/--allow-smaller/);

    const r = loopless(['restore', disk, fits, '--yes', '--allow-smaller']);
    expect(r.status, r.stderr).toBe(0);
    expect(statSync(fits).size).toBe(fitsSize);
    expect(run('sgdisk', ['-v', fits])).toMatch(/No problems found/);
    await expectSameDisk(disk, fits);

    // Smaller than the end of p2: the table cannot describe it, whatever the flag.
    const tooSmall = tmp.path('too-small.img');
    run('truncate', ['-s', String(26 * MiB), tooSmall]);
    const no = loopless(['restore', disk, tooSmall, '--yes', '--allow-smaller']);
    expect(no.status).toBe(1);
    expect(no.stderr).toMatch(/p2 ends at byte 28311552/);
  });
});

describe('refusals that need no root', () => {
  it('refuses the image itself, a missing target directory, and a bad option', () => {
    const self = loopless(['restore', disk, disk, '--yes']);
    expect(self.status).toBe(1);
    expect(self.stderr).toMatch(/is the image itself/);
    const dir = tmp.path('a-dir');
    mkdirSync(dir);
    const notFile = loopless(['restore', disk, dir, '--yes']);
    expect(notFile.status).toBe(1);
    expect(notFile.stderr).toMatch(/not a regular file or a block device/);
    expect(loopless(['restore', disk, tmp.path('no/such/dir/out.img')]).status).toBe(3);
    expect(loopless(['restore', disk]).status).toBe(2);
    expect(loopless(['restore', tmp.path('missing.img'), tmp.path('out.img')]).status).toBe(3);
  });
});
