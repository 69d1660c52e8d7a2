/**
 * One NTFS image with every feature the driver must handle, built by mkntfs
 * and populated through ntfs-3g: what our driver sees must be what was put in
 * (names, types, sizes, sha256, mtimes to 100 ns, link targets, streams,
 * flags), and the Sleuth Kit (fls/icat) must agree on names and content.
 */
import { appendFileSync, closeSync, linkSync, mkdirSync, openSync, readSync, rmdirSync, symlinkSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, UnsupportedError } from '../../../parsers/errors.js';
import { detectFileSystem } from '../../../parsers/fs/index.js';
import type { NtfsFileSystem } from '../../../parsers/fs/ntfs/index.js';
import { RawFileSource } from '../../../parsers/source/raw.js';
import type { ByteSource } from '../../../parsers/source/types.js';
import {
  buildImage,
  fls,
  hasTool,
  icat,
  istat,
  linkReparse,
  lookupPath,
  noise,
  openNtfs,
  readAll,
  removeDir,
  reparseBuffer,
  run,
  setNtfsAttributes,
  setReparse,
  sha256,
  tempDir,
  touchMtime,
  walk,
  type Seen,
} from './helpers.js';

interface Expected {
  type: 'file' | 'dir' | 'symlink' | 'other';
  sha256?: string;
  size?: number;
  target?: string;
  mtimeNs?: bigint;
}

const BIG_DIR_ENTRIES = 5000;
const MANY_LINKS = 150;
const DEEP_LEVELS = 40;

let work: string;
let image: string;
const expected = new Map<string, Expected>();
let fs: NtfsFileSystem;
let close: () => Promise<void>;
let seen: Map<string, Seen>;

function file(mnt: string, rel: string, data: Buffer): void {
  writeFileSync(join(mnt, rel), data);
  expected.set(`/${rel}`, { type: 'file', sha256: sha256(data), size: data.length });
}

function dir(mnt: string, rel: string): void {
  mkdirSync(join(mnt, rel));
  expected.set(`/${rel}`, { type: 'dir' });
}

/**
 * Fill the volume with 256 KiB files, free a pseudo-random half of them, then
 * write the file: the allocator has only the holes, so it gets many runs.
 * (Freeing every other file does not work: ntfs-3g spreads consecutive files
 * apart, so that frees whole regions.)
 */
function writeFragmented(mnt: string, rel: string, data: Buffer): void {
  const fill = join(mnt, 'fill');
  mkdirSync(fill);
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  let n = 0;
  try {
    for (; n < 100000; n++) writeFileSync(join(fill, String(n)), chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    try {
      unlinkSync(join(fill, String(n)));
    } catch {
      /* the failed file may not exist */
    }
  }
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed / 0x7fffffff);
  const kept = new Set<number>();
  for (let i = 0; i < n; i++) {
    if (random() < 0.5) unlinkSync(join(fill, String(i)));
    else kept.add(i);
  }
  file(mnt, rel, data);
  for (const i of kept) unlinkSync(join(fill, String(i)));
  rmdirSync(fill);
}

function populate(mnt: string): void {
  writeFragmented(mnt, 'fragmented.bin', noise(20 * 1024 * 1024 + 123, 1));

  dir(mnt, 'sizes');
  for (const s of [0, 1, 100, 700, 1000, 4095, 4096, 4097, 65536, 70000, 300000]) file(mnt, `sizes/f${s}`, noise(s, s + 7));

  dir(mnt, 'names');
  for (const name of ['héllo wörld ✓ 日本語.txt', '🦊 emoji 𝄞.txt', 'a'.repeat(255), '日'.repeat(85), ' leading space', 'Ελληνικά', 'ÅÄÖ åäö']) {
    file(mnt, `names/${name}`, Buffer.from(`name: ${name}\n`));
  }

  dir(mnt, 'times');
  file(mnt, 'times/precise.txt', Buffer.from('100 ns\n'));
  touchMtime(join(mnt, 'times/precise.txt'), '2001-02-03 04:05:06.1234567 UTC');
  expected.get('/times/precise.txt')!.mtimeNs = 981173106123456700n;
  file(mnt, 'times/old.txt', Buffer.from('1985\n'));
  touchMtime(join(mnt, 'times/old.txt'), '1985-03-30 12:00:00 UTC');
  expected.get('/times/old.txt')!.mtimeNs = 481032000000000000n;

  // Compression: files inherit the compressed flag from their directory.
  dir(mnt, 'compressed');
  setNtfsAttributes(join(mnt, 'compressed'), 0x800);
  file(mnt, 'compressed/text.txt', Buffer.from('All work and no play makes Jack a dull boy.\n'.repeat(8000)));
  file(mnt, 'compressed/random.bin', noise(200000, 2));
  file(mnt, 'compressed/mixed.bin', Buffer.concat([noise(70000, 3), Buffer.alloc(70000), Buffer.from('hello\n'.repeat(9000)), noise(5000, 4)]));
  file(mnt, 'compressed/zeros.bin', Buffer.alloc(300000));
  file(mnt, 'compressed/small.txt', Buffer.from('tiny\n'));
  // ~800 runs (a few clusters, then a hole, per unit): the runlist spills into
  // $DATA extents in extension records, listed in $ATTRIBUTE_LIST.
  file(mnt, 'compressed/large.txt', Buffer.from(Array.from({ length: 600000 }, (_, i) => `line ${i} of a long compressible text\n`).join('')));

  // Sparse: a hole-y file, and one extended by truncate (initialized size < size).
  const sparse = Buffer.alloc(10 * 1024 * 1024);
  noise(5000, 5).copy(sparse, 0);
  noise(3000, 6).copy(sparse, 5 * 1024 * 1024 + 17);
  noise(100, 7).copy(sparse, sparse.length - 100);
  const fd = openSync(join(mnt, 'sparse.bin'), 'w');
  for (const [at, len] of [[0, 5000], [5 * 1024 * 1024 + 17, 3000], [sparse.length - 100, 100]]) writeSync(fd, sparse, at, len, at);
  closeSync(fd);
  expected.set('/sparse.bin', { type: 'file', sha256: sha256(sparse), size: sparse.length });
  const extended = Buffer.alloc(3 * 1024 * 1024);
  extended.write('written before the truncate\n');
  writeFileSync(join(mnt, 'extended.bin'), extended.subarray(0, 28));
  run('truncate', ['-s', String(extended.length), join(mnt, 'extended.bin')]);
  expected.set('/extended.bin', { type: 'file', sha256: sha256(extended), size: extended.length });

  // Alternate data streams (streams_interface=windows exposes them as file:name).
  file(mnt, 'ads.txt', Buffer.from('main stream\n'));
  writeFileSync(join(mnt, 'ads.txt:Zone.Identifier'), '[ZoneTransfer]\r\nZoneId=3\r\n');
  writeFileSync(join(mnt, 'ads.txt:big'), noise(100000, 8));

  // Hard links, ntfs-3g (Interix) symlinks, Windows symlinks, a junction, a foreign reparse point.
  dir(mnt, 'links');
  file(mnt, 'links/original.txt', Buffer.from('shared by three names\n'));
  linkSync(join(mnt, 'links/original.txt'), join(mnt, 'links/hard1.txt'));
  linkSync(join(mnt, 'links/original.txt'), join(mnt, 'hard2.txt'));
  for (const p of ['/links/hard1.txt', '/hard2.txt']) expected.set(p, { ...expected.get('/links/original.txt')! });
  symlinkSync('../sizes/f100', join(mnt, 'links/interix-relative'));
  symlinkSync('/etc/hostname', join(mnt, 'links/interix-absolute'));
  expected.set('/links/interix-relative', { type: 'symlink', target: '../sizes/f100' });
  expected.set('/links/interix-absolute', { type: 'symlink', target: '/etc/hostname' });
  writeFileSync(join(mnt, 'links/windows-relative'), '');
  setReparse(join(mnt, 'links/windows-relative'), linkReparse('symlink', '..\\sizes\\f100', '..\\sizes\\f100', true));
  expected.set('/links/windows-relative', { type: 'symlink', target: '../sizes/f100' });
  writeFileSync(join(mnt, 'links/windows-absolute'), '');
  setReparse(join(mnt, 'links/windows-absolute'), linkReparse('symlink', '\\??\\C:\\Windows\\notepad.exe', 'C:\\Windows\\notepad.exe'));
  expected.set('/links/windows-absolute', { type: 'symlink', target: '/C:/Windows/notepad.exe' });
  mkdirSync(join(mnt, 'links/junction'));
  setReparse(join(mnt, 'links/junction'), linkReparse('junction', '\\??\\C:\\Users\\Public', 'C:\\Users\\Public'));
  expected.set('/links/junction', { type: 'symlink', target: '/C:/Users/Public' });
  writeFileSync(join(mnt, 'links/wof.dll'), '');
  setReparse(join(mnt, 'links/wof.dll'), reparseBuffer(0x80000017, Buffer.from('0100000002000000', 'hex')));
  expected.set('/links/wof.dll', { type: 'other' });
  // A cloud-files tag on a directory decorates it; its entries stay browsable.
  dir(mnt, 'links/cloud');
  file(mnt, 'links/cloud/inside.txt', Buffer.from('synced\n'));
  setReparse(join(mnt, 'links/cloud'), reparseBuffer(0x9000001a, Buffer.from('0100000000000000', 'hex')));

  // Enough hard links that the names spill into extension records ($ATTRIBUTE_LIST).
  dir(mnt, 'many');
  file(mnt, 'many/original', Buffer.from('one record, many names\n'));
  for (let i = 1; i <= MANY_LINKS; i++) {
    const rel = `many/link-with-a-fairly-long-name-${String(i).padStart(3, '0')}`;
    linkSync(join(mnt, 'many/original'), join(mnt, rel));
    expected.set(`/${rel}`, { ...expected.get('/many/original')! });
  }

  // Windows attributes: read-only, hidden; a Win32 name with a DOS 8.3 alias.
  dir(mnt, 'attrs');
  file(mnt, 'attrs/readonly.txt', Buffer.from('read only\n'));
  setNtfsAttributes(join(mnt, 'attrs/readonly.txt'), 0x21);
  file(mnt, 'attrs/hidden.txt', Buffer.from('hidden\n'));
  setNtfsAttributes(join(mnt, 'attrs/hidden.txt'), 0x22);
  file(mnt, 'attrs/Long File Name.txt', Buffer.from('has an 8.3 alias\n'));
  run('setfattr', ['-n', 'system.ntfs_dos_name', '-v', 'LONGFI~1.TXT', join(mnt, 'attrs/Long File Name.txt')]);
  file(mnt, 'attrs/posix-Case.txt', Buffer.from('POSIX namespace: case-sensitive\n'));

  dir(mnt, 'big');
  for (let i = 0; i < BIG_DIR_ENTRIES; i++) {
    const rel = `big/entry-${String(i).padStart(5, '0')}-${'n'.repeat(i % 40)}`;
    writeFileSync(join(mnt, rel), `${i}\n`);
    expected.set(`/${rel}`, { type: 'file', sha256: sha256(Buffer.from(`${i}\n`)), size: `${i}\n`.length });
  }

  let deep = 'deep';
  dir(mnt, deep);
  for (let i = 0; i < DEEP_LEVELS; i++) {
    deep = `${deep}/level${i}`;
    dir(mnt, deep);
  }
  file(mnt, `${deep}/bottom.txt`, Buffer.from('deep down\n'));

  dir(mnt, 'empty-dir');
  file(mnt, 'empty-file', Buffer.alloc(0));
  appendFileSync(join(mnt, 'sizes/f0'), ''); // touch without content
}

beforeAll(() => {
  work = tempDir();
  image = join(work, 'rich.img');
  buildImage(image, { sizeMiB: 160, label: 'Loopless NTFS', mountOptions: ['compression', 'streams_interface=windows'] }, populate);
}, 300_000);

afterAll(async () => {
  await close?.();
  removeDir(work);
});

describe('NTFS image built by mkntfs + ntfs-3g', () => {
  it('is detected and opened, with label, uuid and free space', async () => {
    const source = await RawFileSource.open(image);
    try {
      const det = await detectFileSystem(source);
      expect(det.type).toBe('ntfs');
      expect(det.driver?.name).toBe('ntfs');
    } finally {
      await source.close();
    }
    ({ fs, close } = await openNtfs(image));
    const info = fs.info();
    expect(info.type).toBe('ntfs');
    expect(info.label).toBe('Loopless NTFS');
    expect(info.uuid).toBe(run('blkid', ['-o', 'value', '-s', 'UUID', image]).trim());
    expect(info.blockSize).toBe(4096);
    expect(info.totalBlocks).toBe(Math.floor((160 * 1024 * 1024 - 512) / 4096));
    const ntfsinfo = run('ntfsinfo', ['-m', image]);
    expect(info.freeBlocks).toBe(Number(/Free Clusters:\s*(\d+)/.exec(ntfsinfo)![1]));
    expect(info.totalInodes).toBeGreaterThan(BIG_DIR_ENTRIES);
    expect(info.freeInodes).toBeGreaterThanOrEqual(0);
    seen = await walk(fs);
  });

  it('shows every name, type, size, content and link target that was put in', () => {
    const missing = [...expected.keys()].filter((p) => !seen.has(p));
    const extra = [...seen.keys()].filter((p) => !expected.has(p));
    expect(missing).toEqual([]);
    expect(extra).toEqual([]);
    for (const [path, want] of expected) {
      const got = seen.get(path)!;
      expect({ path, type: got.node.stat.type }).toEqual({ path, type: want.type });
      if (want.sha256) expect({ path, sha256: got.sha256 }).toEqual({ path, sha256: want.sha256 });
      if (want.size !== undefined) expect({ path, size: got.node.stat.size }).toEqual({ path, size: want.size });
      if (want.target !== undefined) {
        expect({ path, target: got.target }).toEqual({ path, target: want.target });
        expect(got.node.stat.size).toBe(Buffer.byteLength(want.target));
        expect(got.node.stat.mode).toBe(0o777);
      }
      if (want.mtimeNs !== undefined) expect({ path, mtime: got.node.stat.mtimeNs }).toEqual({ path, mtime: want.mtimeNs });
      if (want.type === 'dir') expect(got.node.stat.mode).toBe(0o755);
    }
  });

  it('reports plausible times for everything else (set during the build, within the last day)', () => {
    const now = BigInt(Date.now()) * 1_000_000n;
    const day = 86_400n * 1_000_000_000n;
    const st = seen.get('/sizes/f100')!.node.stat;
    for (const t of [st.mtimeNs, st.atimeNs, st.ctimeNs, st.birthtimeNs!]) {
      expect(t > now - day && t <= now + day).toBe(true);
      expect(t % 100n).toBe(0n);
    }
  });

  it('hides metafiles unless asked, but finds them by name', async () => {
    const metafiles = ['$MFT', '$MFTMirr', '$LogFile', '$Volume', '$AttrDef', '$Bitmap', '$Boot', '$BadClus', '$Secure', '$UpCase', '$Extend'];
    const root = await fs.root();
    const plain = (await fs.readdir(root)).map((e) => e.name);
    for (const m of metafiles) expect(plain).not.toContain(m);
    const all = (await fs.readdir(root, { all: true })).map((e) => e.name);
    for (const m of metafiles) expect(all).toContain(m);
    expect(all).not.toContain('.');
    const mft = await fs.lookup(root, '$MFT');
    expect(mft?.stat.ino).toBe(0);
    expect(mft?.stat.size).toBe(fs.info().totalInodes! * 1024);
    const extend = await fs.lookup(root, '$Extend');
    expect(extend?.stat.type).toBe('dir');
    expect((await fs.readdir(extend!)).length).toBe(0);
    expect((await fs.readdir(extend!, { all: true })).map((e) => e.name)).toEqual(expect.arrayContaining(['$ObjId', '$Quota', '$Reparse']));
    // $UpCase is what lookups collate with: 64 Ki UTF-16 units.
    const upcase = await fs.lookup(root, '$UpCase');
    expect((await readAll(fs, upcase!)).readUInt16LE(0x61 * 2)).toBe(0x41);
  });

  it('reads a file fragmented into several runs (checked against istat)', () => {
    const node = seen.get('/fragmented.bin')!.node;
    const runs = node.data!.mapping();
    expect(runs.length).toBeGreaterThan(3);
    // istat lists the clusters in VCN order: the runs must be the same.
    const clusters = istat(image, node.stat.ino)
      .split('$DATA')[1]
      .split('\n')
      .slice(1)
      .join(' ')
      .trim()
      .split(/\s+/)
      .filter((w) => /^\d+$/.test(w))
      .map(Number);
    const ours = runs.flatMap((r) => Array.from({ length: r.length }, (_, i) => r.lcn! + i));
    expect(clusters.slice(0, ours.length)).toEqual(ours);
  });

  it('reads LZNT1-compressed files: stored, compressed and sparse units', () => {
    for (const name of ['text.txt', 'random.bin', 'mixed.bin', 'zeros.bin', 'large.txt']) {
      const node = seen.get(`/compressed/${name}`)!.node;
      expect(node.stat.flags).toContain('compressed');
      expect(node.data!.compressed).toBe(true);
      expect(istat(image, node.stat.ino)).toMatch(/\$DATA \(128-\d+\)\s+Name: N\/A\s+Non-Resident, Compressed/);
    }
    // Text compresses: far fewer bytes on disk than in the file.
    const text = seen.get('/compressed/text.txt')!.node.stat;
    expect(text.allocatedSize).toBeLessThan(text.size / 4);
    // All-zero units are not stored at all.
    expect(seen.get('/compressed/zeros.bin')!.node.stat.allocatedSize).toBe(0);
    // The mix holds all three kinds of compression unit.
    const mixed = seen.get('/compressed/mixed.bin')!.node;
    expect(mixed.data!.mapping().some((r) => r.lcn === null)).toBe(true);
  });

  it('reads a compressed file whose runlist spans several $DATA extents in extension records', () => {
    const node = seen.get('/compressed/large.txt')!.node;
    const text = istat(image, node.stat.ino);
    const dataExtents = [...text.matchAll(/^Type: 128-\d+\s+MFT Entry: (\d+)\s+VCN: (\d+)/gm)];
    expect(dataExtents.length).toBeGreaterThanOrEqual(2);
    expect(new Set(dataExtents.map((m) => m[1])).size).toBeGreaterThanOrEqual(2);
    expect(node.data!.mapping().length).toBeGreaterThan(500);
  });

  it('reads compressed data correctly at unaligned offsets and sizes', async () => {
    const node = seen.get('/compressed/mixed.bin')!.node;
    const whole = await readAll(fs, node);
    for (const [pos, len] of [[0, 1], [65535, 2], [65536 * 2 - 7, 70000], [139999, 1], [whole.length - 3, 100]]) {
      const buf = Buffer.alloc(len);
      const n = await fs.read(node, buf, 0, len, pos);
      expect(n).toBe(Math.min(len, whole.length - pos));
      expect(buf.subarray(0, n).equals(whole.subarray(pos, pos + n))).toBe(true);
    }
  });

  it('reads sparse files and data past the initialized size as zeros', async () => {
    const sparse = seen.get('/sparse.bin')!.node;
    expect(sparse.stat.flags).toContain('sparse');
    expect(sparse.stat.allocatedSize).toBeLessThan(1024 * 1024);
    const extended = seen.get('/extended.bin')!.node;
    expect(extended.data!.initializedSize).toBeLessThan(extended.stat.size);
    const tail = Buffer.alloc(4096, 0xee);
    expect(await fs.read(extended, tail, 0, tail.length, 1024 * 1024)).toBe(4096);
    expect(tail.equals(Buffer.alloc(4096))).toBe(true);
  });

  it('maps plain files to volume offsets for synchronous reads: the same bytes as read(), null when compressed', async () => {
    const fd = openSync(image, 'r');
    try {
      let mapped = 0;
      for (const [path, e] of seen) {
        if (e.node.stat.type !== 'file' || e.node.stat.size > 32 * 1024 * 1024) continue;
        const size = e.node.stat.size;
        const pieces = await fs.mapFile(e.node, 0, size);
        if (pieces === null) {
          // Only data not stored plainly: LZNT1-compressed or resident in the MFT record.
          expect(e.node.data?.compressed || e.node.data?.isResident, path).toBe(true);
          continue;
        }
        mapped++;
        const viaMap = Buffer.alloc(size);
        let at = 0;
        for (const p of pieces) {
          if (p.at !== null) readSync(fd, viaMap, at, p.length, p.at);
          at += p.length;
        }
        expect(at, path).toBe(size);
        const viaRead = Buffer.alloc(size);
        await fs.read(e.node, viaRead, 0, size, 0);
        expect(viaMap.equals(viaRead), path).toBe(true);
      }
      expect(mapped).toBeGreaterThan(10);
      // Past the initialized size the pieces are holes (zeros), not the clusters behind them.
      const extended = seen.get('/extended.bin')!.node;
      const tail = await fs.mapFile(extended, 1024 * 1024, 4096);
      expect(tail).toEqual([{ at: null, length: 4096 }]);
    } finally {
      closeSync(fd);
    }
  });

  it('lists and reads alternate data streams', async () => {
    const node = seen.get('/ads.txt')!.node;
    expect(node.stat.streams).toEqual(
      expect.arrayContaining([
        { name: 'Zone.Identifier', size: 26 },
        { name: 'big', size: 100000 },
      ]),
    );
    expect(node.stat.streams).toHaveLength(2);
    const zone = await fs.openStream(node, 'Zone.Identifier');
    expect((await readAll(fs, zone!)).toString()).toBe('[ZoneTransfer]\r\nZoneId=3\r\n');
    const big = await fs.openStream(node, 'BIG:$DATA');
    expect(sha256(await readAll(fs, big!))).toBe(sha256(noise(100000, 8)));
    expect(big!.stat.type).toBe('file');
    expect(await fs.openStream(node, 'nope')).toBeNull();
    expect(await fs.openStream(node, '')).toBe(node);
  });

  it('shows hard links as one record with several names', () => {
    const a = seen.get('/links/original.txt')!.node;
    const b = seen.get('/links/hard1.txt')!.node;
    const c = seen.get('/hard2.txt')!.node;
    expect(a.stat.ino).toBe(b.stat.ino);
    expect(a.stat.ino).toBe(c.stat.ino);
    expect(a.stat.nlink).toBe(3);
    expect(seen.get('/sizes/f100')!.node.stat.nlink).toBe(1);
  });

  it('follows $ATTRIBUTE_LIST into extension records (a file with many names)', () => {
    const node = seen.get('/many/original')!.node;
    expect(istat(image, node.stat.ino)).toMatch(/\$ATTRIBUTE_LIST/);
    expect(node.stat.nlink).toBe(MANY_LINKS + 1);
    const names = [...seen].filter(([p, s]) => p.startsWith('/many/') && s.node.stat.ino === node.stat.ino);
    expect(names).toHaveLength(MANY_LINKS + 1);
  });

  it('reads symlinks, junctions and other reparse points', async () => {
    const wof = seen.get('/links/wof.dll')!.node;
    expect(wof.stat.otherKind).toBe('reparse point 0x80000017 (WOF compressed)');
    await expect(fs.read(wof, Buffer.alloc(10), 0, 10, 0)).rejects.toBeInstanceOf(UnsupportedError);
    expect(seen.get('/links/cloud')!.node.stat.flags).toContain('reparse');
    const junction = seen.get('/links/junction')!.node;
    await expect(fs.read(junction, Buffer.alloc(10), 0, 10, 0)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(fs.readlink(seen.get('/sizes/f100')!.node)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('maps Windows attributes to mode and flags, and hides DOS 8.3 aliases', async () => {
    const ro = seen.get('/attrs/readonly.txt')!.node.stat;
    expect(ro.mode).toBe(0o444);
    expect(ro.flags).toContain('readonly');
    expect(seen.get('/attrs/hidden.txt')!.node.stat.flags).toContain('hidden');
    expect(seen.get('/attrs/hidden.txt')!.node.stat.mode).toBe(0o644);
    const attrs = (await lookupPath(fs, '/attrs'))!;
    const names = (await fs.readdir(attrs)).map((e) => e.name);
    expect(names).not.toContain('LONGFI~1.TXT');
    // Win32 names match case-insensitively (and by their 8.3 alias), POSIX names do not.
    const long = await fs.lookup(attrs, 'Long File Name.txt');
    expect((await fs.lookup(attrs, 'LONG FILE NAME.TXT'))?.stat.ino).toBe(long!.stat.ino);
    expect((await fs.lookup(attrs, 'longfi~1.txt'))?.stat.ino).toBe(long!.stat.ino);
    expect(long!.stat.nlink).toBe(1);
    expect(await fs.lookup(attrs, 'posix-Case.txt')).not.toBeNull();
    expect(await fs.lookup(attrs, 'POSIX-CASE.TXT')).toBeNull();
  });

  it('walks a 5,000-entry directory over a multi-level index, in order, and looks names up', async () => {
    const big = (await lookupPath(fs, '/big'))!;
    const entries = await fs.readdir(big);
    expect(entries).toHaveLength(BIG_DIR_ENTRIES);
    const names = entries.map((e) => e.name);
    // Collation order: these ASCII names sort as upper-cased code units.
    expect(names).toEqual([...names].sort((a, b) => (a.toUpperCase() < b.toUpperCase() ? -1 : a.toUpperCase() > b.toUpperCase() ? 1 : 0)));
    // Far more index blocks than the root (inside a 1 KiB record) can point to: at least three levels.
    expect(big.stat.size / 4096).toBeGreaterThan(60);
    for (const i of [0, 1, 777, 2500, 4999]) {
      const name = `entry-${String(i).padStart(5, '0')}-${'n'.repeat(i % 40)}`;
      const node = await fs.lookup(big, name);
      expect((await readAll(fs, node!)).toString()).toBe(`${i}\n`);
    }
    expect(await fs.lookup(big, 'entry-05000-')).toBeNull();
    expect(await fs.lookup(big, 'zzz')).toBeNull();
    expect(await fs.lookup(big, '')).toBeNull();
  });

  it('reaches the bottom of deep nesting by lookup', async () => {
    const path = `/deep/${Array.from({ length: DEEP_LEVELS }, (_, i) => `level${i}`).join('/')}/bottom.txt`;
    const node = await lookupPath(fs, path);
    expect((await readAll(fs, node!)).toString()).toBe('deep down\n');
  });

  it('issues one source read per contiguous stretch: large reads stay large', async () => {
    const node = seen.get('/fragmented.bin')!.node;
    const runs = node.data!.mapping();
    // Count the reads that reach the volume while reading the file in 4 MiB requests.
    const raw = await RawFileSource.open(image);
    const reads: number[] = [];
    const counting: ByteSource = {
      size: raw.size,
      description: raw.description,
      read: (b, o, l, p) => (reads.push(l), raw.read(b, o, l, p)),
      close: () => raw.close(),
    };
    const { NtfsFileSystem } = await import('../../../parsers/fs/ntfs/index.js');
    const counted = await NtfsFileSystem.open(counting);
    try {
      const again = (await lookupPath(counted, '/fragmented.bin'))!;
      reads.length = 0;
      const buf = Buffer.alloc(4 * 1024 * 1024);
      let total = 0;
      for (let pos = 0; pos < again.stat.size; pos += buf.length) total += await counted.read(again, buf, 0, buf.length, pos);
      expect(total).toBe(again.stat.size);
      // At most one read per run plus one per 4 MiB request boundary.
      expect(reads.length).toBeLessThanOrEqual(runs.length + Math.ceil(again.stat.size / buf.length));
      expect(Math.max(...reads)).toBeGreaterThanOrEqual(1024 * 1024);
    } finally {
      await counted.close();
      await raw.close();
    }
  });

  it('reports allocated ranges from $Bitmap that cover every file and the backup boot sector', async () => {
    const ranges = await fs.allocatedRanges();
    for (let i = 1; i < ranges.length; i++) expect(ranges[i].start).toBeGreaterThan(ranges[i - 1].start + ranges[i - 1].length);
    const covered = (start: number, length: number) => ranges.some((r) => r.start <= start && start + length <= r.start + r.length);
    expect(covered(0, 512)).toBe(true);
    const size = 160 * 1024 * 1024;
    expect(covered(size - 512, 512)).toBe(true);
    for (const p of ['/fragmented.bin', '/compressed/mixed.bin', '/sparse.bin', '/sizes/f300000']) {
      for (const r of seen.get(p)!.node.data!.mapping()) if (r.lcn !== null) expect(covered(r.lcn * 4096, r.length * 4096)).toBe(true);
    }
    const info = fs.info();
    const bytes = ranges.reduce((s, r) => s + r.length, 0);
    // In-use clusters, plus the backup boot sector past the last whole cluster.
    expect(bytes).toBe((info.totalBlocks - info.freeBlocks) * 4096 + 512);
    // Free space really is free: a sparse-hole cluster of sparse.bin is not covered.
    expect(covered(4096 * (info.totalBlocks - 1), 4096)).toBe(false);
  });
});

describe.runIf(hasTool('fls') && hasTool('icat'))('NTFS against the Sleuth Kit', () => {
  it('agrees with fls -r -p on every name', () => {
    const theirs = fls(image).filter((e) => !e.deleted && !e.path.startsWith('/$OrphanFiles'));
    // fls lists each named stream as "file:stream"; we list streams on the file. Metafiles are hidden in our default view.
    const isStream = (p: string) => p.slice(p.lastIndexOf('/') + 1).includes(':');
    const names = theirs.filter((e) => !isStream(e.path) && !e.path.startsWith('/$')).map((e) => e.path);
    expect(names.sort()).toEqual([...seen.keys()].sort());
    const streams = theirs.filter((e) => isStream(e.path) && !e.path.startsWith('/$'));
    expect(streams.length).toBeGreaterThanOrEqual(2);
    for (const s of streams) {
      const cut = s.path.lastIndexOf(':');
      expect(seen.get(s.path.slice(0, cut))?.node.stat.streams?.map((x) => x.name)).toContain(s.path.slice(cut + 1));
    }
  });

  it('agrees with icat on the content of files, streams and metafiles', async () => {
    const theirs = fls(image).filter((e) => !e.deleted && e.type === 'r');
    const byPath = new Map(theirs.map((e) => [e.path, e]));
    const sample = [...seen].filter(([p, s]) => s.node.stat.type === 'file' && (!p.startsWith('/big/') || p.endsWith('7')) && !p.startsWith('/many/link'));
    expect(sample.length).toBeGreaterThan(30);
    for (const [path, s] of sample) {
      const entry = byPath.get(path);
      expect(entry, path).toBeDefined();
      expect({ path, sha256: sha256(icat(image, String(entry!.inode))) }).toEqual({ path, sha256: s.sha256 });
    }
    const ads = byPath.get('/ads.txt:big')!;
    const stream = await fs.openStream(seen.get('/ads.txt')!.node, 'big');
    expect(sha256(await readAll(fs, stream!))).toBe(sha256(icat(image, `${ads.inode}-${ads.attr}`)));
    const root = await fs.root();
    for (const meta of ['$MFT', '$Bitmap', '$UpCase', '$AttrDef', '$Boot']) {
      const node = (await fs.lookup(root, meta))!;
      expect({ meta, sha256: sha256(await readAll(fs, node)) }).toEqual({ meta, sha256: sha256(icat(image, String(node.stat.ino))) });
    }
  });
});

