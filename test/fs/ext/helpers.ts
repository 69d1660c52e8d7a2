/**
 * Shared helpers for the ext tests: generate a source tree, build an image of
 * it with the real mkfs (-d), open it with our driver, and compare what the
 * driver sees with what was put in. debugfs (e2fsprogs) is the second opinion
 * for block layout.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  linkSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  fstatSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
  closeSync,
  ftruncateSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extDriver, type ExtFileSystem, type ExtNode } from '../../../parsers/fs/ext/index.js';
import { RawFileSource } from '../../../parsers/source/raw.js';
import type { ByteSource } from '../../../parsers/source/types.js';

const ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? '/usr/bin:/bin'}` };

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { env: ENV, encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024 });
}

export function tempDir(prefix = 'loopless-ext-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Fixed timestamps (whole seconds: mke2fs -d does not copy nanoseconds). */
export const T2001 = 981173106; // 2001-02-03 04:05:06 UTC
export const T1985 = 481000000;

export interface TreeOptions {
  /** Add a directory with this many entries (htree once e2fsck -D indexes it). */
  bigDir?: number;
  /** Size of the one large file, bytes. */
  largeFile?: number;
  /** Leave out device nodes and sockets. */
  noSpecial?: boolean;
}

function writeSparse(path: string, size: number, chunks: [number, Buffer][]): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const [at, data] of chunks) writeSync(fd, data, 0, data.length, at);
  } finally {
    closeSync(fd);
  }
}

/**
 * The standard tree: sizes around every boundary that matters (inline data,
 * block sizes, direct/indirect), a sparse file, fast/slow/dangling symlinks,
 * hard links, special files, Unicode and 255-byte names, deep nesting, empty
 * file and directory, owners beyond 16 bits and unusual modes.
 */
export function buildTree(root: string, opts: TreeOptions = {}): void {
  mkdirSync(root, { recursive: true });
  const sizes = [0, 1, 59, 60, 61, 150, 1023, 1024, 1025, 4095, 4096, 4097, 12 * 1024 + 1, 70_000, 300_000];
  mkdirSync(join(root, 'sizes'));
  for (const s of sizes) writeFileSync(join(root, 'sizes', `f${s}`), randomBytes(s));
  writeFileSync(join(root, 'large.bin'), randomBytes(opts.largeFile ?? 3 * 1024 * 1024 + 17));
  writeSparse(join(root, 'sparse.bin'), 8 * 1024 * 1024 + 100, [
    [0, randomBytes(1000)],
    [3 * 1024 * 1024 + 5, randomBytes(9000)],
    [8 * 1024 * 1024, randomBytes(100)],
  ]);
  writeSparse(join(root, 'all-hole.bin'), 2 * 1024 * 1024, []);

  mkdirSync(join(root, 'links'));
  symlinkSync('../sizes/f60', join(root, 'links', 'fast'));
  symlinkSync(`${'long-target-component/'.repeat(8)}end`, join(root, 'links', 'slow'));
  symlinkSync('x'.repeat(59), join(root, 'links', 'fast59'));
  symlinkSync('y'.repeat(60), join(root, 'links', 'slow60'));
  symlinkSync('/nowhere/at/all', join(root, 'links', 'dangling'));
  symlinkSync('../sizes', join(root, 'links', 'to-dir'));
  writeFileSync(join(root, 'links', 'original'), 'shared by three names\n');
  linkSync(join(root, 'links', 'original'), join(root, 'links', 'hard1'));
  linkSync(join(root, 'links', 'original'), join(root, 'hard2'));

  mkdirSync(join(root, 'special'));
  execFileSync('mkfifo', [join(root, 'special', 'fifo')]);
  if (!opts.noSpecial) {
    execFileSync('mknod', [join(root, 'special', 'null'), 'c', '1', '3']);
    execFileSync('mknod', [join(root, 'special', 'sda1'), 'b', '8', '1']);
    execFileSync('mknod', [join(root, 'special', 'bigdev'), 'c', '300', '70000']);
    // A bound Unix socket leaves its node behind; Node has no way to make one without listening.
    execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', join(root, 'special', 'socket')]);
  }

  mkdirSync(join(root, 'names'));
  writeFileSync(join(root, 'names', 'héllo wörld ✓ 日本語.txt'), 'unicode\n');
  writeFileSync(join(root, 'names', '🦊 emoji'), 'fox\n');
  writeFileSync(join(root, 'names', 'a'.repeat(255)), 'ascii 255\n');
  writeFileSync(join(root, 'names', '日'.repeat(85)), 'utf8 255 bytes\n');
  writeFileSync(join(root, 'names', ' leading space'), '');
  mkdirSync(join(root, 'empty-dir'));
  writeFileSync(join(root, 'empty-file'), '');

  let deep = join(root, 'deep');
  for (let i = 0; i < 12; i++) {
    deep = join(deep, `level${i}`);
    mkdirSync(deep, { recursive: true });
  }
  writeFileSync(join(deep, 'bottom.txt'), 'deep down\n');

  mkdirSync(join(root, 'owners'));
  const owned = join(root, 'owners', 'big-ids');
  writeFileSync(owned, 'owned\n');
  lchownSync(owned, 100000, 200000);
  const small = join(root, 'owners', 'small-ids');
  writeFileSync(small, 'owned\n');
  lchownSync(small, 1234, 5678);
  const setuid = join(root, 'owners', 'setuid');
  writeFileSync(setuid, '#!/bin/sh\n');
  chmodSync(setuid, 0o4755);
  const none = join(root, 'owners', 'no-perms');
  writeFileSync(none, 'secret\n');
  chmodSync(none, 0o000);
  const sticky = join(root, 'owners', 'sticky');
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  lchownSync(join(root, 'links', 'dangling'), 4242, 4343);

  if (opts.bigDir) {
    const big = join(root, 'big');
    mkdirSync(big);
    for (let i = 0; i < opts.bigDir; i++) writeFileSync(join(big, `entry-${i.toString().padStart(5, '0')}-${'n'.repeat(i % 40)}`), `${i}\n`);
  }

  // Timestamps last, children before parents, so creating entries does not bump them.
  setTimes(root);
}

function setTimes(dir: string): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) setTimes(p);
    if (st.isSymbolicLink()) lutimesSync(p, T1985, T2001 - 3600);
    else utimesSync(p, T1985, T2001);
  }
  utimesSync(dir, T1985, T2001);
}

export interface Entry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtimeNs: bigint;
  sha256?: string;
  target?: string;
  otherKind?: string;
  rdev?: number;
  allocatedSize?: number;
  ino?: number;
}

/** What the source tree holds, as our driver should report it (times truncated to seconds, as mke2fs -d stores them). */
export function describeSourceTree(root: string, wholeSeconds = true): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const visit = (dir: string, rel: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const r = `${rel}/${name}`;
      const st = lstatSync(p, { bigint: true });
      const mtimeNs = wholeSeconds ? (st.mtimeNs / 1_000_000_000n) * 1_000_000_000n : st.mtimeNs;
      const base = { mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), nlink: Number(st.nlink), mtimeNs };
      if (st.isDirectory()) {
        out.set(r, { type: 'dir', size: -1, ...base });
        visit(p, r);
      } else if (st.isSymbolicLink()) {
        const target = readlinkSync(p, 'utf8');
        out.set(r, { type: 'symlink', size: Buffer.byteLength(target), target, ...base });
      } else if (st.isFile()) {
        out.set(r, { type: 'file', size: Number(st.size), sha256: sha256(readFileSync(p)), ...base });
      } else {
        const kind = st.isFIFO() ? 'fifo' : st.isSocket() ? 'socket' : st.isCharacterDevice() ? 'char device' : 'block device';
        const e: Entry = { type: 'other', size: 0, otherKind: kind, ...base };
        if (st.isCharacterDevice() || st.isBlockDevice()) {
          const rdev = Number(st.rdev);
          const major = ((rdev >>> 8) & 0xfff) | Number((st.rdev >> 32n) & ~0xfffn);
          const minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
          e.otherKind = `${kind} ${major},${minor}`;
          e.rdev = rdev;
        }
        out.set(r, e);
      }
    }
  };
  visit(root, '');
  return out;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function readWhole(fs: ExtFileSystem, node: ExtNode, chunk = 1024 * 1024): Promise<Buffer> {
  const size = node.stat.size;
  const out = Buffer.alloc(size);
  let pos = 0;
  while (pos < size) {
    const n = await fs.read(node, out, pos, Math.min(chunk, size - pos), pos);
    if (n <= 0) throw new Error(`short read at ${pos} of ${size}`);
    pos += n;
  }
  return out;
}

/** Everything our driver reports, keyed like describeSourceTree. */
export async function describeImageTree(fs: ExtFileSystem, skipRootNames: string[] = ['lost+found']): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const visit = async (dir: ExtNode, rel: string, depth: number) => {
    if (depth > 64) throw new Error(`too deep at ${rel}`);
    for (const { name, node } of await fs.readdir(dir)) {
      if (rel === '' && skipRootNames.includes(name)) continue;
      const r = `${rel}/${name}`;
      const s = node.stat;
      const e: Entry = { type: s.type, size: s.size, mode: s.mode, uid: s.uid, gid: s.gid, nlink: s.nlink, mtimeNs: s.mtimeNs };
      e.allocatedSize = s.allocatedSize;
      e.ino = s.ino;
      if (s.type === 'file') e.sha256 = sha256(await readWhole(fs, node));
      if (s.type === 'symlink') e.target = await fs.readlink(node);
      if (s.type === 'other') {
        e.otherKind = s.otherKind;
        if (s.rdev !== undefined) e.rdev = s.rdev;
      }
      out.set(r, e);
      if (s.type === 'dir') await visit(node, r, depth + 1);
    }
  };
  await visit(await fs.root(), '', 0);
  return out;
}

/** Differences between the source tree and the image as our driver reads it; empty when identical. */
export function compareTrees(expected: Map<string, Entry>, actual: Map<string, Entry>): string[] {
  const problems: string[] = [];
  for (const [path, want] of expected) {
    const got = actual.get(path);
    if (!got) {
      problems.push(`${path}: missing`);
      continue;
    }
    const fields: (keyof Entry)[] = ['type', 'mode', 'uid', 'gid', 'nlink', 'mtimeNs', 'sha256', 'target', 'otherKind', 'rdev'];
    if (want.type !== 'dir') fields.push('size');
    for (const f of fields) {
      if (want[f] !== undefined && want[f] !== got[f]) problems.push(`${path}: ${f} ${String(got[f])} != expected ${String(want[f])}`);
    }
  }
  for (const path of actual.keys()) if (!expected.has(path)) problems.push(`${path}: unexpected`);
  return problems;
}

export interface BuiltImage {
  dir: string;
  tree: string;
  image: string;
}

/** mkfs.<kind> -d tree with extra args; the image file is created at `sizeMiB`. */
export function makeImage(kind: 'ext2' | 'ext3' | 'ext4', args: string[], sizeMiB: number, tree: string, dir: string, name = 'fs.img'): string {
  const image = join(dir, name);
  run(`mkfs.${kind}`, ['-q', '-F', '-d', tree, ...args, image, `${sizeMiB}M`]);
  return image;
}

export async function openExt(image: string): Promise<{ fs: ExtFileSystem; source: ByteSource }> {
  const source = await RawFileSource.open(image);
  const fs = (await extDriver.open(source)) as ExtFileSystem;
  return { fs, source };
}

export function probeImage(image: string): string | null {
  const fd = openSync(image, 'r');
  try {
    const head = Buffer.alloc(72 * 1024);
    const n = readSync(fd, head, 0, head.length, 0);
    return extDriver.probe(head.subarray(0, n), fstatSync(fd).size);
  } finally {
    closeSync(fd);
  }
}

/** Output of each debugfs command, run in one debugfs process. */
export function debugfsSections(image: string, commands: string[]): string[] {
  const text = run('debugfs', ['-f', '-', image], commands.map((c) => `${c}\n`).join(''));
  // With -f, debugfs echoes each command as "debugfs: <command>" before its output.
  return text.split(/^debugfs: /m).slice(1).map((section) => section.slice(section.indexOf('\n') + 1));
}

/** Physical blocks (data and mapping metadata) of each inode, per debugfs, in one debugfs run. */
export function debugfsBlocks(image: string, inos: number[]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  if (inos.length === 0) return out;
  const script = inos.map((ino) => `blocks <${ino}>\n`).join('');
  // With -f, debugfs echoes each command as "debugfs: blocks <N>" before its output.
  const text = run('debugfs', ['-f', '-', image], script);
  for (const section of text.split(/^debugfs: /m).slice(1)) {
    const m = /^blocks <(\d+)>\n([\s\S]*)$/.exec(section);
    if (!m) continue;
    out.set(Number(m[1]), m[2].split(/\s+/).filter((w) => /^\d+$/.test(w)).map(Number));
  }
  return out;
}

export function copyToTemp(image: string, dir: string, name: string): string {
  const dest = join(dir, name);
  copyFileSync(image, dest);
  return dest;
}

/** Run a debugfs command (write mode when `write`) against an image copy. */
export function debugfs(image: string, command: string, write = false): string {
  return run('debugfs', [...(write ? ['-w'] : []), '-R', command, image]);
}

/** The inode number of a path, per debugfs. */
export function debugfsInode(image: string, path: string): number {
  const m = /^Inode: (\d+)/m.exec(run('debugfs', ['-R', `stat "${path}"`, image]));
  if (!m) throw new Error(`debugfs found no inode for ${path}`);
  return Number(m[1]);
}

/** Byte offset of an inode in the volume, per debugfs imap. */
export function inodeOffset(image: string, ino: number, blockSize: number): number {
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(run('debugfs', ['-R', `imap <${ino}>`, image]));
  if (!m) throw new Error(`debugfs imap found no inode ${ino}`);
  return Number(m[1]) * blockSize + parseInt(m[2], 16);
}

/** Overwrite bytes of an image copy in place. */
export function patch(image: string, offset: number, bytes: Buffer | number[]): void {
  const fd = openSync(image, 'r+');
  try {
    const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
    writeSync(fd, b, 0, b.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Metadata blocks of an inode's mapping (indirect blocks, extent tree nodes), per debugfs stat. */
export function mappingMetadataBlocks(image: string, ino: number): number[] {
  const text = run('debugfs', ['-R', `stat <${ino}>`, image]);
  return [...text.matchAll(/\((?:IND|DIND|TIND|ETB\d+)\):(\d+)/g)].map((m) => Number(m[1]));
}
