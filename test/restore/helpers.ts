/**
 * Shared pieces of the restore tests: running the built CLI (with a fault
 * hook preloaded when asked), comparing two disks through our own parser,
 * loop devices and kernel mounts that are always cleaned up.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect } from 'vitest';
import { Disk, walk, type Entry } from '../../parsers/vfs/index.js';
import { readManifest, type Manifest, type ManifestEntry } from '../support/manifests.js';
import { run } from '../support/run.js';
import { makeTree } from '../support/tree.js';

export const repoRoot = join(import.meta.dirname, '..', '..');
export const BIN = join(repoRoot, 'bin', 'loopless.js');
export const samples = join(repoRoot, 'sample-images');
/** The fault-injection module the tests preload into the CLI (see restore/hooks.ts). */
export const FAULT_HOOK = join(import.meta.dirname, 'fault-hook.mjs');

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Environment for the fault hook (LOOPLESS_TEST_FAULT ...); preloads it when set. */
  fault?: Record<string, string>;
  input?: string;
}

function nodeArgs(args: string[], options: CliOptions): string[] {
  return [...(options.fault ? ['--import', FAULT_HOOK] : []), BIN, ...args];
}

function env(options: CliOptions): NodeJS.ProcessEnv {
  return { ...process.env, ...(options.fault ?? {}) };
}

export function loopless(args: string[], options: CliOptions = {}): CliResult {
  const r = spawnSync(process.execPath, nodeArgs(args, options), { env: env(options), input: options.input ?? '', encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Start the CLI without waiting: for interrupting it. */
export function startLoopless(args: string[], options: CliOptions = {}) {
  const child = spawn(process.execPath, nodeArgs(args, options), { env: env(options), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ status: code ?? (signal ? 128 : -1), stdout, stderr })));
  return { child, done, output: () => stdout };
}

export function jsonLines(stdout: string): Record<string, any>[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, any>);
}

export const sha256 = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Bytes [start, start+length) of a file. */
export function bytesOf(path: string, start: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const n = readSync(fd, buf, 0, length, start);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Disk blocks a file really occupies (st_blocks x 512). */
export function allocatedBytes(path: string): number {
  return Number(run('stat', ['-c', '%b', path]).trim()) * 512;
}

interface Described {
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: string;
  target?: string;
  sha256?: string;
}

async function describeTree(disk: Disk, volume: string): Promise<Map<string, Described>> {
  const out = new Map<string, Described>();
  const root = await disk.stat(`/${volume}`);
  for await (const e of walk(disk, root)) out.set(e.path, await describe(disk, e));
  return out;
}

const READ_BUFFER = Buffer.alloc(1024 * 1024);

async function describe(disk: Disk, e: Entry): Promise<Described> {
  const d: Described = { type: e.stat.type, size: e.stat.size, mode: e.stat.mode, uid: e.stat.uid, gid: e.stat.gid, mtimeNs: String(e.stat.mtimeNs) };
  if (e.stat.type === 'symlink') d.target = await disk.readlink(e);
  if (e.stat.type === 'file') {
    const h = createHash('sha256');
    const buf = READ_BUFFER;
    for (let pos = 0; pos < e.stat.size; ) {
      const n = await disk.read(e, buf, 0, buf.length, pos);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
    d.sha256 = h.digest('hex');
  }
  return d;
}

/**
 * The restored disk has the source's partition table (same volumes at the
 * same offsets, same types and names) and, on every volume with a readable
 * filesystem, the same tree: types, sizes, modes, owners, mtimes, symlink
 * targets and file contents, all read through our own parser. Returns the
 * number of entries compared.
 */
export async function expectSameDisk(sourcePath: string, restoredPath: string): Promise<number> {
  const source = await Disk.open(sourcePath);
  const restored = await Disk.open(restoredPath);
  try {
    expect(restored.table.table).toBe(source.table.table);
    expect(restored.volumes).toEqual(source.volumes);
    expect(restored.table.warnings).toEqual([]);
    let compared = 0;
    for (const v of source.volumes) {
      expect(restored.detectedType(v.name), v.name).toBe(source.detectedType(v.name));
      let canRead = true;
      try {
        await source.filesystem(v.name);
      } catch {
        canRead = false;
      }
      if (!canRead) continue;
      const a = await describeTree(source, v.name);
      const b = await describeTree(restored, v.name);
      expect([...b.keys()].sort(), `paths on ${v.name}`).toEqual([...a.keys()].sort());
      for (const [path, d] of a) expect(b.get(path), path).toEqual(d);
      compared += a.size;
    }
    return compared;
  } finally {
    await source.close();
    await restored.close();
  }
}

/** Attach `file` to a loop device for the duration of `fn`; always detached. */
export async function withLoop<T>(file: string, options: { partscan?: boolean; readOnly?: boolean; offset?: number; sizelimit?: number }, fn: (device: string) => Promise<T> | T): Promise<T> {
  const args = ['-f', '--show'];
  if (options.partscan) args.push('-P');
  if (options.readOnly) args.push('-r');
  if (options.offset !== undefined) args.push('-o', String(options.offset));
  if (options.sizelimit !== undefined) args.push('--sizelimit', String(options.sizelimit));
  const device = run('losetup', [...args, file]).trim();
  try {
    // Some kernels (this project's CI VM) cannot parse partition tables: add them from userspace.
    if (options.partscan) spawnSync('partx', ['--update', device]); // fails harmlessly when there is no table yet
    return await fn(device);
  } finally {
    spawnSync('losetup', ['-d', device]);
  }
}

/** Mount `device` read-only on a fresh directory for the duration of `fn`; always unmounted. */
export async function withMount<T>(device: string, dir: string, fn: (mountPoint: string) => Promise<T> | T, extraOptions = ''): Promise<T> {
  mkdirSync(dir, { recursive: true });
  run('mount', ['-o', `ro${extraOptions ? ',' + extraOptions : ''}`, device, dir]);
  try {
    return await fn(dir);
  } finally {
    spawnSync('umount', [dir]);
  }
}

/** Every file, directory and symlink under a kernel mount: relative path -> type, size, sha256 / target. */
export function kernelTree(root: string): Map<string, { type: string; size?: number; sha256?: string; target?: string }> {
  const out = new Map<string, { type: string; size?: number; sha256?: string; target?: string }>();
  const visit = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = lstatSync(p);
      const rel = '/' + relative(root, p);
      if (st.isDirectory()) {
        out.set(rel, { type: 'dir' });
        visit(p);
      } else if (st.isSymbolicLink()) out.set(rel, { type: 'symlink', target: readlinkSync(p) });
      else if (st.isFile()) out.set(rel, { type: 'file', size: st.size, sha256: sha256(readFileSync(p)) });
      else out.set(rel, { type: 'other' });
    }
  };
  visit(root);
  return out;
}

export function manifest(image: string): Manifest {
  return readManifest(image.replace(/\.img$/, '.manifest.json'));
}

/** The kernel's view of one volume equals the manifest's entries for it. */
export function expectKernelMatchesManifest(mountPoint: string, volume: string, entries: ManifestEntry[]): number {
  const seen = kernelTree(mountPoint);
  const mine = entries.filter((e) => e.path.startsWith(`/${volume}/`));
  for (const e of mine) {
    const rel = e.path.slice(volume.length + 1);
    const k = seen.get(rel);
    expect(k, e.path).toBeDefined();
    expect(k!.type, e.path).toBe(e.type);
    if (e.type === 'file') {
      expect(k!.size, e.path).toBe(e.size);
      if (e.sha256) expect(k!.sha256, e.path).toBe(e.sha256);
    }
    if (e.type === 'symlink') expect(k!.target, e.path).toBe(e.target);
  }
  return mine.length;
}

export const MiB = 1024 * 1024;

export interface JunkDisk {
  path: string;
  size: number;
  p1: { start: number; size: number };
  p2: { start: number; size: number };
  /** 4 KiB blocks of a deleted file on p1: free, but holding random bytes. */
  junkBlocks: { start: number; length: number }[];
}

/**
 * A GPT disk whose free space holds old data, as a real disk's does: a
 * random "boot loader" in the gap before p1, ext4 on p1 (the common test
 * tree, `extraMiB` of random data in /data.bin, and a deleted 8 MiB file
 * whose blocks still hold random bytes), an unformatted p2 full of random
 * bytes (restore copies it whole), and free space after p2.
 */
export function buildJunkDisk(dir: string, name: string, options: { p1MiB?: number; diskMiB?: number; extraMiB?: number } = {}): JunkDisk {
  const p1 = { start: 1 * MiB, size: (options.p1MiB ?? 24) * MiB };
  const p2 = { start: p1.start + p1.size, size: 2 * MiB };
  const size = (options.diskMiB ?? 40) * MiB;
  const tree = join(dir, `${name}-tree`);
  makeTree(tree);
  run('sh', ['-c', `head -c ${8 * MiB} /dev/urandom > ${join(tree, 'junk.bin')}`]);
  if (options.extraMiB) run('sh', ['-c', `head -c ${options.extraMiB * MiB} /dev/urandom > ${join(tree, 'data.bin')}`]);
  const fs = join(dir, `${name}-p1.ext4`);
  run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', tree, fs, `${p1.size / 1024}K`]);
  // Where junk.bin's blocks are, then delete it: its data stays in the free blocks.
  const blocks = run('debugfs', ['-R', 'blocks /junk.bin', fs]).trim().split(/\s+/).map(Number);
  run('debugfs', ['-w', '-R', 'rm /junk.bin', fs]);
  const path = join(dir, name);
  run('truncate', ['-s', String(size), path]);
  run('sgdisk', ['-o', '-n', `1:${p1.start / 512}:+${p1.size / 1024}K`, '-t', '1:8300', '-n', `2:${p2.start / 512}:+${p2.size / 1024}K`, '-t', '2:8300', path]);
  run('dd', [`if=${fs}`, `of=${path}`, 'bs=1M', `seek=${p1.start / MiB}`, 'conv=notrunc,sparse', 'status=none']);
  run('sh', ['-c', `head -c ${p2.size} /dev/urandom | dd of=${path} bs=1M seek=${p2.start / MiB} conv=notrunc status=none`]);
  run('sh', ['-c', `head -c ${p1.start - 34 * 512} /dev/urandom | dd of=${path} bs=512 seek=34 conv=notrunc status=none`]);
  rmSync(tree, { recursive: true, force: true });
  rmSync(fs, { force: true });
  return { path, size, p1, p2, junkBlocks: blocks.map((b) => ({ start: p1.start + b * 4096, length: 4096 })) };
}
