/**
 * The ext features that need a dedicated image: triple-indirect blocks,
 * htree directories, deep extent trees, unwritten extents and nanosecond /
 * post-2038 timestamps written by the kernel, large contiguous reads, and the
 * things we refuse (encrypted inodes, unreadable incompat features).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync, ftruncateSync, lstatSync, chownSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LooplessError, UnsupportedError } from '../../../parsers/errors.js';
import { ExtFileSystem } from '../../../parsers/fs/ext/index.js';
import type { ByteSource } from '../../../parsers/source/types.js';
import { RawFileSource } from '../../../parsers/source/raw.js';
import {
  copyToTemp,
  debugfs,
  debugfsInode,
  makeImage,
  openExt,
  patch,
  probeImage,
  readWhole,
  removeDir,
  run,
  sha256,
  tempDir,
} from './helpers.js';

let work: string;
beforeAll(() => {
  work = tempDir();
});
afterAll(() => removeDir(work));

async function withFs<T>(image: string, body: (fs: ExtFileSystem) => Promise<T>): Promise<T> {
  const { fs, source } = await openExt(image);
  try {
    return await body(fs);
  } finally {
    await fs.close();
    await source.close();
  }
}

async function resolve(fs: ExtFileSystem, path: string) {
  let node = await fs.root();
  for (const part of path.split('/').filter(Boolean)) {
    const next = await fs.lookup(node, part);
    if (!next) throw new Error(`${path}: ${part} not found`);
    node = next;
  }
  return node;
}

function sparseFile(path: string, size: number, chunks: [number, Buffer][]): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  for (const [at, data] of chunks) writeSync(fd, data, 0, data.length, at);
  closeSync(fd);
}

function pattern(n: number, seed: number): Buffer {
  // Deterministic, non-repeating within a block, cheap to make: no two blocks of a file look alike.
  const b = Buffer.alloc(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) b.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, i);
  for (; i < n; i++) b[i] = (i ^ seed) & 0xff;
  return b;
}

describe('block maps on 1 KiB blocks', () => {
  it('reads a sparse file whose data needs triple-indirect blocks', async () => {
    const tree = join(work, 'tind-tree');
    mkdirSync(tree);
    // 12 direct + 256 single + 65536 double blocks end at 65804 KiB; data past that needs the triple-indirect block.
    const path = join(tree, 'tind.bin');
    sparseFile(path, 72 * 1024 * 1024, [
      [0, pattern(5000, 1)],
      [300 * 1024, pattern(3000, 2)],
      [65804 * 1024 - 700, pattern(1400, 3)],
      [70 * 1024 * 1024 + 3, pattern(10000, 4)],
    ]);
    const image = makeImage('ext2', ['-b', '1024'], 16, tree, work, 'tind.img');
    const stat = debugfs(image, 'stat /tind.bin');
    expect(stat).toMatch(/\(TIND\):\d+/);
    const want = readFileSync(path);
    await withFs(image, async (fs) => {
      const node = await resolve(fs, '/tind.bin');
      expect(node.stat.size).toBe(want.length);
      expect(node.stat.allocatedSize).toBeLessThan(100 * 1024);
      expect(sha256(await readWhole(fs, node, 4 * 1024 * 1024))).toBe(sha256(want));
      // A read straddling the double/triple indirect boundary.
      const at = 65804 * 1024 - 1000;
      const part = Buffer.alloc(2000);
      expect(await fs.read(node, part, 0, part.length, at)).toBe(2000);
      expect(part.equals(want.subarray(at, at + 2000))).toBe(true);
      // Past the end: short, then nothing.
      expect(await fs.read(node, part, 0, part.length, want.length - 10)).toBe(10);
      expect(await fs.read(node, part, 0, part.length, want.length)).toBe(0);
    });
  });
});

describe('sizes past 4 GiB', () => {
  it('reads a sparse 5 GiB file (i_size_high) with data beyond 4 GiB', async () => {
    const tree = join(work, 'big-sparse');
    mkdirSync(tree);
    const path = join(tree, 'five-gib.bin');
    const size = 5 * 1024 ** 3 + 123;
    const tail = pattern(70_000, 7);
    const at = 4.5 * 1024 ** 3 + 11;
    sparseFile(path, size, [[at, tail]]);
    const image = makeImage('ext4', ['-b', '4096'], 16, tree, work, 'five-gib.img');
    await withFs(image, async (fs) => {
      const node = await resolve(fs, '/five-gib.bin');
      expect(node.stat.size).toBe(size);
      expect(node.stat.allocatedSize).toBeLessThanOrEqual(80 * 1024);
      const buf = Buffer.alloc(tail.length + 200);
      expect(await fs.read(node, buf, 0, buf.length, at - 100)).toBe(buf.length);
      expect(buf.subarray(0, 100).every((b) => b === 0)).toBe(true);
      expect(buf.subarray(100, 100 + tail.length).equals(tail)).toBe(true);
      expect(await fs.read(node, buf, 0, buf.length, size - 3)).toBe(3);
    });
  });
});

describe('htree directories', () => {
  const names: string[] = [];
  let tree: string;
  beforeAll(() => {
    tree = join(work, 'htree-tree');
    mkdirSync(join(tree, 'big'), { recursive: true });
    for (let i = 0; i < 3500; i++) {
      const name = `file-${i}-${'x'.repeat(i % 50)}`;
      names.push(name);
      // Fast symlinks take no data blocks, which keeps the 64 KiB-block image small.
      symlinkSync(`target-${i}`, join(tree, 'big', name));
    }
  });

  it.each([
    ['ext4 4 KiB, metadata_csum', 'ext4' as const, ['-b', '4096', '-O', 'metadata_csum,64bit']],
    ['ext3 1 KiB', 'ext3' as const, ['-b', '1024']],
    ['ext4 64 KiB blocks', 'ext4' as const, ['-b', '65536', '-N', '8192']],
  ])('lists and looks up every entry of a 3500-entry indexed directory (%s)', async (label, kind, args) => {
    const image = makeImage(kind, args, args.includes('65536') ? 160 : 32, tree, work, `htree-${label.replace(/\W+/g, '-')}.img`);
    // e2fsck -D rebuilds directories as htrees; it exits 1 when it changed something.
    try {
      run('e2fsck', ['-fyD', image]);
    } catch (e) {
      if ((e as { status?: number }).status !== 1) throw e;
    }
    expect(debugfs(image, 'stat /big')).toMatch(/Flags: 0x[0-9a-f]*1[0-9a-f]{3}\b/);
    expect(debugfs(image, 'htree_dump /big')).toMatch(/Root node dump/);
    await withFs(image, async (fs) => {
      const dir = await resolve(fs, '/big');
      const list = await fs.readdir(dir);
      expect(list.map((e) => e.name).sort()).toEqual([...names].sort());
      for (const i of [0, 1, 777, 2048, 3499]) {
        const hit = await fs.lookup(dir, names[i]);
        expect(hit?.stat.type).toBe('symlink');
        expect(await fs.readlink(hit!)).toBe(`target-${i}`);
      }
      expect(await fs.lookup(dir, 'not-there')).toBeNull();
      expect(await fs.lookup(dir, '.')).toBeNull();
    });
  });
});

describe('deep extent trees', () => {
  it('reads a file of 2000 extents (a depth-2 tree on 1 KiB blocks)', async () => {
    const tree = join(work, 'deep-extents');
    mkdirSync(tree);
    const path = join(tree, 'fragmented.bin');
    const chunks: [number, Buffer][] = [];
    for (let i = 0; i < 2000; i++) chunks.push([i * 2048, pattern(1024, i)]);
    sparseFile(path, 2000 * 2048, chunks);
    const image = makeImage('ext4', ['-b', '1024', '-O', '^has_journal'], 16, tree, work, 'deep-extents.img');
    const dump = debugfs(image, 'ex /fragmented.bin');
    expect(dump).toMatch(/^\s*2\/\s*2\s/m);
    const want = readFileSync(path);
    await withFs(image, async (fs) => {
      const node = await resolve(fs, '/fragmented.bin');
      expect(sha256(await readWhole(fs, node, 64 * 1024))).toBe(sha256(want));
      // Random reads land in the right leaves, backwards too.
      for (const at of [4_000_000, 17, 2_048_000 - 5, 1_000_001, 3]) {
        const buf = Buffer.alloc(3000);
        const n = await fs.read(node, buf, 0, buf.length, at);
        expect(buf.subarray(0, n).equals(want.subarray(at, at + n))).toBe(true);
      }
    });
  });
});

/** A source that counts reads and their sizes. */
class CountingSource implements ByteSource {
  reads: number[] = [];
  constructor(private readonly inner: ByteSource) {}
  get size() {
    return this.inner.size;
  }
  get description() {
    return this.inner.description;
  }
  read(buffer: Uint8Array, offset: number, length: number, position: number) {
    this.reads.push(length);
    return this.inner.read(buffer, offset, length, position);
  }
  close() {
    return this.inner.close();
  }
}

describe('large contiguous files', () => {
  it('turns 4 MiB reads of a contiguous file into 4 MiB source reads', async () => {
    const tree = join(work, 'contig');
    mkdirSync(tree);
    const data = pattern(48 * 1024 * 1024, 9);
    writeFileSync(join(tree, 'big.bin'), data);
    const image = makeImage('ext4', ['-b', '4096'], 80, tree, work, 'contig.img');
    const raw = await RawFileSource.open(image);
    const counting = new CountingSource(raw);
    const fs = await ExtFileSystem.open(counting);
    try {
      const node = await resolve(fs, '/big.bin');
      counting.reads = [];
      const chunk = Buffer.alloc(4 * 1024 * 1024);
      let pos = 0;
      const hash = (await import('node:crypto')).createHash('sha256');
      while (pos < node.stat.size) {
        const n = await fs.read(node, chunk, 0, chunk.length, pos);
        hash.update(chunk.subarray(0, n));
        pos += n;
      }
      expect(hash.digest('hex')).toBe(sha256(data));
      const big = counting.reads.filter((n) => n >= 1024 * 1024);
      // 12 requests; an extent boundary (128 MiB max per extent, group boundaries) may split one or two.
      expect(big.length).toBeGreaterThanOrEqual(12);
      expect(big.length).toBeLessThanOrEqual(16);
      expect(counting.reads.length).toBeLessThanOrEqual(24);
    } finally {
      await fs.close();
      await raw.close();
    }
  });
});

describe('written by the kernel', () => {
  let image: string;
  let mounted = false;
  const expected = new Map<string, { mtimeNs: bigint; size: number; sha: string; uid: number; gid: number }>();

  beforeAll(() => {
    image = join(work, 'kernel.img');
    run('mkfs.ext4', ['-q', '-F', '-b', '4096', image, '32M']);
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    try {
      run('mount', ['-o', 'loop', image, mnt]);
      mounted = true;
    } catch {
      return; // not root or no loop devices: the tests below are skipped
    }
    try {
      // Unwritten extents: preallocate, then write only the middle.
      const pre = join(mnt, 'prealloc.bin');
      execFileSync('fallocate', ['-l', String(8 * 1024 * 1024), pre]);
      const fd = openSync(pre, 'r+');
      writeSync(fd, pattern(100_000, 5), 0, 100_000, 3 * 1024 * 1024 + 7);
      closeSync(fd);
      // Preallocated past the end of file (KEEP_SIZE): invisible, size unchanged.
      writeFileSync(join(mnt, 'keep.bin'), 'abc');
      execFileSync('fallocate', ['-n', '-o', '0', '-l', String(1024 * 1024), join(mnt, 'keep.bin')]);
      writeFileSync(join(mnt, 'times-2100'), 'future\n');
      execFileSync('touch', ['-d', '2100-05-06 07:08:09.987654321', join(mnt, 'times-2100')]);
      writeFileSync(join(mnt, 'times-1901'), 'past\n');
      execFileSync('touch', ['-d', '1901-12-20 00:00:00.5', join(mnt, 'times-1901')]);
      writeFileSync(join(mnt, 'times-now'), 'now\n');
      execFileSync('touch', ['-m', '-d', '2024-02-29 12:34:56.000000001', join(mnt, 'times-now')]);
      writeFileSync(join(mnt, 'owner'), 'o\n');
      chownSync(join(mnt, 'owner'), 4_000_000_000, 3_000_000_123);
      run('sync', []);
      for (const name of ['prealloc.bin', 'keep.bin', 'times-2100', 'times-1901', 'times-now', 'owner']) {
        const p = join(mnt, name);
        const st = lstatSync(p, { bigint: true });
        expected.set(name, {
          mtimeNs: st.mtimeNs,
          size: Number(st.size),
          sha: sha256(readFileSync(p)),
          uid: Number(st.uid),
          gid: Number(st.gid),
        });
      }
    } finally {
      run('umount', [mnt]);
    }
  });

  it('reads unwritten extents as zeros', async (ctx) => {
    if (!mounted) ctx.skip();
    // Unwritten extents may hold anything on disk: fill them with garbage so reading them raw would show.
    const extents = debugfs(image, 'ex /prealloc.bin') + debugfs(image, 'ex /keep.bin');
    const uninit = [...extents.matchAll(/(\d+) - +(\d+) +\d+ Uninit/g)];
    expect(uninit.length).toBeGreaterThanOrEqual(2);
    for (const m of uninit) {
      const first = Number(m[1]);
      const blocks = Number(m[2]) - first + 1;
      patch(image, first * 4096, Buffer.alloc(blocks * 4096, 0xaa));
    }
    await withFs(image, async (fs) => {
      for (const name of ['prealloc.bin', 'keep.bin']) {
        const node = await resolve(fs, `/${name}`);
        const want = expected.get(name)!;
        expect(node.stat.size).toBe(want.size);
        expect(sha256(await readWhole(fs, node))).toBe(want.sha);
      }
    });
  });

  it('keeps nanoseconds, post-2038 and pre-1970 times, creation time and 32-bit owners', async (ctx) => {
    if (!mounted) ctx.skip();
    await withFs(image, async (fs) => {
      for (const name of ['times-2100', 'times-1901', 'times-now', 'owner']) {
        const node = await resolve(fs, `/${name}`);
        const want = expected.get(name)!;
        expect(node.stat.mtimeNs, name).toBe(want.mtimeNs);
        expect(node.stat.uid, name).toBe(want.uid);
        expect(node.stat.gid, name).toBe(want.gid);
        expect(node.stat.birthtimeNs, name).not.toBeNull();
      }
      expect((await resolve(fs, '/times-2100')).stat.mtimeNs).toBe(4113270489987654321n);
      expect((await resolve(fs, '/times-1901')).stat.mtimeNs).toBe(-2146953599500000000n);
      expect((await resolve(fs, '/owner')).stat.uid).toBe(4_000_000_000);
    });
  });
});

describe('refused clearly', () => {
  let image: string;
  beforeAll(() => {
    const tree = join(work, 'refuse-tree');
    mkdirSync(join(tree, 'secret-dir'), { recursive: true });
    writeFileSync(join(tree, 'secret-dir', 'inside'), 'x');
    writeFileSync(join(tree, 'secret.txt'), 'top secret\n');
    writeFileSync(join(tree, 'plain.txt'), 'plain\n');
    image = makeImage('ext4', ['-b', '4096'], 8, tree, work, 'refuse.img');
  });

  it('refuses an encrypted file or directory by inode, and still lists and reads the rest', async () => {
    const copy = copyToTemp(image, work, 'encrypted.img');
    const fileIno = debugfsInode(copy, '/secret.txt');
    const dirIno = debugfsInode(copy, '/secret-dir');
    debugfs(copy, `sif <${fileIno}> flags 0x80800`, true);
    debugfs(copy, `sif <${dirIno}> flags 0x80800`, true);
    await withFs(copy, async (fs) => {
      const root = await fs.root();
      const names = (await fs.readdir(root)).map((e) => e.name).sort();
      expect(names).toEqual(['lost+found', 'plain.txt', 'secret-dir', 'secret.txt']);
      const secret = (await fs.lookup(root, 'secret.txt'))!;
      expect(secret.stat.flags).toContain('encrypted');
      const buf = Buffer.alloc(64);
      await expect(fs.read(secret, buf, 0, 64, 0)).rejects.toThrow(new RegExp(`^encrypted inode ${fileIno}`));
      await expect(fs.read(secret, buf, 0, 64, 0)).rejects.toBeInstanceOf(UnsupportedError);
      await expect(fs.readdir((await fs.lookup(root, 'secret-dir'))!)).rejects.toThrow(new RegExp(`^encrypted inode ${dirIno}`));
      const plain = (await fs.lookup(root, 'plain.txt'))!;
      const n = await fs.read(plain, buf, 0, 64, 0);
      expect(buf.toString('utf8', 0, n)).toBe('plain\n');
    });
  });

  it.each([
    ['compression', 0x1],
    ['dirdata', 0x1000],
    ['unknown incompat 0x80000000', 0x80000000],
  ])('refuses a filesystem with the %s incompat feature, naming it', async (name, flag) => {
    const copy = copyToTemp(image, work, `incompat-${flag}.img`);
    const sb = Buffer.alloc(4);
    const fd = openSync(copy, 'r');
    (await import('node:fs')).readSync(fd, sb, 0, 4, 1024 + 0x60);
    closeSync(fd);
    sb.writeUInt32LE((sb.readUInt32LE(0) | flag) >>> 0);
    patch(copy, 1024 + 0x60, sb);
    expect(probeImage(copy)).toBe('ext4');
    await expect(openExt(copy)).rejects.toThrow(`ext4 feature not supported: ${name}`);
    await expect(openExt(copy)).rejects.toBeInstanceOf(UnsupportedError);
  });

  it('reads through unknown read-only-compatible features', async () => {
    const copy = copyToTemp(image, work, 'rocompat.img');
    const fd = openSync(copy, 'r');
    const sb = Buffer.alloc(4);
    (await import('node:fs')).readSync(fd, sb, 0, 4, 1024 + 0x64);
    closeSync(fd);
    sb.writeUInt32LE((sb.readUInt32LE(0) | 0x40000000) >>> 0);
    patch(copy, 1024 + 0x64, sb);
    await withFs(copy, async (fs) => {
      const plain = (await fs.lookup(await fs.root(), 'plain.txt'))!;
      expect((await readWhole(fs, plain)).toString()).toBe('plain\n');
    });
  });

  it('recognizes an external journal device and says it holds no files', async () => {
    const jd = join(work, 'journal-dev.img');
    run('mkfs.ext4', ['-q', '-F', '-O', 'journal_dev', '-b', '4096', jd, '8M']);
    expect(probeImage(jd)).toBe('jbd');
    const err = await openExt(jd).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LooplessError);
    expect((err as LooplessError).code).toBe('UNSUPPORTED');
    expect((err as Error).message).toMatch(/journal device/);
  });
});
