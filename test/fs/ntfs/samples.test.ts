/**
 * The committed sample images' NTFS volumes (mbr.img p7, a logical partition;
 * gpt.img p5), opened at the offsets their truth manifests give, checked
 * entry by entry against the manifest and against fls/icat.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectFileSystem } from '../../../parsers/fs/index.js';
import { NtfsFileSystem, type NtfsNode } from '../../../parsers/fs/ntfs/index.js';
import { renderNtPath } from '../../../parsers/fs/ntfs/reparse.js';
import { RawFileSource } from '../../../parsers/source/raw.js';
import { SliceSource } from '../../../parsers/source/slice.js';
import { readManifest, samples } from '../../support/manifests.js';
import { fls, hasTool, icat, readAll, sha256, walk, type Seen } from './helpers.js';

const cases = [
  { manifest: 'mbr.manifest.json', volume: 'p7' },
  { manifest: 'gpt.manifest.json', volume: 'p5' },
].filter((c) => existsSync(join(samples, c.manifest)) && existsSync(join(samples, c.manifest.replace('.manifest.json', '.img'))));

/**
 * The manifest records a junction's target as its Windows print name
 * ("C:\Target"); we show absolute Windows targets as "/C:/Target" (see
 * parsers/fs/ntfs/reparse.ts), so translate before comparing.
 */
function expectedTarget(target: string): string {
  return /^[A-Za-z]:\\/.test(target) || target.startsWith('\\') ? renderNtPath(target, false) : target;
}

describe.each(cases)('sample image $manifest, NTFS volume $volume', ({ manifest: file, volume }) => {
  const manifest = readManifest(file);
  const vol = manifest.volumes.find((v) => v.name === volume)!;
  const imagePath = join(samples, manifest.image);
  const prefix = `/${volume}`;
  const entries = manifest.entries.filter((e) => e.path.startsWith(`${prefix}/`));
  let raw: RawFileSource;
  let fs: NtfsFileSystem;
  let seen: Map<string, Seen>;

  beforeAll(async () => {
    raw = await RawFileSource.open(imagePath);
    const slice = new SliceSource(raw, vol.start, vol.size, volume);
    const detection = await detectFileSystem(slice);
    expect(detection.type).toBe('ntfs');
    fs = await NtfsFileSystem.open(slice);
    seen = new Map([...(await walk(fs))].map(([p, s]) => [`${prefix}${p}`, s]));
  });

  afterAll(async () => {
    await fs?.close();
    await raw?.close();
  });

  it('has the manifest volume label and uuid', () => {
    expect(vol.fs).toBe('ntfs');
    expect(fs.info().label).toBe(vol.label);
    expect(fs.info().uuid).toBe(vol.uuid);
  });

  it('lists exactly the manifest entries', () => {
    expect([...seen.keys()].sort()).toEqual(entries.map((e) => e.path).sort());
  });

  it('matches every entry: type, size, content, mode, links, mtime, target, streams', async () => {
    for (const want of entries) {
      const got = seen.get(want.path);
      if (!got) continue; // reported by the listing test
      const st = got.node.stat;
      const target = want.target === undefined ? undefined : expectedTarget(want.target);
      const actual = {
        path: want.path,
        type: st.type,
        size: want.type === 'dir' ? undefined : st.size,
        sha256: got.sha256,
        mode: st.mode,
        nlink: want.nlink === undefined ? undefined : st.nlink,
        mtimeMs: Number(st.mtimeNs / 1_000_000n),
        target: got.target,
      };
      expect(actual).toEqual({
        path: want.path,
        type: want.type,
        size: want.type === 'dir' ? undefined : target === undefined ? want.size : Buffer.byteLength(target),
        sha256: want.sha256,
        mode: want.mode,
        nlink: want.nlink,
        mtimeMs: Date.parse(want.mtime),
        target,
      });
      if (want.streams) {
        expect(st.streams?.map((s) => ({ name: s.name, size: s.size })).sort((a, b) => a.name.localeCompare(b.name))).toEqual(
          want.streams.map((s) => ({ name: s.name, size: s.size })).sort((a, b) => a.name.localeCompare(b.name)),
        );
        for (const s of want.streams) {
          const stream = await fs.openStream(got.node, s.name);
          expect({ path: `${want.path}:${s.name}`, sha256: sha256(await readAll(fs, stream!)) }).toEqual({ path: `${want.path}:${s.name}`, sha256: s.sha256 });
        }
      } else if (want.type === 'file') {
        expect({ path: want.path, streams: st.streams }).toEqual({ path: want.path, streams: undefined });
      }
    }
  });

  it('shows the features the manifest facts name', () => {
    const facts = vol.facts ?? {};
    const node = (p: unknown): NtfsNode => seen.get(String(p))!.node;
    if (facts.fragmented) expect(node(facts.fragmented).data!.mapping().filter((r) => r.lcn !== null).length).toBeGreaterThan(1);
    for (const p of (facts.compressed as string[] | undefined) ?? []) expect(node(p).stat.flags).toContain('compressed');
    for (const p of (facts.sparse as string[] | undefined) ?? []) expect(node(p).stat.flags).toContain('sparse');
    for (const group of (facts.hardlinks as string[][] | undefined) ?? []) {
      expect(new Set(group.map((p) => node(p).stat.ino)).size).toBe(1);
      expect(node(group[0]).stat.nlink).toBe(group.length);
    }
    if (facts.readOnly) expect(node(facts.readOnly).stat.mode).toBe(0o444);
    if (facts.resident) expect(node(facts.resident).data!.isResident).toBe(true);
    if (facts.interixSymlink) expect(node(facts.interixSymlink).stat.type).toBe('symlink');
    if (facts.compressedResident) expect(node(facts.compressedResident).data!.isResident).toBe(true);
    const junction = facts.junction as { path: string; substituteName: string } | undefined;
    if (junction) expect(node(junction.path).target).toBe(renderNtPath(junction.substituteName, false));
    const winlink = facts.windowsSymlink as { path: string; substituteName: string; flags: number } | undefined;
    if (winlink) expect(node(winlink.path).target).toBe(renderNtPath(winlink.substituteName, (winlink.flags & 1) === 1));
    const large = facts.largeDir as { path: string; entries: number } | undefined;
    if (large) expect([...seen.keys()].filter((p) => p.startsWith(`${large.path}/`) && !p.slice(large.path.length + 1).includes('/'))).toHaveLength(large.entries);
    for (const p of (facts.unicode as string[] | undefined) ?? []) expect(seen.has(p)).toBe(true);
  });

  it.runIf(hasTool('fls') && hasTool('icat'))('agrees with fls and icat at the volume offset', () => {
    const sector = vol.start / 512;
    const theirs = fls(imagePath, sector).filter((e) => !e.deleted && !e.path.startsWith('/$') && !e.path.slice(e.path.lastIndexOf('/')).includes(':'));
    expect(theirs.map((e) => `${prefix}${e.path}`).sort()).toEqual([...seen.keys()].sort());
    const files = theirs.filter((e) => e.type === 'r' && seen.get(`${prefix}${e.path}`)?.node.stat.type === 'file');
    // Every file outside the big directory, and a sample inside it.
    const sample = files.filter((e, i) => !e.path.startsWith('/many/') || i % 97 === 0);
    expect(sample.length).toBeGreaterThan(10);
    for (const e of sample) {
      expect({ path: e.path, sha256: sha256(icat(imagePath, String(e.inode), sector)) }).toEqual({ path: e.path, sha256: seen.get(`${prefix}${e.path}`)!.sha256 });
    }
  });
});

it('the committed sample images hold NTFS volumes (one logical on MBR, one on GPT)', () => {
  expect(cases.map((c) => c.manifest).sort()).toEqual(['gpt.manifest.json', 'mbr.manifest.json']);
});
