import { afterAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { allManifests, samples, type ManifestEntry, type ManifestVolume } from '../support/manifests.js';
import { cli, isRoot, tempDir } from '../support/run.js';

/**
 * The core acceptance test: for every committed sample image, `info --json`,
 * `ls -R --json` and `cp -R` give back exactly what the build script put in,
 * as its truth manifest records it.
 */
const manifests = allManifests();

const tmp = tempDir('loopless-manifests-');
afterAll(() => tmp.cleanup());

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

it('the sample images and their manifests are committed', () => {
  expect(manifests.length).toBeGreaterThanOrEqual(4);
  for (const m of manifests) expect(existsSync(join(samples, m.image)), m.image).toBe(true);
});

describe.each(manifests.map((m) => [m.image, m] as const))('%s', (_name, manifest) => {
  const image = join(samples, manifest.image);
  const readable = manifest.volumes.filter((v) => v.fs !== null);

  it('info --json gives the table and every volume', () => {
    const r = cli(['info', image, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout.toString());
    expect(info.size).toBe(manifest.size);
    expect(info.table).toBe(manifest.table);
    expect(info.volumes.map((v: ManifestVolume) => ({ name: v.name, start: v.start, size: v.size, type: v.type, fs: v.fs, label: v.label, uuid: v.uuid }))).toEqual(
      manifest.volumes.map((v) => ({ name: v.name, start: v.start, size: v.size, type: v.type, fs: v.fs, label: v.label, uuid: v.uuid })),
    );
  });

  it.each(readable.map((v) => [v.name]))('ls -R --json of /%s lists exactly the manifest', (volume) => {
    const r = cli(['ls', image, `/${volume}`, '-R', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const listed = JSON.parse(r.stdout.toString()) as ManifestEntry[];
    const expected = manifest.entries.filter((e) => e.path.startsWith(`/${volume}/`));
    const byPath = new Map(listed.map((e) => [e.path, e]));
    const missing = expected.filter((e) => !byPath.has(e.path)).map((e) => e.path);
    expect(missing, 'entries missing from the listing').toEqual([]);
    const known = new Set(expected.map((e) => e.path));
    expect(listed.filter((e) => !known.has(e.path)).map((e) => e.path), 'entries not in the manifest').toEqual([]);
    const mismatches: string[] = [];
    for (const want of expected) {
      const got = byPath.get(want.path)!;
      const check = (field: string, a: unknown, b: unknown) => {
        if (a !== b) mismatches.push(`${want.path}: ${field} ${JSON.stringify(a)} != manifest ${JSON.stringify(b)}`);
      };
      check('type', got.type, want.type);
      check('mode', got.mode, want.mode);
      check('mtime', got.mtime, want.mtime);
      if (want.type !== 'dir') check('size', got.size, want.size);
      if (want.uid !== undefined) check('uid', got.uid, want.uid);
      if (want.gid !== undefined) check('gid', got.gid, want.gid);
      if (want.nlink !== undefined) check('nlink', got.nlink, want.nlink);
      if (want.type === 'symlink') check('target', got.target, want.target);
      const streamList = (list: { name: string; size: number }[]) => JSON.stringify(list.map((s) => [s.name, s.size]).sort());
      if (want.streams) check('streams', streamList(got.streams ?? []), streamList(want.streams));
    }
    expect(mismatches.slice(0, 20)).toEqual([]);
  });

  it.each(readable.map((v) => [v.name]))('cp -R of /%s restores every file, link and directory', (volume) => {
    const dest = join(tmp.dir, `${manifest.image}-${volume}`);
    const r = cli(['cp', image, `/${volume}`, dest, '-R']);
    expect(r.status, r.stderr).toBe(0);
    const problems: string[] = [];
    for (const want of manifest.entries.filter((e) => e.path.startsWith(`/${volume}/`))) {
      const host = join(dest, want.path.slice(volume.length + 2));
      if (want.type === 'other') continue; // fifos and devices are skipped by cp, with a warning
      let st;
      try {
        st = lstatSync(host);
      } catch {
        problems.push(`${want.path}: not restored`);
        continue;
      }
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      if (type !== want.type) problems.push(`${want.path}: restored as ${type}`);
      if ((st.mode & 0o7777) !== want.mode && type !== 'symlink') problems.push(`${want.path}: mode ${(st.mode & 0o7777).toString(8)}`);
      // Node sets times through a double (~240 ns precision at today's dates), so compare to the millisecond.
      if (Math.abs(st.mtimeMs - Date.parse(want.mtime)) >= 1) problems.push(`${want.path}: mtime ${new Date(st.mtimeMs).toISOString()}`);
      if (isRoot && want.uid !== undefined && st.uid !== want.uid) problems.push(`${want.path}: uid ${st.uid}`);
      if (want.type === 'file' && sha256(readFileSync(host)) !== want.sha256) problems.push(`${want.path}: content differs`);
      if (want.type === 'symlink' && readlinkSync(host) !== want.target) problems.push(`${want.path}: target ${readlinkSync(host)}`);
    }
    expect(problems.slice(0, 20)).toEqual([]);
  });

  const streams = manifest.entries.filter((e) => e.streams?.length && readable.some((v) => e.path.startsWith(`/${v.name}/`)));
  // Only images with NTFS volumes have streams: the test exists for those alone.
  if (streams.length > 0) it('cat FILE:STREAM reads alternate data streams', () => {
    for (const e of streams) {
      for (const s of e.streams!) {
        const r = cli(['cat', image, `${e.path}:${s.name}`]);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout.length).toBe(s.size);
        if (s.sha256) expect(sha256(r.stdout)).toBe(s.sha256);
      }
    }
  });
});
