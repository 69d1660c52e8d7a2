/**
 * Damaged images (always copies in a temp dir): each problem gives a typed
 * error naming the structure and offset, within a second, and damage to one
 * file or directory block leaves the rest of the tree readable.
 */
import { mkdirSync, readFileSync, truncateSync, writeFileSync, openSync, closeSync, ftruncateSync, writeSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptError, LooplessError } from '../../../parsers/errors.js';
import { detectFileSystem } from '../../../parsers/fs/index.js';
import { ExtFileSystem, type ExtNode } from '../../../parsers/fs/ext/index.js';
import { MemorySource } from '../../../parsers/source/memory.js';
import {
  copyToTemp,
  debugfsBlocks,
  debugfsInode,
  inodeOffset,
  makeImage,
  mappingMetadataBlocks,
  openExt,
  patch,
  probeImage,
  readWhole,
  removeDir,
  sha256,
  tempDir,
} from './helpers.js';

const BS = 1024;

function peekBytes(path: string, offset: number, length: number): Buffer {
  return readFileSync(path).subarray(offset, offset + length);
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}
const SAMPLE_MBR = new URL('../../../sample-images/mbr.img', import.meta.url).pathname;
let work: string;
let tree: string;
let image: string;
const dirNames: string[] = [];

beforeAll(() => {
  work = tempDir();
  tree = join(work, 'tree');
  mkdirSync(join(tree, 'docs'), { recursive: true });
  writeFileSync(join(tree, 'docs', 'a.txt'), 'alpha\n');
  writeFileSync(join(tree, 'docs', 'b.txt'), 'bravo\n'.repeat(1000));
  writeFileSync(join(tree, 'large.bin'), Buffer.alloc(300_000, 0x5a));
  // Ten separate extents: more than the inode's four slots, so the tree gets a leaf block.
  const fd = openSync(join(tree, 'frag.bin'), 'w');
  ftruncateSync(fd, 40 * 1024);
  for (let i = 0; i < 10; i++) writeSync(fd, Buffer.alloc(1024, i + 1), 0, 1024, i * 4096);
  closeSync(fd);
  mkdirSync(join(tree, 'dir'));
  for (let i = 0; i < 200; i++) {
    const name = `entry-${String(i).padStart(3, '0')}-${'q'.repeat(30)}`;
    dirNames.push(name);
    writeFileSync(join(tree, 'dir', name), String(i));
  }
  mkdirSync(join(tree, 'deep', 'level0', 'level1', 'level2'), { recursive: true });
  writeFileSync(join(tree, 'deep', 'level0', 'level1', 'level2', 'file'), 'deep\n');
  image = makeImage('ext4', ['-b', String(BS), '-O', '^has_journal'], 8, tree, work, 'base.img');
});

afterAll(() => removeDir(work));

/** Walk everything; collect errors per path instead of stopping (what a user's `cp -R` would see). */
async function walkAll(fs: ExtFileSystem, maxDepth = 20): Promise<{ files: Map<string, string>; errors: Map<string, unknown> }> {
  const files = new Map<string, string>();
  const errors = new Map<string, unknown>();
  const visit = async (dir: ExtNode, path: string, depth: number) => {
    if (depth > maxDepth) return;
    let list;
    try {
      list = await fs.readdir(dir);
    } catch (e) {
      errors.set(path || '/', e);
      return;
    }
    for (const { name, node } of list) {
      const p = `${path}/${name}`;
      try {
        if (node.stat.type === 'dir') await visit(node, p, depth + 1);
        else if (node.stat.type === 'file') files.set(p, sha256(await readWhole(fs, node)));
      } catch (e) {
        errors.set(p, e);
      }
    }
  };
  await visit(await fs.root(), '', 0);
  return { files, errors };
}

async function timed<T>(body: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const out = await body();
  expect(performance.now() - start).toBeLessThan(1000);
  return out;
}

describe('damaged ext images', () => {
  let pristine: Map<string, string>;
  beforeAll(async () => {
    const { fs, source } = await openExt(image);
    pristine = (await walkAll(fs)).files;
    await fs.close();
    await source.close();
    expect(pristine.size).toBe(205);
  });

  it('a zeroed superblock: not recognized, and open says which structure is bad', async () => {
    const bytes = readFileSync(image);
    bytes.fill(0, 1024, 2048);
    const source = new MemorySource(bytes);
    await timed(async () => {
      expect((await detectFileSystem(source)).type).toBeNull();
      const err = await ExtFileSystem.open(source).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CorruptError);
      expect((err as CorruptError).structure).toBe('ext superblock');
      expect((err as CorruptError).offset).toBe(1024);
      expect((err as Error).message).toMatch(/^corrupt ext superblock at byte 1024: bad magic/);
    });
  });

  it('a truncated image: what is there still lists, what is gone fails with a typed error', async () => {
    const copy = copyToTemp(image, work, 'truncated.img');
    truncateSync(copy, 1024 * 1024);
    expect(probeImage(copy)).toBe('ext4');
    await timed(async () => {
      const { fs, source } = await openExt(copy);
      try {
        const { errors } = await walkAll(fs);
        expect(errors.size).toBeGreaterThan(0);
        for (const [path, e] of errors) expect(e, path).toBeInstanceOf(LooplessError);
        expect([...errors.values()].some((e) => /truncated image/.test((e as Error).message))).toBe(true);
      } finally {
        await fs.close();
        await source.close();
      }
    });
  });

  it('a corrupted extent header fails that file only', async () => {
    const copy = copyToTemp(image, work, 'bad-extent-header.img');
    const ino = debugfsInode(copy, '/large.bin');
    const at = inodeOffset(copy, ino, BS) + 0x28;
    patch(copy, at, [0x0a, 0xf4]); // magic 0xf40a instead of 0xf30a
    await timed(async () => {
      const { fs, source } = await openExt(copy);
      try {
        const { files, errors } = await walkAll(fs);
        expect([...errors.keys()]).toEqual(['/large.bin']);
        const err = errors.get('/large.bin') as CorruptError;
        expect(err).toBeInstanceOf(CorruptError);
        expect(err.offset).toBe(at);
        expect(err.message).toMatch(/extent tree root of inode \d+ at byte \d+: bad extent header magic 0xf40a/);
        for (const [path, sum] of pristine) if (path !== '/large.bin') expect(files.get(path), path).toBe(sum);
      } finally {
        await fs.close();
        await source.close();
      }
    });
  });

  it('an extent tree node that points at itself is a CorruptError, not a hang', async () => {
    const copy = copyToTemp(image, work, 'extent-loop.img');
    const ino = debugfsInode(copy, '/frag.bin');
    const [leaf] = mappingMetadataBlocks(copy, ino);
    expect(leaf).toBeGreaterThan(0);
    // Turn the leaf into an index node (depth 1) whose only child is itself.
    const node = Buffer.alloc(24);
    node.writeUInt16LE(0xf30a, 0);
    node.writeUInt16LE(1, 2);
    node.writeUInt16LE((BS - 12) / 12, 4);
    node.writeUInt16LE(1, 6);
    node.writeUInt32LE(0, 12); // ei_block
    node.writeUInt32LE(leaf, 16); // ei_leaf_lo
    patch(copy, leaf * BS, node);
    await timed(async () => {
      const { fs, source } = await openExt(copy);
      try {
        const { files, errors } = await walkAll(fs);
        expect([...errors.keys()]).toEqual(['/frag.bin']);
        expect((errors.get('/frag.bin') as Error).message).toMatch(
          new RegExp(`^corrupt ext extent tree node of inode ${ino} at byte ${leaf * BS}: node has depth 1 where 0 was expected`),
        );
        expect(files.get('/large.bin')).toBe(pristine.get('/large.bin'));
      } finally {
        await fs.close();
        await source.close();
      }
    });
  });

  it('a directory block with a bad rec_len loses only its own entries', async () => {
    const copy = copyToTemp(image, work, 'bad-rec-len.img');
    const dirIno = debugfsInode(copy, '/dir');
    // debugfs lists extent tree blocks too; keep the data blocks, in logical order.
    const tables = new Set(mappingMetadataBlocks(copy, dirIno));
    const blocks = debugfsBlocks(copy, [dirIno]).get(dirIno)!.filter((b) => !tables.has(b));
    expect(blocks.length).toBeGreaterThan(3);
    // Count the live entries in the third block (no "." or ".." there) with an independent little walk.
    const victim = blocks[2];
    const raw = readFileSync(copy).subarray(victim * BS, victim * BS + BS);
    let lost = 0;
    for (let at = 0; at < BS; at += raw.readUInt16LE(at + 4)) if (raw.readUInt32LE(at) !== 0) lost++;
    expect(lost).toBeGreaterThan(5);
    patch(copy, victim * BS + 4, [5, 0]); // rec_len 5: too small and not a multiple of 4
    await timed(async () => {
      const { fs, source } = await openExt(copy);
      try {
        const dir = (await fs.lookup(await fs.root(), 'dir'))!;
        const names = (await fs.readdir(dir)).map((e) => e.name);
        expect(names.length).toBe(dirNames.length - lost);
        for (const n of names) expect(dirNames).toContain(n);
        expect(names).toContain(dirNames[0]);
        expect(names).toContain(dirNames[199]);
      } finally {
        await fs.close();
        await source.close();
      }
    });
  });

  it('an entry whose inode is unreadable is left out of the listing, and a warning names it', async () => {
    const copy = copyToTemp(image, work, 'dead-inode.img');
    const ino = debugfsInode(copy, '/docs/a.txt');
    patch(copy, inodeOffset(copy, ino, BS), [0, 0]); // i_mode 0: "not in use", yet the entry still names it
    const { fs, source } = await openExt(copy);
    try {
      const docs = (await fs.lookup(await fs.root(), 'docs'))!;
      for (let i = 0; i < 2; i++) expect((await fs.readdir(docs)).map((e) => e.name)).toEqual(['b.txt']);
      const warnings = fs.info().warnings ?? [];
      // Asked for by name, it fails with why instead of "not found".
      await expect(fs.lookup(docs, 'a.txt')).rejects.toThrow(new RegExp(`corrupt ext inode ${ino} at byte \\d+: inode is not in use`));
      // Once, however often the directory is listed.
      expect(warnings).toEqual([`directory inode ${docs.stat.ino}: entry "a.txt" left out: corrupt ext inode ${ino} at byte ${inodeOffset(copy, ino, BS)}: inode is not in use (mode 0)`]);
    } finally {
      await fs.close();
      await source.close();
    }
    // The CLI shows it on stderr, and the listing still succeeds.
    const r = spawnSync(process.execPath, [new URL('../../../bin/loopless.js', import.meta.url).pathname, 'ls', copy, '/fs/docs'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/b\.txt/);
    expect(r.stderr).toMatch(/^loopless: warning: fs: directory inode \d+: entry "a\.txt" left out: corrupt ext inode \d+ at byte \d+: inode is not in use \(mode 0\)$/m);
    const cat = spawnSync(process.execPath, [new URL('../../../bin/loopless.js', import.meta.url).pathname, 'cat', copy, '/fs/docs/a.txt'], { encoding: 'utf8' });
    expect(cat.status).toBe(4);
    expect(cat.stderr).toMatch(/^loopless: \/fs\/docs\/a\.txt: corrupt ext inode \d+ at byte \d+ of fs \(image byte \d+\): inode is not in use \(mode 0\)$/m);
  });

  it('an extent tree node failing its checksum is reported, as e2fsck does, and the file still reads', async () => {
    expect(run('dumpe2fs', ['-h', image])).toMatch(/features:.*metadata_csum/);
    const copy = copyToTemp(image, work, 'extent-csum.img');
    const ino = debugfsInode(copy, '/frag.bin');
    const [leaf] = mappingMetadataBlocks(copy, ino);
    const node = peekBytes(copy, leaf * BS, BS);
    const entries = node.readUInt16LE(2);
    expect(entries).toBeLessThan(node.readUInt16LE(4)); // a free slot to damage
    patch(copy, leaf * BS + 12 + 12 * entries + 1, [0x77]); // inside an unused slot: only the checksum sees it
    expect(run('sh', ['-c', `e2fsck -fn ${copy} 2>&1; true`])).toMatch(new RegExp(`Inode ${ino} extent block passes checks, but checksum does not match extent`));
    const { fs, source } = await openExt(copy);
    try {
      const frag = (await fs.lookup(await fs.root(), 'frag.bin'))!;
      expect(sha256(await readWhole(fs, frag))).toBe(sha256(readFileSync(join(tree, 'frag.bin'))));
      expect(fs.info().warnings).toEqual([`ext extent tree node of inode ${ino} at byte ${leaf * BS}: checksum mismatch (the node may be damaged)`]);
    } finally {
      await fs.close();
      await source.close();
    }
  });

  it('a directory block failing its checksum is reported, and its entries still list', async () => {
    const copy = copyToTemp(image, work, 'dirblock-csum.img');
    const dirIno = debugfsInode(copy, '/dir');
    const tables = new Set(mappingMetadataBlocks(copy, dirIno));
    const block = debugfsBlocks(copy, [dirIno]).get(dirIno)!.filter((b) => !tables.has(b))[1];
    const tail = block * BS + BS - 12;
    expect(peekBytes(copy, tail, 8)).toEqual(Buffer.from([0, 0, 0, 0, 12, 0, 0, 0xde]));
    patch(copy, tail + 8, [0x12, 0x34, 0x56, 0x78]); // the stored checksum
    expect(run('sh', ['-c', `e2fsck -fn ${copy} 2>&1; true`])).toContain(`Directory inode ${dirIno}, block #1: directory passes checks but fails checksum`);
    const { fs, source } = await openExt(copy);
    try {
      const dir = (await fs.lookup(await fs.root(), 'dir'))!;
      expect((await fs.readdir(dir)).map((e) => e.name).sort()).toEqual([...dirNames].sort());
      expect(fs.info().warnings).toEqual([`ext directory block of inode ${dirIno} at byte ${block * BS}: checksum mismatch (its entries are still listed, each checked on its own)`]);
    } finally {
      await fs.close();
      await source.close();
    }
  });

  it('a directory entry pointing back at the root keeps readdir bounded', async () => {
    const copy = copyToTemp(image, work, 'ancestor.img');
    const ino = debugfsInode(copy, '/deep/level0');
    const [block] = debugfsBlocks(copy, [ino]).get(ino)!;
    const raw = readFileSync(copy).subarray(block * BS, block * BS + BS);
    const nameAt = raw.indexOf('level1');
    expect(nameAt).toBeGreaterThan(8);
    const entry = Buffer.alloc(4);
    entry.writeUInt32LE(2); // the root inode
    patch(copy, block * BS + nameAt - 8, entry);
    await timed(async () => {
      const { fs, source } = await openExt(copy);
      try {
        const level0 = (await fs.lookup((await fs.lookup(await fs.root(), 'deep'))!, 'level0'))!;
        const list = await fs.readdir(level0);
        expect(list.map((e) => [e.name, e.node.stat.ino])).toEqual([['level1', 2]]);
        expect((await fs.lookup(level0, 'level1'))!.stat.ino).toBe(2);
        // A walk that follows it goes round in circles, but each readdir ends; a depth cap ends the walk.
        const { files } = await walkAll(fs, 12);
        expect(files.get('/docs/a.txt')).toBe(pristine.get('/docs/a.txt'));
      } finally {
        await fs.close();
        await source.close();
      }
    });
  });

  it('a journal inode claiming petabytes (i_size_high) keeps allocatedRanges bounded', async () => {
    // Found by fuzzing the sample mbr.img's p5 (ext4 with a journal, 1 KiB blocks): one
    // byte of inode 8's i_size_high made the journal's mapping walk past 2^32 logical
    // blocks one block per step (hours). The volume is copied out of the sample image.
    const { partitiontable } = JSON.parse(execFileSync('sfdisk', ['-J', SAMPLE_MBR], { encoding: 'utf8' })) as { partitiontable: { partitions: { node: string; start: number; size: number }[] } };
    const p5 = partitiontable.partitions.find((p) => p.node.endsWith('5'))!;
    const copy = join(work, 'huge-journal.img');
    writeFileSync(copy, readFileSync(SAMPLE_MBR).subarray(p5.start * 512, (p5.start + p5.size) * 512));
    const at = inodeOffset(copy, 8, BS);
    expect(readFileSync(copy).readUInt32LE(at + 0x6c)).toBe(0); // i_size_high of the journal
    patch(copy, at + 0x6c, [0x00, 0x7f, 0x00, 0x00]);
    await timed(async () => {
      const { fs, source } = await openExt(copy);
      try {
        const ranges = await fs.allocatedRanges();
        expect(ranges.length).toBeGreaterThan(0);
        expect(ranges.at(-1)!.start + ranges.at(-1)!.length).toBeLessThanOrEqual(source.size);
        expect((await fs.readdir(await fs.root())).length).toBeGreaterThan(0);
      } finally {
        await fs.close();
        await source.close();
      }
    });
  });

  it('an absurd directory size is refused, not walked', async () => {
    const copy = copyToTemp(image, work, 'huge-dir.img');
    const ino = debugfsInode(copy, '/docs');
    patch(copy, inodeOffset(copy, ino, BS) + 4, [0xff, 0xff, 0xff, 0xff]);
    await timed(async () => {
      const { fs, source } = await openExt(copy);
      try {
        const docs = (await fs.lookup(await fs.root(), 'docs'))!;
        await expect(fs.readdir(docs)).rejects.toThrow(/implausible directory size 4294967295/);
        expect(await fs.lookup(await fs.root(), 'large.bin')).not.toBeNull();
      } finally {
        await fs.close();
        await source.close();
      }
    });
  });
});
