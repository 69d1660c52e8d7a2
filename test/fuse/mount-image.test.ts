import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { constants, lstatSync, promises as fsp, readdirSync, readFileSync, readlinkSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildExtImage, OWNED, T0, type BuiltImage } from './images.js';
import { Cleanup, ddSha256, fileSha256, findListing, mountLine, partitions, sha256Listing, sh, shAsync, type Listed } from './support.js';

const isRoot = process.getuid?.() === 0;

/** Error code of a sync fs call (the errno the kernel gave the program). */
function errnoOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
  return 'no error';
}

describe.runIf(isRoot)('loopless mount IMAGE MOUNTPOINT', () => {
  const c = new Cleanup();
  let built: BuiltImage;
  let mnt: string;
  let kernel: string;

  beforeAll(() => {
    const dir = c.dir('loopless-fuse-image-');
    built = buildExtImage(dir);
    mnt = join(dir, 'mnt');
    c.mount(built.image, mnt);
    // The kernel's own ext4 driver, reading p2 through our FUSE mount: the oracle for everything below.
    kernel = join(dir, 'kernel-p2');
    c.kernelMount(['-o', 'loop,ro', join(mnt, 'p2.img')], kernel);
  });
  afterAll(() => c.cleanup());

  it('is a read-only fuse.loopless mount named after the image, with 128 KiB reads', () => {
    const line = mountLine(mnt);
    expect(line?.type).toBe('fuse.loopless');
    expect(line?.source).toBe(built.image);
    expect(line?.options).toContain('ro');
    expect(line?.options).toContain('max_read=131072');
  });

  it('shows the whole disk, one raw file per volume and a folder per readable volume', () => {
    expect(readdirSync(mnt).sort()).toEqual(['disk.img', 'p1', 'p1.img', 'p2', 'p2.img']);
    const disk = statSync(join(mnt, 'disk.img'));
    expect(disk.isFile()).toBe(true);
    expect(disk.mode & 0o7777).toBe(0o444);
    expect(disk.size).toBe(statSync(built.image).size);
    expect(disk.mtimeMs).toBe(Math.floor(statSync(built.image).mtimeMs));
  });

  it('raw files hold exactly the bytes dd reads at each partition offset', async () => {
    const parts = partitions(built.image);
    expect(parts.map((p) => p.name)).toEqual(['p1', 'p2']);
    for (const p of parts) {
      expect(statSync(join(mnt, `${p.name}.img`)).size, p.name).toBe(p.size);
      expect(await fileSha256(join(mnt, `${p.name}.img`)), p.name).toBe(await ddSha256(built.image, p.start, p.size));
    }
    expect(await fileSha256(join(mnt, 'disk.img'))).toBe(await fileSha256(built.image));
  });

  it('p2.img is a filesystem image file(1) and fsck accept without any offset', () => {
    expect(sh('file', ['-s', join(mnt, 'p2.img')])).toMatch(/ext4 filesystem data/);
    expect(sh('file', ['-s', join(mnt, 'p1.img')])).toMatch(/ext2 filesystem data/);
    // -n: read-only check; exit 0 means clean.
    sh('fsck.ext4', ['-n', '-f', join(mnt, 'p2.img')]);
  });

  it('find and sha256sum through the mount equal the kernel mount of p2.img', async () => {
    const [ours, theirs] = await Promise.all([findListing(join(mnt, 'p2')), findListing(kernel)]);
    expect(ours.size).toBeGreaterThan(20);
    expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    const diffs: string[] = [];
    for (const [path, want] of theirs) {
      const got = ours.get(path)!;
      for (const field of Object.keys(want) as (keyof Listed)[]) {
        if (got[field] !== want[field]) diffs.push(`${path}: ${field} ${got[field]} != kernel ${want[field]}`);
      }
    }
    expect(diffs).toEqual([]);
    const [ourSums, theirSums] = await Promise.all([sha256Listing(join(mnt, 'p2')), sha256Listing(kernel)]);
    expect(ourSums.size).toBeGreaterThan(10);
    expect(ourSums).toEqual(theirSums);
  });

  it('files, links and special files equal what was put into each volume', async () => {
    for (const volume of ['p1', 'p2'] as const) {
      const host = await findListing(built.trees[volume]);
      const ours = await findListing(join(mnt, volume));
      const diffs: string[] = [];
      for (const [path, want] of host) {
        const got = ours.get(path);
        if (!got) {
          diffs.push(`${volume}/${path}: missing`);
          continue;
        }
        const fields: (keyof Listed)[] = want.type === 'd' ? ['type', 'mode', 'uid', 'gid'] : ['type', 'mode', 'size', 'uid', 'gid', 'mtimeMs', 'target', 'nlink'];
        for (const f of fields) {
          // The one sub-second time was added to the image after mkfs (see images.ts).
          const expected = f === 'mtimeMs' && path === OWNED ? want.mtimeMs + 123 : want[f];
          if (got[f] !== expected) diffs.push(`${volume}/${path}: ${f} ${got[f]} != ${expected}`);
        }
      }
      expect(diffs).toEqual([]);
      expect(await sha256Listing(join(mnt, volume))).toEqual(await sha256Listing(built.trees[volume]));
    }
  });

  it('stat: type bits, owners, ms times, device numbers, hard links, sparse blocks and blksize match the kernel', () => {
    for (const rel of ['', OWNED, 'sparse.bin', 'null-device', 'a-fifo', 'hardlink-to-readme', 'fast-link', 'docs', 'eight-mib.bin']) {
      const ours = lstatSync(join(mnt, 'p2', rel));
      const theirs = lstatSync(join(kernel, rel));
      const pick = (s: typeof ours) => ({
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        nlink: s.nlink,
        rdev: s.rdev,
        blocks: s.blocks,
        blksize: s.blksize,
        mtimeMs: Math.floor(s.mtimeMs),
        atimeMs: Math.floor(s.atimeMs),
        ctimeMs: Math.floor(s.ctimeMs),
      });
      expect(pick(ours), rel || 'root').toEqual(pick(theirs));
    }
    const owned = lstatSync(join(mnt, 'p2', OWNED));
    expect([owned.uid, owned.gid, owned.mtimeMs]).toEqual([1234, 5678, T0 * 1000 + 123]);
    const sparse = lstatSync(join(mnt, 'p2', 'sparse.bin'));
    expect(sparse.blocks * 512).toBeLessThan(sparse.size / 100);
    expect(lstatSync(join(mnt, 'p2', 'null-device')).isCharacterDevice()).toBe(true);
    expect(readlinkSync(join(mnt, 'p2', 'fast-link'))).toBe('docs/readme.txt');
  });

  it('statfs gives the volume filesystem figures (as dumpe2fs reads them)', () => {
    const ours = statfsSync(join(mnt, 'p2'));
    const dumpe2fs = sh('dumpe2fs', ['-h', join(mnt, 'p2.img')]);
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(dumpe2fs)![1]);
    expect({ bsize: ours.bsize, blocks: ours.blocks, bfree: ours.bfree, files: ours.files, ffree: ours.ffree }).toEqual({
      bsize: field('Block size'),
      blocks: field('Block count'),
      bfree: field('Free blocks'),
      files: field('Inode count'),
      ffree: field('Free inodes'),
    });
    expect(sh('stat', ['-f', '-c', '%l', join(mnt, 'p2')]).trim()).toBe('255');
    // The kernel agrees on what is free (its total leaves out metadata overhead).
    expect(statfsSync(kernel).bfree).toBe(ours.bfree);
    const top = statfsSync(mnt);
    expect(top.blocks * top.bsize).toBeGreaterThanOrEqual(statSync(built.image).size);
  });

  it('every kind of write fails with EROFS', async () => {
    const p2 = join(mnt, 'p2');
    const file = join(p2, 'docs', 'readme.txt');
    const attempts: Record<string, () => unknown> = {
      'create a file': () => fsp.writeFile(join(p2, 'new.txt'), 'x'),
      'open for writing': () => fsp.open(file, 'r+'),
      truncate: () => fsp.truncate(file, 0),
      'write a raw volume': () => fsp.open(join(mnt, 'p2.img'), constants.O_WRONLY),
      mkdir: () => fsp.mkdir(join(p2, 'newdir')),
      unlink: () => fsp.unlink(file),
      rename: () => fsp.rename(file, join(p2, 'renamed')),
      chmod: () => fsp.chmod(file, 0o777),
      utimes: () => fsp.utimes(file, 1, 1),
      symlink: () => fsp.symlink('x', join(p2, 'newlink')),
      'create at the top': () => fsp.writeFile(join(mnt, 'x.img'), 'x'),
    };
    const results: Record<string, string> = {};
    for (const [what, attempt] of Object.entries(attempts)) {
      results[what] = await (async () => {
        try {
          const r = await attempt();
          if (r && typeof (r as { close?: unknown }).close === 'function') await (r as fsp.FileHandle).close();
          return 'no error';
        } catch (e) {
          return (e as NodeJS.ErrnoException).code ?? String(e);
        }
      })();
    }
    expect(results).toEqual(Object.fromEntries(Object.keys(attempts).map((k) => [k, 'EROFS'])));
    expect(readFileSync(file, 'utf8')).toBe('hello loopless\n');
  });

  it('errors are what the kernel gives for them', () => {
    const p2 = join(mnt, 'p2');
    expect(errnoOf(() => lstatSync(join(p2, 'no-such-file')))).toBe('ENOENT');
    expect(errnoOf(() => lstatSync(join(mnt, 'p9')))).toBe('ENOENT');
    expect(errnoOf(() => lstatSync(join(p2, 'docs', 'readme.txt', 'below-a-file')))).toBe('ENOTDIR');
    expect(errnoOf(() => readdirSync(join(p2, 'docs', 'readme.txt')))).toBe('ENOTDIR');
    expect(errnoOf(() => readdirSync(join(mnt, 'p2.img')))).toBe('ENOTDIR');
    expect(errnoOf(() => readFileSync(join(p2, 'docs')))).toBe('EISDIR');
    expect(errnoOf(() => readlinkSync(join(p2, 'docs', 'readme.txt')))).toBe('EINVAL');
    expect(errnoOf(() => readlinkSync(join(mnt, 'p2.img')))).toBe('EINVAL');
    // A symlink pointing out of the volume is the kernel's to resolve, as on any mount.
    expect(readlinkSync(join(p2, 'dangling'))).toBe('/nowhere/at/all');
  });

  it('concurrent readers at scattered offsets all get the right bytes', async () => {
    const path = join(mnt, 'p2', 'eight-mib.bin');
    const truth = readFileSync(join(built.trees.p2, 'eight-mib.bin'));
    const reader = async (seed: number) => {
      const fh = await fsp.open(path, 'r');
      try {
        for (let i = 0; i < 40; i++) {
          const pos = ((seed * 7919 + i * 104729) * 4099) % (truth.length - 300_000);
          const len = 1 + ((seed * 31 + i * 17) % 300_000);
          const buf = Buffer.alloc(len);
          const { bytesRead } = await fh.read(buf, 0, len, pos);
          if (bytesRead !== len || !buf.equals(truth.subarray(pos, pos + len))) return `reader ${seed}: wrong bytes at ${pos}+${len}`;
        }
        return 'ok';
      } finally {
        await fh.close();
      }
    };
    const sums = Promise.all([1, 2].map(() => shAsync('sha256sum', [path])));
    expect(await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(reader))).toEqual(Array(8).fill('ok'));
    const want = createHash('sha256').update(truth).digest('hex');
    for (const s of await sums) expect(s.slice(0, 64)).toBe(want);
  });
});
