/**
 * The committed sample images' FAT12, FAT16, FAT32 and exFAT volumes against
 * their truth manifests (written from the source trees, not read back with our
 * code): every entry's type, size, sha256, mode and mtime, nothing extra, the
 * label and serial, and the special properties the manifests' `facts` name.
 * The images are opened read-only; each volume is a slice at the manifest's
 * offset, as the vfs would hand it to the driver.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectFileSystem } from '../../../parsers/fs/index.js';
import type { FileSystem, FsNode } from '../../../parsers/fs/types.js';
import type { FatNode } from '../../../parsers/fs/fat/index.js';
import type { ExfatNode } from '../../../parsers/fs/exfat/index.js';
import { FatFileSystem } from '../../../parsers/fs/fat/index.js';
import { FatTable } from '../../../parsers/fs/fat/fat-table.js';
import { RawFileSource } from '../../../parsers/source/raw.js';
import { SliceSource } from '../../../parsers/source/slice.js';
import { readManifest, samples } from '../../support/manifests.js';
import { readWhole, sha256 } from './support.js';

const targets = [
  ['fat12-floppy', 'fs'],
  ['mbr', 'p3'],
  ['mbr', 'p6'],
  ['gpt', 'p4'],
] as const;

describe.each(targets)('%s.img volume %s', (imageName, volumeName) => {
  const manifest = readManifest(`${imageName}.manifest.json`);
  const volume = manifest.volumes.find((v) => v.name === volumeName)!;
  const prefix = `/${volumeName}`;
  const expected = manifest.entries.filter((e) => e.path.startsWith(`${prefix}/`));
  let raw: RawFileSource;
  let slice: SliceSource;
  let fs: FileSystem;
  let type: string | null;
  const seen = new Map<string, FsNode>();

  beforeAll(async () => {
    raw = await RawFileSource.open(join(samples, manifest.image));
    slice = new SliceSource(raw, volume.start, volume.size, volumeName);
    const det = await detectFileSystem(slice);
    type = det.type;
    fs = await det.driver!.open(slice);
    const visit = async (dir: FsNode, path: string) => {
      for (const { name, node } of await fs.readdir(dir)) {
        seen.set(`${path}/${name}`, node);
        if (node.stat.type === 'dir') await visit(node, `${path}/${name}`);
      }
    };
    await visit(await fs.root(), prefix);
  });
  afterAll(async () => {
    await fs?.close();
    await raw?.close();
  });

  it('is detected as the manifest says, with its label and serial and no warnings', () => {
    expect(volume.fs).toMatch(/^(fat12|fat16|fat32|exfat)$/);
    expect(type).toBe(volume.fs);
    const info = fs.info();
    expect(info).toMatchObject({ type: volume.fs, label: volume.label, uuid: volume.uuid });
    expect(info.warnings ?? []).toEqual([]);
  });

  it('has exactly the manifest entries, with their types, sizes, modes and mtimes', () => {
    expect(expected.length).toBeGreaterThan(30);
    expect([...seen.keys()].sort()).toEqual(expected.map((e) => e.path).sort());
    const wrong: string[] = [];
    for (const e of expected) {
      const s = seen.get(e.path)!.stat;
      if (s.type !== e.type) wrong.push(`${e.path}: type ${s.type} != ${e.type}`);
      if (e.type === 'file' && s.size !== e.size) wrong.push(`${e.path}: size ${s.size} != ${e.size}`);
      if (s.mode !== e.mode) wrong.push(`${e.path}: mode ${s.mode.toString(8)} != ${e.mode.toString(8)}`);
      const mtime = new Date(Number(s.mtimeNs / 1_000_000n)).toISOString();
      if (mtime !== e.mtime) wrong.push(`${e.path}: mtime ${mtime} != ${e.mtime}`);
    }
    expect(wrong).toEqual([]);
  });

  it('reads every file with the manifest sha256', async () => {
    const wrong: string[] = [];
    for (const e of expected.filter((x) => x.type === 'file')) {
      const data = await readWhole(fs, seen.get(e.path)!);
      if (sha256(data) !== e.sha256) wrong.push(e.path);
    }
    expect(wrong).toEqual([]);
  });

  it('has the special properties the facts name', async () => {
    const f = volume.facts;
    const large = f.largeDir as { path: string; entries: number } | undefined;
    if (large) expect((await fs.readdir(seen.get(large.path)!)).length).toBe(large.entries);
    const lower = f.lowercase83 as Record<string, string> | undefined;
    if (lower) for (const path of Object.values(lower)) expect(seen.has(path), path).toBe(true);
    if (typeof f.hidden === 'string') expect(seen.get(f.hidden)!.stat.flags).toContain('hidden');
    if (typeof f.readOnly === 'string') expect(seen.get(f.readOnly)!.stat.flags).toContain('read-only');
    if (typeof f.cp437ShortName === 'string') expect(seen.has(f.cp437ShortName)).toBe(true);
    if (volume.fs === 'exfat') {
      expect((seen.get(f.fragmented as string) as ExfatNode).noFatChain).toBe(false);
      for (const path of f.contiguous as string[]) expect((seen.get(path) as ExfatNode).noFatChain, path).toBe(true);
    } else if (typeof f.fragmented === 'string') {
      const node = seen.get(f.fragmented) as FatNode;
      const g = (fs as FatFileSystem).geometry;
      const slice = new SliceSource(raw, volume.start, volume.size, volumeName);
      const table = new FatTable(slice, { bits: g.type === 'fat12' ? 12 : g.type === 'fat16' ? 16 : 32, exfat: false, offset: g.activeFatOffset, clusterCount: g.clusterCount });
      const runs = await table.chain(node.firstCluster, Math.ceil(node.stat.size / g.clusterSize), { name: 'x', structure: 'x', entryOffset: 0 });
      expect(runs.length).toBeGreaterThan(1);
    }
  });

  it('maps every file to the volume bytes read() gives (the synchronous read path)', async () => {
    let mapped = 0;
    for (const [path, node] of seen) {
      if (node.stat.type !== 'file') {
        expect(await fs.mapFile!(node, 0, 1), path).toBeNull();
        continue;
      }
      const size = node.stat.size;
      const pieces = (await fs.mapFile!(node, 0, size))!;
      expect(pieces, path).not.toBeNull();
      const viaMap = Buffer.alloc(size);
      let at = 0;
      for (const p of pieces) {
        if (p.at !== null) expect(await slice.read(viaMap, at, p.length, p.at), path).toBe(p.length);
        at += p.length;
      }
      expect(at, path).toBe(size);
      expect(viaMap.equals(await readWhole(fs, node)), path).toBe(true);
      // A window in the middle maps the same bytes as read() of that window.
      if (size > 3) {
        const from = Math.floor(size / 3);
        const window = (await fs.mapFile!(node, from, size))!.reduce((n, p) => n + p.length, 0);
        expect(window, path).toBe(size - from);
      }
      mapped++;
    }
    expect(mapped).toBeGreaterThan(5);
    const fragmented = volume.facts.fragmented as string | undefined;
    if (fragmented) {
      const node = seen.get(fragmented)!;
      expect((await fs.mapFile!(node, 0, node.stat.size))!.length, 'the fragmented file maps to several pieces').toBeGreaterThan(1);
    }
  });

  it('allocated ranges lie inside the volume, sorted and merged', async () => {
    const ranges = await fs.allocatedRanges();
    expect(ranges.length).toBeGreaterThan(0);
    expect(ranges[0].start).toBe(0);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i].start).toBeGreaterThan(ranges[i - 1].start + ranges[i - 1].length);
    const last = ranges[ranges.length - 1];
    expect(last.start + last.length).toBeLessThanOrEqual(volume.size);
  });
});
