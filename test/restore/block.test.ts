/**
 * Block-device targets (loop devices, root only): a restore the kernel then
 * partitions and mounts; the description and confirmation; every refusal
 * (mounted, a mounted partition, the image itself behind a loop device, a
 * file attached to a loop device, a device another program holds
 * exclusively, too small); --zero-unused by BLKZEROOUT; and the read-back
 * going past the page cache to what the device really holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { isRoot, run, tempDir } from '../support/run.js';
import { buildJunkDisk, bytesOf, expectSameDisk, jsonLines, kernelTree, loopless, MiB, sha256, withLoop, withMount, type JunkDisk } from './helpers.js';

const tmp = tempDir('loopless-restore-block-');
afterAll(() => tmp.cleanup());

let junk: JunkDisk;
beforeAll(() => {
  if (isRoot) junk = buildJunkDisk(tmp.dir, 'disk.img');
});

/** A fresh backing file of `size` bytes: zeros, or random bytes (a used drive). */
function backing(name: string, size: number, random = false): string {
  const path = tmp.path(name);
  if (random) run('sh', ['-c', `head -c ${size} /dev/urandom > ${path}`]);
  else run('truncate', ['-s', String(size), path]);
  return path;
}

describe.skipIf(!isRoot)('restore to a block device', () => {
  it('restores onto a larger loop device: the kernel sees the partitions and mounts p1 with the same files', async () => {
    const file = backing('larger.bin', 48 * MiB, true);
    await withLoop(file, { partscan: true }, async (device) => {
      const before = sha256(readFileSync(file));
      const refused = loopless(['restore', junk.path, device]);
      expect(refused.status).toBe(6);
      expect(refused.stderr).toContain(`${device} (/dev/${device.slice(5)}):`);
      expect(refused.stderr).toMatch(/48M \(50331648 bytes\)/);
      expect(refused.stderr).toMatch(/loop device on/);
      expect(refused.stderr).toMatch(/pass --yes/);
      expect(sha256(readFileSync(file)), 'nothing written without confirmation').toBe(before);

      const r = loopless(['restore', junk.path, device, '--yes', '--json']);
      expect(r.status, r.stderr).toBe(0);
      const summary = jsonLines(r.stdout).at(-1)!;
      expect(summary).toMatchObject({ targetKind: 'block', gptRelocated: true, readBack: 'read back with O_DIRECT', zeroUnused: 'none' });
      expect(run('sgdisk', ['-v', device])).toMatch(/No problems found/);
      expect(existsSync(`${device}p1`), 'the kernel re-read the new partition table').toBe(true);
      await withLoop(junk.path, { readOnly: true, offset: junk.p1.start, sizelimit: junk.p1.size }, async (sourceP1) => {
        const want = await withMount(sourceP1, tmp.path('mnt-source'), (m) => kernelTree(m));
        const got = await withMount(`${device}p1`, tmp.path('mnt-restored'), (m) => kernelTree(m));
        expect(got).toEqual(want);
        expect(got.size).toBeGreaterThan(10);
      });
    });
    // Read through our parser too (the backing file is the restored disk).
    await expectSameDisk(junk.path, file);
  });

  it('--zero-unused zeroes the device first (blkdiscard --zeroout) instead of keeping old data', async () => {
    const file = backing('zero.bin', 40 * MiB, true);
    await withLoop(file, {}, async (device) => {
      const r = loopless(['restore', junk.path, device, '--yes', '--zero-unused', '--json']);
      expect(r.status, r.stderr).toBe(0);
      expect(jsonLines(r.stdout).at(-1)!.zeroUnused).toBe('discard');
    });
    for (const b of junk.junkBlocks) expect(bytesOf(file, b.start, b.length).equals(Buffer.alloc(b.length))).toBe(true);
    await expectSameDisk(junk.path, file);
  });

  it('refuses a mounted device, a device with a mounted partition, and a device too small', async () => {
    const whole = backing('mounted.bin', 48 * MiB);
    run('mkfs.ext4', ['-q', '-F', whole]);
    await withLoop(whole, {}, (device) =>
      withMount(device, tmp.path('mnt-whole'), () => {
        const r = loopless(['restore', junk.path, device, '--yes']);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`${device} is mounted on ${tmp.path('mnt-whole')}`));
      }),
    );

    const parted = backing('parted.bin', 48 * MiB);
    run('cp', ['--sparse=always', junk.path, parted]);
    run('truncate', ['-s', String(48 * MiB), parted]);
    await withLoop(parted, { partscan: true }, (device) =>
      withMount(`${device}p1`, tmp.path('mnt-part'), () => {
        const r = loopless(['restore', junk.path, device, '--yes']);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`${device}p1 is mounted on`);
      }),
    );

    const small = backing('small.bin', 16 * MiB);
    await withLoop(small, {}, (device) => {
      const r = loopless(['restore', junk.path, device, '--yes']);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`the target is ${16 * MiB} bytes, the image ${junk.size} bytes`);
    });
  });

  it('refuses the image itself behind a loop device, and a target file attached to one', async () => {
    await withLoop(junk.path, { readOnly: true }, (device) => {
      const r = loopless(['restore', junk.path, device, '--yes']);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/is a loop device backed by the image/);
    });
    const attached = backing('attached.bin', 48 * MiB);
    await withLoop(attached, {}, (device) => {
      const r = loopless(['restore', junk.path, attached, '--yes']);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`is attached to ${device}`);
    });
  });

  it('refuses a device another program holds open exclusively (O_EXCL)', async () => {
    const file = backing('held.bin', 48 * MiB);
    await withLoop(file, {}, async (device) => {
      // Nothing in /proc says so; only the kernel's exclusive claim does.
      const holder = spawn(process.execPath, ['-e', `require('fs').openSync(${JSON.stringify(device)}, require('fs').constants.O_RDONLY | require('fs').constants.O_EXCL); console.log('held'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
        const r = loopless(['restore', junk.path, device, '--yes']);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/is busy/);
      } finally {
        holder.kill();
      }
    });
  });

  it('reads back past the page cache: damage under the cache is caught (exit 8, the range named)', async () => {
    // The hook flips a byte of the loop device's backing file after each sync. The loop
    // device's own cache still holds the good bytes; only a read that bypasses it sees the damage.
    const file = backing('bypass.bin', 40 * MiB);
    await withLoop(file, {}, (device) => {
      const r = loopless(['restore', junk.path, device, '--yes'], { fault: { LOOPLESS_TEST_FAULT: 'corrupt-always', LOOPLESS_TEST_FAULT_FILE: file } });
      expect(r.status, r.stderr).toBe(8);
      expect(r.stderr).toMatch(/verification failed: target bytes \d+\.\.\d+ \(\d+ bytes\) differ from the image, also after rewriting them \(read back with O_DIRECT\)/);
    });
  });
});
