import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AttachedJson } from '../../cli/commands/attach.js';
import { makeTree } from '../support/tree.js';
import { Cleanup, env, findListing, loopless, mountLine, partitions, sh, sha256Listing } from './support.js';

const isRoot = process.getuid?.() === 0;
const MiB = 1024 * 1024;

function attachedDevices(image: string): { name: string; offset: number; sizelimit: number; ro: boolean }[] {
  const out = sh('losetup', ['--list', '--json', '--output', 'NAME,OFFSET,SIZELIMIT,RO', '--associated', image]);
  return out.trim() ? (JSON.parse(out) as { loopdevices: { name: string; offset: number; sizelimit: number; ro: boolean }[] }).loopdevices : [];
}

/**
 * btrfs is a filesystem Loopless does not read: the kernel reads it through
 * the loop device `attach` sets up at the partition's offset, with no
 * arithmetic by the user.
 */
describe.runIf(isRoot)('loopless attach / detach', () => {
  const c = new Cleanup();
  let work: string;
  let image: string;
  let tree: string;

  beforeAll(() => {
    work = c.dir('loopless-attach-');
    tree = join(work, 'tree');
    makeTree(tree);
    const btrfs = join(work, 'p2.btrfs');
    writeFileSync(btrfs, '');
    truncateSync(btrfs, 160 * MiB);
    sh('mkfs.btrfs', ['-q', '-f', '--rootdir', tree, btrfs]);
    image = join(work, 'gpt-ext4-btrfs.img');
    writeFileSync(image, '');
    truncateSync(image, 180 * MiB);
    // GPT: p1 ext4 at 1 MiB (8 MiB), p2 btrfs at 9 MiB.
    sh('sfdisk', ['-q', image], 'label: gpt\nstart=2048, size=16384, type=linux\nstart=18432, size=327680, type=linux\n');
    sh('mkfs.ext4', ['-q', '-F', '-E', `offset=${2048 * 512}`, '-L', 'small', image, '8M']);
    sh('dd', [`if=${btrfs}`, `of=${image}`, 'bs=1M', `seek=${18432 * 512}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
    c.loopImage(image);
  });
  afterAll(() => c.cleanup());

  it('attaches every volume read-only at its exact offset and size, naming the device of each', () => {
    const r = loopless(['attach', image, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const attached = JSON.parse(r.stdout) as AttachedJson[];
    const parts = partitions(image);
    expect(attached.map((a) => [a.volume, a.start, a.size, a.created])).toEqual(parts.map((p) => [p.name, p.start, p.size, true]));
    expect(attached.map((a) => a.fs)).toEqual(['ext4', 'btrfs']);
    const devices = attachedDevices(image);
    for (const a of attached) {
      const d = devices.find((x) => x.name === a.device);
      expect(d, a.device).toMatchObject({ offset: a.start, sizelimit: a.size, ro: true });
      // The kernel's own probe agrees on what is there.
      expect(sh('blkid', ['-p', '-o', 'value', '-s', 'TYPE', a.device]).trim()).toBe(a.fs);
    }
  });

  it('the kernel mounts the btrfs volume through its device, and it holds the tree', async () => {
    const p2 = (JSON.parse(loopless(['attach', image, 'p2', '--json']).stdout) as AttachedJson[])[0];
    // Asking again reuses the device instead of stacking another one.
    expect(p2.created).toBe(false);
    expect(attachedDevices(image)).toHaveLength(2);
    const mnt = join(work, 'btrfs');
    c.kernelMount(['-o', 'ro', p2.device], mnt);
    expect(mountLine(mnt)?.type).toBe('btrfs');
    const [got, want] = await Promise.all([findListing(mnt), findListing(tree)]);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [path, w] of want) if (w.type !== 'd') expect({ path, ...got.get(path) }).toMatchObject({ path, type: w.type, size: w.size, mode: w.mode, target: w.target });
    expect(await sha256Listing(mnt)).toEqual(await sha256Listing(tree));

    // Detaching a mounted device marks it; it goes when unmounted.
    const r = loopless(['detach', image, 'p2']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${p2.device} (p2): still mounted on ${mnt}; released when unmounted`);
    sh('umount', [mnt]);
    await new Promise((done) => setTimeout(done, 300));
    expect(attachedDevices(image).map((d) => d.offset)).toEqual([2048 * 512]);
  });

  it('detach releases the rest; a second detach finds nothing (exit 3)', () => {
    const r = loopless(['detach', image]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\/dev\/loop\d+ \(p1\): released\n$/);
    expect(attachedDevices(image)).toEqual([]);
    expect(loopless(['detach', image])).toMatchObject({ status: 3, stderr: expect.stringMatching(/no loop device is attached/) });
  });

  it('names the volumes there are when asked for one that is not', () => {
    expect(loopless(['attach', image, 'p7'])).toMatchObject({ status: 3, stderr: expect.stringMatching(/no such volume \(volumes: p1, p2\)/) });
    expect(attachedDevices(image)).toEqual([]);
  });

  it('refuses without root, saying what to do', () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, join(import.meta.dirname, '..', '..', 'bin', 'loopless.js'), 'attach', image], {
      env,
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/attach needs root to manage loop devices: run it with sudo/);
  });
});
