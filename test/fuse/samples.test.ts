import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { allManifests, samples, type ManifestEntry } from '../support/manifests.js';
import { Cleanup, ddSha256, fileSha256, findListing, mountLine, sha256Listing, type Listed } from './support.js';

/**
 * Every committed sample image, mounted: find and sha256sum through the
 * mount give what the build script put in (its truth manifest), raw volume
 * files are the exact byte ranges, and each ext volume's raw file, mounted by
 * the kernel through our mount, shows the same tree as our own parser.
 */
const isRoot = process.getuid?.() === 0;
const manifests = allManifests().filter((m) => existsSync(join(samples, m.image)));

const FIND_TYPE: Record<string, ManifestEntry['type']> = { f: 'file', d: 'dir', l: 'symlink' };
/** The kernel mounts these here (not vfat, exfat or ntfs). */
const KERNEL_READS = /^ext[234]$/;

describe.runIf(isRoot)('sample images through a FUSE mount', () => {
  const c = new Cleanup();
  afterAll(() => c.cleanup());

  it('there are sample images to mount', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(4);
  });

  describe.each(manifests.map((m) => [m.image, m] as const))('%s', (_name, manifest) => {
    const image = join(samples, manifest.image);
    const readable = manifest.volumes.filter((v) => v.fs !== null);
    let mnt = '';
    const mounted = () => {
      if (!mnt) {
        mnt = join(c.dir('loopless-fuse-sample-'), 'mnt');
        c.mount(image, mnt);
      }
      return mnt;
    };

    it('shows disk.img, every volume raw, and a folder for every volume the manifest lists files of', () => {
      const names = readdirSync(mounted()).sort();
      const expected = ['disk.img', ...manifest.volumes.map((v) => `${v.name}.img`), ...readable.map((v) => v.name)].sort();
      expect(names).toEqual(expected);
      expect(mountLine(mnt)?.options).toContain('ro');
    });

    it('raw volume files hold exactly the bytes dd reads at each volume offset', async () => {
      for (const v of manifest.volumes) {
        const raw = join(mounted(), `${v.name}.img`);
        expect(statSync(raw).size, v.name).toBe(v.size);
        expect(await fileSha256(raw), v.name).toBe(await ddSha256(image, v.start, v.size));
      }
      expect(await fileSha256(join(mnt, 'disk.img'))).toBe(await fileSha256(image));
    });

    it.each(readable.map((v) => [v.name]))('find and sha256sum of /%s equal the manifest', async (volume) => {
      const root = join(mounted(), volume);
      const [listed, sums] = await Promise.all([findListing(root), sha256Listing(root)]);
      const expected = manifest.entries.filter((e) => e.path.startsWith(`/${volume}/`));
      const rel = (e: ManifestEntry) => e.path.slice(volume.length + 2);
      expect([...listed.keys()].sort()).toEqual(expected.map(rel).sort());
      const diffs: string[] = [];
      for (const want of expected) {
        const got = listed.get(rel(want)) as Listed;
        const check = (field: string, a: unknown, b: unknown) => {
          if (b !== undefined && a !== b) diffs.push(`${want.path}: ${field} ${JSON.stringify(a)} != manifest ${JSON.stringify(b)}`);
        };
        check('type', FIND_TYPE[got.type] ?? 'other', want.type);
        check('mode', got.mode, want.mode);
        check('mtime', new Date(got.mtimeMs).toISOString(), want.mtime);
        if (want.type !== 'dir') check('size', got.size, want.size);
        check('uid', got.uid, want.uid);
        check('gid', got.gid, want.gid);
        check('nlink', got.nlink, want.nlink);
        if (want.type === 'symlink') check('target', got.target, want.target);
        if (want.type === 'file') check('sha256', sums.get(rel(want)), want.sha256);
      }
      expect(diffs.slice(0, 20)).toEqual([]);
    });

    const kernelReadable = readable.filter((v) => KERNEL_READS.test(v.fs!));
    // Only images with ext volumes (which the kernel here reads) have this test.
    if (kernelReadable.length > 0) it('the kernel, mounting pN.img from our mount, sees the same ext trees as our parser', async () => {
      for (const v of kernelReadable) {
        const kernel = join(c.dir('loopless-fuse-kernel-'), 'mnt');
        c.kernelMount(['-o', 'loop,ro', join(mounted(), `${v.name}.img`)], kernel);
        const [ours, theirs] = await Promise.all([findListing(join(mnt, v.name)), findListing(kernel)]);
        expect([...ours.keys()].sort(), v.name).toEqual([...theirs.keys()].sort());
        const diffs: string[] = [];
        for (const [path, got] of ours) {
          const want = theirs.get(path)!;
          for (const field of Object.keys(want) as (keyof Listed)[]) if (got[field] !== want[field]) diffs.push(`${v.name}/${path}: ${field} ${got[field]} != kernel ${want[field]}`);
        }
        expect(diffs.slice(0, 20)).toEqual([]);
        expect(await sha256Listing(join(mnt, v.name))).toEqual(await sha256Listing(kernel));
      }
    });
  });
});
