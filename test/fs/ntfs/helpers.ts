/**
 * Shared helpers for the NTFS tests: build images with the real tools
 * (mkntfs, then populate through an ntfs-3g FUSE mount), record what was put
 * in, walk what our driver sees, and ask the Sleuth Kit for a second opinion.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NtfsFileSystem, type NtfsNode } from '../../../parsers/fs/ntfs/index.js';
import { RawFileSource } from '../../../parsers/source/raw.js';
import type { ByteSource } from '../../../parsers/source/types.js';

const ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? '/usr/bin:/bin'}` };

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024 });
}

export function runBuffer(cmd: string, args: string[]): Buffer {
  return execFileSync(cmd, args, { env: ENV, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1024 * 1024 * 1024 });
}

export function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { env: ENV, stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function tempDir(prefix = 'loopless-ntfs-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export interface ImageOptions {
  sizeMiB: number;
  sectorSize?: number;
  clusterSize?: number;
  label?: string;
  /** ntfs-3g mount options used while populating. */
  mountOptions?: string[];
}

/**
 * mkntfs a fresh image file, mount it with ntfs-3g, let `populate` fill it,
 * and always unmount (even when populating fails).
 */
export function buildImage(path: string, opts: ImageOptions, populate: (mnt: string) => void): void {
  run('truncate', ['-s', `${opts.sizeMiB}M`, path]);
  const args = ['-F', '-Q', '-q', '-s', String(opts.sectorSize ?? 512), '-c', String(opts.clusterSize ?? 4096)];
  if (opts.label) args.push('-L', opts.label);
  run('mkntfs', [...args, path]);
  const mnt = `${path}.mnt`;
  mkdirSync(mnt, { recursive: true });
  const options = ['-o', ['big_writes', ...(opts.mountOptions ?? [])].join(',')];
  run('ntfs-3g', [...options, path, mnt]);
  try {
    populate(mnt);
  } finally {
    unmount(mnt);
    rmSync(mnt, { recursive: true, force: true });
  }
}

function unmount(mnt: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      run('fusermount', ['-u', mnt]);
      return;
    } catch (e) {
      if (attempt >= 20) throw e;
      execFileSync('sleep', ['0.2']);
    }
  }
}

/** Set a file's NTFS attribute flags through ntfs-3g (e.g. 0x800 compressed, 0x1 read-only). */
export function setNtfsAttributes(path: string, flags: number): void {
  run('setfattr', ['-n', 'system.ntfs_attrib_be', '-v', `0x${flags.toString(16).padStart(8, '0')}`, path]);
}

/** Write a raw reparse point onto an (empty) file or directory through ntfs-3g. */
export function setReparse(path: string, data: Buffer): void {
  run('setfattr', ['-n', 'system.ntfs_reparse_data', '-v', `0x${data.toString('hex')}`, path]);
}

/** Set the mtime with 100 ns precision (ntfs-3g keeps NTFS's full resolution). */
export function touchMtime(path: string, iso: string): void {
  run('touch', ['-m', '-h', '-d', iso, path]);
}

/** A mount point (junction) or symlink reparse buffer, as Windows writes them. */
export function linkReparse(kind: 'junction' | 'symlink', substitute: string, print: string, relative = false): Buffer {
  const sub = Buffer.from(substitute, 'utf16le');
  const prt = Buffer.from(print, 'utf16le');
  const header = Buffer.alloc(kind === 'symlink' ? 12 : 8);
  header.writeUInt16LE(0, 0);
  header.writeUInt16LE(sub.length, 2);
  header.writeUInt16LE(sub.length + 2, 4);
  header.writeUInt16LE(prt.length, 6);
  if (kind === 'symlink') header.writeUInt32LE(relative ? 1 : 0, 8);
  return reparseBuffer(kind === 'symlink' ? 0xa000000c : 0xa0000003, Buffer.concat([header, sub, Buffer.alloc(2), prt, Buffer.alloc(2)]));
}

export function reparseBuffer(tag: number, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(tag, 0);
  head.writeUInt16LE(data.length, 4);
  return Buffer.concat([head, data]);
}

export async function openNtfs(path: string): Promise<{ fs: NtfsFileSystem; source: ByteSource; close: () => Promise<void> }> {
  const source = await RawFileSource.open(path);
  try {
    const fs = await NtfsFileSystem.open(source);
    return { fs, source, close: async () => (await fs.close(), await source.close()) };
  } catch (e) {
    await source.close();
    throw e;
  }
}

/** Read a whole file (or stream) through the driver in `chunk`-byte requests. */
export async function readAll(fs: NtfsFileSystem, node: NtfsNode, chunk = 1024 * 1024): Promise<Buffer> {
  const out = Buffer.alloc(node.stat.size);
  for (let pos = 0; pos < out.length; ) {
    const n = await fs.read(node, out, pos, Math.min(chunk, out.length - pos), pos);
    if (n <= 0) throw new Error(`short read at ${pos} of ${out.length}`);
    pos += n;
  }
  return out;
}

export interface Seen {
  node: NtfsNode;
  sha256?: string;
  target?: string;
}

/** Every path below the root as our driver sees it (content hashed, links resolved). */
export async function walk(fs: NtfsFileSystem, options: { all?: boolean; hash?: boolean } = {}): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>();
  const visit = async (dir: NtfsNode, path: string, depth: number) => {
    if (depth > 100) throw new Error('too deep');
    for (const { name, node } of await fs.readdir(dir, { all: options.all })) {
      const p = `${path}/${name}`;
      const seen: Seen = { node };
      if (node.stat.type === 'file' && options.hash !== false) seen.sha256 = sha256(await readAll(fs, node));
      if (node.stat.type === 'symlink') seen.target = await fs.readlink(node);
      out.set(p, seen);
      if (node.stat.type === 'dir') await visit(node, p, depth + 1);
    }
  };
  await visit(await fs.root(), '', 0);
  return out;
}

export async function lookupPath(fs: NtfsFileSystem, path: string): Promise<NtfsNode | null> {
  let node: NtfsNode | null = await fs.root();
  for (const part of path.split('/').filter(Boolean)) {
    node = await fs.lookup(node, part);
    if (!node) return null;
  }
  return node;
}

export interface FlsEntry {
  /** "r", "d", "-" ... from fls's type column (directory-entry type). */
  type: string;
  inode: number;
  /** Attribute type-id ("128-4") when fls names a specific stream. */
  attr: string | null;
  path: string;
  deleted: boolean;
}

/** `fls -r -p` of a volume (optionally at a sector offset in an image). */
export function fls(image: string, offsetSectors?: number): FlsEntry[] {
  const args = ['-r', '-p'];
  if (offsetSectors !== undefined) args.push('-o', String(offsetSectors));
  const out: FlsEntry[] = [];
  for (const line of run('fls', [...args, image]).split('\n')) {
    const m = /^(\S)\/(\S) (\* )?(\d+)(?:-(\d+-\d+))?(?:\(realloc\))?:\t(.*)$/.exec(line);
    if (!m) continue;
    out.push({ type: m[1], inode: Number(m[4]), attr: m[5] ?? null, path: `/${m[6]}`, deleted: Boolean(m[3]) });
  }
  return out;
}

/** `icat` of an inode (or inode-type-id stream) as bytes. */
export function icat(image: string, address: string, offsetSectors?: number): Buffer {
  const args = offsetSectors !== undefined ? ['-o', String(offsetSectors)] : [];
  return runBuffer('icat', [...args, image, address]);
}

/** `istat` text of an MFT record. */
export function istat(image: string, inode: number): string {
  return run('istat', [image, String(inode)]);
}

/** Deterministic pseudo-random bytes (incompressible, reproducible). */
export { seededBytes as noise } from '../../support/rng.js';
