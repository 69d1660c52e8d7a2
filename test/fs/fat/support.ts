/**
 * Shared helpers for the FAT and exFAT tests: build a source tree on the host,
 * put it into an image with the real tools (mkfs.fat + mtools, or mkfs.exfat
 * + exfat-fuse), open it with our drivers and compare what they see with what
 * was put in. The Sleuth Kit (fls/icat) is the second opinion.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  ftruncateSync,
  copyFileSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
  readSync,
} from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { CorruptError } from '../../../parsers/errors.js';
import { detectFileSystem } from '../../../parsers/fs/index.js';
import type { FileSystem, FsNode } from '../../../parsers/fs/types.js';
import { RawFileSource } from '../../../parsers/source/raw.js';
import type { ByteSource } from '../../../parsers/source/types.js';

/** mtools under TZ=UTC writes UTC into FAT's zone-less fields, which is how we read them back. */
export const ENV = {
  ...process.env,
  TZ: 'UTC',
  MTOOLS_SKIP_CHECK: '1',
  PATH: `/usr/sbin:/sbin:${process.env.PATH ?? '/usr/bin:/bin'}`,
};

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = ENV): string {
  return execFileSync(cmd, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024 });
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Fixed mtimes, whole even seconds so FAT's 2-second resolution keeps them exact. */
export const T2001 = 981173106; // 2001-02-03 04:05:06 UTC
export const T1999 = 915148800; // 1999-01-01 00:00:00 UTC

export interface TreeOptions {
  /** A directory holding this many files (long names, so three entries each on FAT). */
  bigDir?: number;
  /** Size of the one large file (bytes); 0 leaves it out. */
  largeFile?: number;
  /** Depth of the nested directory chain. */
  depth?: number;
  /** Include a name with a character outside the BMP (mtools truncates those to 16 bits, so FAT trees leave it out). */
  astral?: boolean;
}

/** Deterministic pseudo-random bytes, so failures can be reproduced. */
export function patternBytes(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(Math.ceil(size / 4) * 4);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  return out.subarray(0, size);
}

/**
 * The standard tree: lowercase 8.3 names (which FAT stores with the NT case
 * flags), mixed-case and long names, Unicode (outside the BMP too, where the
 * writing tool can), an empty file, sizes around cluster boundaries, deep nesting, an
 * optional big directory and an optional large file.
 */
export function buildTree(root: string, opts: TreeOptions = {}): void {
  mkdirSync(root, { recursive: true });
  const file = (rel: string, data: Buffer | string, mtime = T2001) => {
    const p = join(root, rel);
    writeFileSync(p, data);
    utimesSync(p, mtime, mtime);
  };
  file('readme.txt', 'read me\n');
  file('UPPER.TXT', 'upper case 8.3\n');
  file('MixedCase.Txt', 'mixed\n', T1999);
  file('A Long File Name With Spaces.text', patternBytes(5000, 1));
  file('ünïcødé файл 日本語.txt', 'unicode\n');
  file(opts.astral ? 'emoji 😀 outside the BMP.dat' : 'symbols € ✓ Ω ½.dat', patternBytes(777, 2));
  file('empty', '');
  file('exactly-4096.bin', patternBytes(4096, 3));
  file('one-more-than-4096.bin', patternBytes(4097, 4));
  file('name.with.many.dots.tar.gz', patternBytes(100, 5));
  mkdirSync(join(root, 'lower'));
  file('lower/inner.txt', 'inside lower\n');
  mkdirSync(join(root, 'Empty Dir'));
  let deep = root;
  for (let i = 1; i <= (opts.depth ?? 10); i++) {
    deep = join(deep, `level ${i}`);
    mkdirSync(deep);
  }
  writeFileSync(join(deep, 'bottom.txt'), 'deep down\n');
  utimesSync(join(deep, 'bottom.txt'), T2001, T2001);
  if (opts.bigDir) {
    mkdirSync(join(root, 'many'));
    // Distinct first six characters: mtools finds a free "~N" alias in one try, not a thousand.
    for (let i = 0; i < opts.bigDir; i++) file(`many/${String(i).padStart(5, '0')} entry in a big directory.txt`, `${i}\n`);
  }
  if (opts.largeFile) file('large.bin', patternBytes(opts.largeFile, 6));
}

export interface Entry {
  type: 'file' | 'dir';
  size: number;
  sha256?: string;
  mtimeS?: number;
}

/** What was put in: path → type, size, hash, mtime (whole seconds). */
export function describeSourceTree(root: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const visit = (dir: string, rel: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const r = `${rel}/${name}`;
      const st = statSync(p);
      if (st.isDirectory()) {
        out.set(r, { type: 'dir', size: 0 });
        visit(p, r);
      } else {
        out.set(r, { type: 'file', size: st.size, sha256: sha256(readFileSync(p)), mtimeS: Math.floor(st.mtimeMs / 1000) });
      }
    }
  };
  visit(root, '');
  return out;
}

export async function readWhole(fs: FileSystem, node: FsNode, chunk = 4 * 1024 * 1024): Promise<Buffer> {
  const out = Buffer.alloc(node.stat.size);
  let pos = 0;
  while (pos < out.length) {
    const n = await fs.read(node, out, pos, Math.min(chunk, out.length - pos), pos);
    if (n <= 0) throw new Error(`short read at ${pos}`);
    pos += n;
  }
  return out;
}

export interface SeenEntry extends Entry {
  node: FsNode;
}

/** What our driver sees: the whole tree, with contents hashed. */
export async function describeImageTree(fs: FileSystem): Promise<Map<string, SeenEntry>> {
  const out = new Map<string, SeenEntry>();
  const visit = async (dir: FsNode, rel: string) => {
    for (const { name, node } of await fs.readdir(dir)) {
      const r = `${rel}/${name}`;
      if (node.stat.type === 'dir') {
        out.set(r, { type: 'dir', size: 0, node });
        await visit(node, r);
      } else {
        const data = await readWhole(fs, node);
        out.set(r, { type: 'file', size: node.stat.size, sha256: sha256(data), mtimeS: Number(node.stat.mtimeNs / 1_000_000_000n), node });
      }
    }
  };
  await visit(await fs.root(), '');
  return out;
}

/** Differences between what was put in and what was read back, as readable lines. */
export function compareTrees(expected: Map<string, Entry>, actual: Map<string, Entry>, compareMtime = true): string[] {
  const problems: string[] = [];
  for (const [path, e] of expected) {
    const a = actual.get(path);
    if (!a) {
      problems.push(`missing: ${path}`);
      continue;
    }
    if (a.type !== e.type) problems.push(`${path}: type ${a.type}, expected ${e.type}`);
    if (e.type === 'file') {
      if (a.size !== e.size) problems.push(`${path}: size ${a.size}, expected ${e.size}`);
      if (a.sha256 !== e.sha256) problems.push(`${path}: content differs`);
      if (compareMtime && a.mtimeS !== e.mtimeS) problems.push(`${path}: mtime ${a.mtimeS}, expected ${e.mtimeS}`);
    }
  }
  for (const path of actual.keys()) if (!expected.has(path)) problems.push(`unexpected: ${path}`);
  return problems;
}

export async function openImage(image: string): Promise<{ fs: FileSystem; source: ByteSource; type: string | null }> {
  const source = await RawFileSource.open(image);
  const det = await detectFileSystem(source);
  if (!det.driver) {
    await source.close();
    throw new Error(`${image}: not detected (${det.type})`);
  }
  return { fs: await det.driver.open(source), source, type: det.type };
}

export async function closeImage(o: { fs: FileSystem; source: ByteSource }): Promise<void> {
  await o.fs.close();
  await o.source.close();
}

/** mkfs.fat into a new image file of `sizeKiB`, then copy `tree` in with mtools preserving mtimes. */
export function makeFatImage(image: string, mkfsArgs: string[], sizeKiB: number, tree?: string): void {
  rmSync(image, { force: true });
  run('mkfs.fat', ['-C', ...mkfsArgs, image, String(sizeKiB)]);
  if (tree) {
    const items = readdirSync(tree).map((n) => join(tree, n));
    run('mcopy', ['-s', '-m', '-i', image, ...items, '::/']);
  }
}

export function mtools(tool: string, image: string, ...args: string[]): string {
  return run(tool, ['-i', image, ...args]);
}

/** Sleuth Kit's view: path → inode, regular files and directories only (no $MBR, $FAT, label, orphans). */
export function flsPaths(image: string, sectorOffset = 0): Map<string, string> {
  const args = ['-r', '-p', '-u'];
  if (sectorOffset) args.push('-o', String(sectorOffset));
  const out = run('fls', [...args, image]);
  const map = new Map<string, string>();
  for (const line of out.split('\n')) {
    const m = /^([rd])\/[rd-] \*? ?([\d-]+):\t(.*)$/.exec(line);
    if (!m) continue;
    const [, , ino, path] = m;
    if (path.startsWith('$') || path.includes('(Volume Label Entry)')) continue;
    map.set(`/${path}`, ino);
  }
  return map;
}

export function icat(image: string, inode: string): Buffer {
  return execFileSync('icat', [image, inode], { env: ENV, maxBuffer: 512 * 1024 * 1024 });
}

/** Run `fn`, expect a CorruptError, check it came fast and is one line naming a structure and offset. */
export async function expectCorrupt(fn: () => Promise<unknown>, structure: string | RegExp, offset?: number): Promise<CorruptError> {
  const started = performance.now();
  let error: unknown;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  expect(performance.now() - started).toBeLessThan(1000);
  expect(error).toBeInstanceOf(CorruptError);
  const c = error as CorruptError;
  if (typeof structure === 'string') expect(c.structure).toBe(structure);
  else expect(c.structure).toMatch(structure);
  if (offset !== undefined) expect(c.offset).toBe(offset);
  expect(c.message).not.toContain('\n');
  expect(c.message).toMatch(/^corrupt .* at byte \d+: /);
  return c;
}

/** Overwrite bytes of an image copy (never a sample image). */
export function patch(image: string, offset: number, bytes: Buffer | number[]): void {
  const fd = openSync(image, 'r+');
  try {
    const b = Buffer.from(bytes);
    writeSync(fd, b, 0, b.length, offset);
  } finally {
    closeSync(fd);
  }
}

export function peek(image: string, offset: number, length: number): Buffer {
  const fd = openSync(image, 'r');
  try {
    const b = Buffer.alloc(length);
    readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

/** A sparse copy of `image` holding only `ranges`: what a restore from allocated ranges would produce. */
export function copyRanges(image: string, to: string, ranges: { start: number; length: number }[]): void {
  const from = openSync(image, 'r');
  const out = openSync(to, 'w');
  try {
    ftruncateSync(out, statSync(image).size);
    const buf = Buffer.alloc(4 * 1024 * 1024);
    for (const r of ranges) {
      for (let done = 0; done < r.length; ) {
        const n = readSync(from, buf, 0, Math.min(buf.length, r.length - done), r.start + done);
        if (n <= 0) break;
        writeSync(out, buf, 0, n, r.start + done);
        done += n;
      }
    }
  } finally {
    closeSync(from);
    closeSync(out);
  }
}

export function copyImage(image: string, to: string): string {
  copyFileSync(image, to);
  return to;
}

/**
 * Interleave small files, delete every other one, then write a big file into
 * the holes: the big file ends up in many fragments. `write(name, data)` and
 * `remove(name)` act on the filesystem being built.
 */
export function fragment(write: (name: string, data: Buffer) => void, remove: (name: string) => void, holes: number, holeBytes: number, big: Buffer): void {
  for (let i = 0; i < holes * 2; i++) write(`filler-${String(i).padStart(3, '0')}.bin`, patternBytes(holeBytes, 100 + i));
  for (let i = 0; i < holes * 2; i += 2) remove(`filler-${String(i).padStart(3, '0')}.bin`);
  write('fragmented.bin', big);
}

/**
 * Attach `image` to a free loop device for the duration of `fn` (exfat-fuse run
 * as root insists on a block device; a 4 KiB logical block size also lets
 * mkfs.exfat make 4 KiB-sector volumes). Always detached afterwards.
 */
export async function withLoop<T>(image: string, fn: (device: string) => T | Promise<T>, sectorSize = 512): Promise<T> {
  const device = run('losetup', ['--find', '--show', '-b', String(sectorSize), image]).trim();
  try {
    return await fn(device);
  } finally {
    run('losetup', ['-d', device]);
  }
}

/**
 * Mount an exFAT block device with exfat-fuse for the duration of `fn`. The
 * FUSE process runs in the foreground (-d) as our child so that, after the
 * unmount, we can wait for it to exit: every write has then reached the image.
 * `tz` is the zone exfat-fuse writes local times (and UTC offsets) in.
 */
export async function withExfatMount<T>(device: string, mountpoint: string, fn: () => T | Promise<T>, tz = 'UTC'): Promise<T> {
  mkdirSync(mountpoint, { recursive: true });
  let exited: Promise<void> | null = null;
  try {
    const child = spawn('mount.exfat-fuse', ['-d', device, mountpoint], { env: { ...ENV, TZ: tz }, stdio: 'ignore' });
    exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 10_000;
    while (!isMounted(mountpoint)) {
      if (Date.now() > deadline) throw new Error(`exfat-fuse did not mount ${device} on ${mountpoint}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return await fn();
  } finally {
    if (isMounted(mountpoint)) run('fusermount', ['-u', mountpoint]);
    if (exited) await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }
}

function isMounted(mountpoint: string): boolean {
  const target = mountpoint.replace(/ /g, '\\040');
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === target);
}

/** Copy a host tree into a mounted directory, keeping mtimes. */
export function copyTree(from: string, to: string): void {
  for (const name of readdirSync(from)) {
    const src = join(from, name);
    const dst = join(to, name);
    const st = statSync(src);
    if (st.isDirectory()) {
      mkdirSync(dst);
      copyTree(src, dst);
    } else {
      copyFileSync(src, dst);
    }
    utimesSync(dst, st.atime, st.mtime);
  }
}

export { unlinkSync, writeFileSync, utimesSync };
