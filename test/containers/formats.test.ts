import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImage } from '../../parsers/source/open.js';
import { run, tempDir } from '../support/run.js';
import { checkAllocatedCovers, checkRandomReads, fileSha256, makeRawDisk, readAll, sha256 } from './support.js';

/**
 * Every container format, made from one real raw disk by the real tools
 * (qemu-img convert, gzip, pigz, xz, zstd, pzstd, bzip2), must read back as
 * exactly that disk: a full read (sha256) and random reads, with allocated
 * ranges covering every non-zero byte, and the container file unchanged.
 */
const tmp = tempDir('loopless-containers-');
const cacheDir = join(tmp.dir, 'cache');
let raw: string;
let rawBytes: Buffer;
let rawSha: string;

beforeAll(() => {
  raw = makeRawDisk(tmp.dir);
  rawBytes = readFileSync(raw);
  rawSha = sha256(rawBytes);
});
afterAll(() => tmp.cleanup());

function qemu(format: string, options: string[] = [], extra: string[] = []): (out: string) => void {
  return (out) => run('qemu-img', ['convert', ...extra, '-O', format, ...(options.length ? ['-o', options.join(',')] : []), raw, out]);
}

function pipe(cmd: string, args: string[], input = () => raw): (out: string) => void {
  return (out) => {
    run('sh', ['-c', `${cmd} ${args.join(' ')} < "$1" > "$2"`, 'sh', input(), out]);
  };
}

/** The zstd seekable format (contrib/seekable_format): independent frames made by zstd, then the seek table. */
function zstdSeekable(out: string): void {
  const frames: Buffer[] = [];
  const entries: Buffer[] = [];
  for (let at = 0; at < rawBytes.length; at += 1 << 20) {
    const piece = rawBytes.subarray(at, at + (1 << 20));
    const frame = execFileSync('zstd', ['-q', '-c', '-1'], { input: piece, maxBuffer: 8 << 20 });
    frames.push(frame);
    const e = Buffer.alloc(8);
    e.writeUInt32LE(frame.length, 0);
    e.writeUInt32LE(piece.length, 4);
    entries.push(e);
  }
  const table = Buffer.concat(entries);
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a5e, 0);
  head.writeUInt32LE(table.length + 9, 4);
  const foot = Buffer.alloc(9);
  foot.writeUInt32LE(entries.length, 0);
  foot[4] = 0;
  foot.writeUInt32LE(0x8f92eab1, 5);
  writeFileSync(out, Buffer.concat([...frames, head, table, foot]));
}

interface Case {
  name: string;
  file: string;
  make: (out: string) => void;
  chain: string[];
  /** qemu-img rounds plain VHD sizes up to a CHS geometry: extra bytes read as zeros. */
  sizeAtLeast?: boolean;
  reads?: number;
}

const cases: Case[] = [
  { name: 'qcow2 v3', file: 'd.qcow2', make: qemu('qcow2'), chain: ['qcow2'] },
  { name: 'qcow2 v2 (compat=0.10)', file: 'd2.qcow2', make: qemu('qcow2', ['compat=0.10']), chain: ['qcow2'] },
  { name: 'qcow2 512-byte clusters', file: 'd512.qcow2', make: qemu('qcow2', ['cluster_size=512']), chain: ['qcow2'] },
  { name: 'qcow2 compressed (deflate)', file: 'dc.qcow2', make: qemu('qcow2', [], ['-c']), chain: ['qcow2'] },
  { name: 'qcow2 compressed (zstd)', file: 'dz.qcow2', make: qemu('qcow2', ['compression_type=zstd'], ['-c']), chain: ['qcow2'] },
  { name: 'qcow2 extended L2', file: 'dx.qcow2', make: qemu('qcow2', ['extended_l2=on', 'cluster_size=128k']), chain: ['qcow2'] },
  { name: 'VHD dynamic (CHS-rounded size)', file: 'd.vhd', make: qemu('vpc'), chain: ['vhd'], sizeAtLeast: true },
  { name: 'VHD dynamic (exact size)', file: 'de.vhd', make: qemu('vpc', ['force_size=on']), chain: ['vhd'] },
  { name: 'VHD fixed', file: 'df.vhd', make: qemu('vpc', ['subformat=fixed', 'force_size=on']), chain: ['vhd'] },
  { name: 'VHDX dynamic', file: 'd.vhdx', make: qemu('vhdx'), chain: ['vhdx'] },
  { name: 'VHDX fixed', file: 'df.vhdx', make: qemu('vhdx', ['subformat=fixed']), chain: ['vhdx'] },
  { name: 'VHDX 1 MiB blocks', file: 'd1.vhdx', make: qemu('vhdx', ['block_size=1M']), chain: ['vhdx'] },
  { name: 'VMDK monolithicSparse', file: 'ms/d.vmdk', make: qemu('vmdk', ['subformat=monolithicSparse']), chain: ['vmdk'] },
  { name: 'VMDK streamOptimized', file: 'so/d.vmdk', make: qemu('vmdk', ['subformat=streamOptimized']), chain: ['vmdk'] },
  { name: 'VMDK monolithicFlat', file: 'mf/d.vmdk', make: qemu('vmdk', ['subformat=monolithicFlat']), chain: ['vmdk'] },
  { name: 'VMDK twoGbMaxExtentSparse', file: 'ts/d.vmdk', make: qemu('vmdk', ['subformat=twoGbMaxExtentSparse']), chain: ['vmdk'] },
  { name: 'VMDK twoGbMaxExtentFlat', file: 'tf/d.vmdk', make: qemu('vmdk', ['subformat=twoGbMaxExtentFlat']), chain: ['vmdk'] },
  { name: 'VDI dynamic', file: 'd.vdi', make: qemu('vdi'), chain: ['vdi'] },
  { name: 'VDI static', file: 'ds.vdi', make: qemu('vdi', ['static=on']), chain: ['vdi'] },
  { name: 'gzip', file: 'd.img.gz', make: pipe('gzip', ['-c']), chain: ['gzip'] },
  { name: 'gzip -1', file: 'd1.img.gz', make: pipe('gzip', ['-1', '-c']), chain: ['gzip'] },
  { name: 'pigz --rsyncable', file: 'dp.img.gz', make: pipe('pigz', ['-p', '1', '--rsyncable', '-c']), chain: ['gzip'] },
  {
    name: 'gzip, two concatenated members',
    file: 'dm.img.gz',
    make: (out) => run('sh', ['-c', 'head -c 10000000 "$1" | gzip -c > "$2"; tail -c +10000001 "$1" | gzip -9 -c >> "$2"', 'sh', raw, out]),
    chain: ['gzip'],
  },
  { name: 'xz, one block (checkpoints)', file: 'd.img.xz', make: pipe('xz', ['-c', '-T1', '-2']), chain: ['xz'] },
  { name: 'xz --block-size=2MiB', file: 'db.img.xz', make: pipe('xz', ['-c', '-T1', '-1', '--block-size=2MiB']), chain: ['xz'] },
  { name: 'xz -T2 (multi-block)', file: 'dt.img.xz', make: pipe('xz', ['-c', '-T2', '-1']), chain: ['xz'] },
  { name: 'xz SHA-256 check', file: 'ds.img.xz', make: pipe('xz', ['-c', '-1', '--check=sha256', '--block-size=4MiB']), chain: ['xz'] },
  { name: 'zstd, one frame (streamed)', file: 'd.img.zst', make: pipe('zstd', ['-q', '-c']), chain: ['zstd'] },
  { name: 'pzstd (frames)', file: 'dp.img.zst', make: pipe('pzstd', ['-q', '-p', '2', '-c']), chain: ['zstd'] },
  { name: 'zstd seekable format', file: 'ds.img.zst', make: zstdSeekable, chain: ['zstd'] },
  { name: 'bzip2', file: 'd.img.bz2', make: pipe('bzip2', ['-c']), chain: ['bzip2'], reads: 4 },
  { name: 'bzip2 -1', file: 'd1.img.bz2', make: pipe('bzip2', ['-1', '-c']), chain: ['bzip2'], reads: 4 },
  {
    name: 'VHDX inside gzip',
    file: 'n.vhdx.gz',
    make: (out) => {
      qemu('vhdx')(join(tmp.dir, 'n.vhdx'));
      pipe('gzip', ['-c'], () => join(tmp.dir, 'n.vhdx'))(out);
    },
    chain: ['gzip', 'vhdx'],
  },
  {
    name: 'qcow2 inside multi-block xz',
    file: 'n.qcow2.xz',
    make: (out) => {
      qemu('qcow2')(join(tmp.dir, 'n.qcow2'));
      pipe('xz', ['-c', '-1', '--block-size=1MiB'], () => join(tmp.dir, 'n.qcow2'))(out);
    },
    chain: ['xz', 'qcow2'],
  },
];

describe('containers read back as the raw disk they hold', () => {
  it.each(cases)('$name', { timeout: 120_000 }, async (c) => {
    const path = join(tmp.dir, c.file);
    run('mkdir', ['-p', join(path, '..')]);
    c.make(path);
    const before = fileSha256(path);
    const mtime = statSync(path).mtimeMs;
    const img = await openImage(path, { cacheDir });
    try {
      expect(img.chain).toEqual(c.chain);
      if (c.sizeAtLeast) expect(img.source.size).toBeGreaterThanOrEqual(rawBytes.length);
      else expect(img.source.size).toBe(rawBytes.length);
      const all = await readAll(img.source);
      expect(sha256(all.subarray(0, rawBytes.length))).toBe(rawSha);
      expect(all.subarray(rawBytes.length).every((b) => b === 0)).toBe(true);
      await checkRandomReads(img.source, rawBytes, c.reads ?? 40, 1234);
      if (img.source.allocatedRanges) checkAllocatedCovers(await img.source.allocatedRanges(), rawBytes);
    } finally {
      await img.source.close();
    }
    // Read-only: the container is byte-for-byte unchanged.
    expect(fileSha256(path)).toBe(before);
    expect(statSync(path).mtimeMs).toBe(mtime);
  });

  it('detects by magic, not by name', async () => {
    const path = join(tmp.dir, 'really-qcow2.img');
    qemu('qcow2')(path);
    const misnamed = join(tmp.dir, 'really-gzip.vhdx');
    pipe('gzip', ['-c'])(misnamed);
    for (const [p, chain] of [[path, ['qcow2']], [misnamed, ['gzip']], [raw, []]] as const) {
      const img = await openImage(p, { cacheDir });
      expect(img.chain).toEqual(chain);
      expect(sha256(await readAll(img.source))).toBe(rawSha);
      await img.source.close();
    }
  });

  it('sparse containers report holes, and the file size differs from the disk size', async () => {
    const path = join(tmp.dir, 'holes.qcow2');
    qemu('qcow2')(path);
    const img = await openImage(path, { cacheDir });
    const ranges = await img.source.allocatedRanges!();
    const allocated = ranges.reduce((s, r) => s + r.length, 0);
    expect(allocated).toBeLessThan(rawBytes.length * 0.75);
    expect(img.fileSize).toBe(statSync(path).size);
    expect(img.fileSize).not.toBe(img.source.size);
    await img.source.close();
  });
});

describe('gzip seek index', () => {
  it('is built once with progress, cached, and rebuilt when the file changes', { timeout: 120_000 }, async () => {
    const path = join(tmp.dir, 'cached.img.gz');
    pipe('gzip', ['-c'])(path);
    const dir = join(tmp.dir, 'cache-gz');
    const progress: { done: number; total: number }[] = [];
    const first = await openImage(path, { cacheDir: dir, onProgress: (p) => progress.push(p) });
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toMatchObject({ done: statSync(path).size, total: statSync(path).size });
    expect(progress.every((p, i) => i === 0 || p.done >= progress[i - 1].done)).toBe(true);
    expect(first.source.description).toMatch(/index built/);
    await first.source.close();
    const files = run('ls', [dir]).trim().split('\n');
    expect(files.length).toBe(1);
    const indexSize = statSync(join(dir, files[0])).size;
    expect(indexSize).toBeLessThan(statSync(path).size / 2);

    const again: unknown[] = [];
    const started = performance.now();
    const second = await openImage(path, { cacheDir: dir, onProgress: (p) => again.push(p) });
    const openMs = performance.now() - started;
    expect(again).toEqual([]);
    expect(second.source.description).toMatch(/cached index/);
    await checkRandomReads(second.source, rawBytes, 20, 99);
    await second.source.close();
    expect(openMs).toBeLessThan(2000);

    // Touching the file changes its mtime: the old index must not be trusted.
    const later = new Date(Date.now() + 5000);
    run('touch', ['-d', later.toISOString(), path]);
    const rebuilt: unknown[] = [];
    const third = await openImage(path, { cacheDir: dir, onProgress: (p) => rebuilt.push(p) });
    expect(rebuilt.length).toBeGreaterThan(0);
    expect(sha256(await readAll(third.source))).toBe(rawSha);
    await third.source.close();
  });

  it('honours LOOPLESS_CACHE_DIR, and works when the cache cannot be written', { timeout: 60_000 }, async () => {
    const path = join(tmp.dir, 'env.img.gz');
    copyFileSync(join(tmp.dir, 'cached.img.gz'), path);
    const envDir = join(tmp.dir, 'cache-env');
    const old = process.env.LOOPLESS_CACHE_DIR;
    process.env.LOOPLESS_CACHE_DIR = envDir;
    try {
      const img = await openImage(path);
      await img.source.close();
      expect(run('ls', [envDir]).trim().split('\n').length).toBe(1);
    } finally {
      if (old === undefined) delete process.env.LOOPLESS_CACHE_DIR;
      else process.env.LOOPLESS_CACHE_DIR = old;
    }
    // A cache "directory" that is a file cannot be created: the index goes to a temp file instead.
    const blocked = join(tmp.dir, 'not-a-dir');
    writeFileSync(blocked, 'x');
    const img = await openImage(path, { cacheDir: join(blocked, 'sub') });
    expect(img.source.description).toMatch(/cache not writable/);
    expect(sha256(await readAll(img.source))).toBe(rawSha);
    await img.source.close();
  });
});
