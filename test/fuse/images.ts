import { chownSync, linkSync, lutimesSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTree } from '../support/tree.js';
import { sh } from './support.js';

const MiB = 1024 * 1024;

/** Content a misplaced 4 KiB block would give away: each block names its own offset. */
export function patterned(size: number, label: string): Buffer {
  const buf = Buffer.alloc(size);
  for (let off = 0; off < size; off += 4096) buf.write(`${label}@${off.toString(16).padStart(12, '0')};`.repeat(120), off, Math.min(4096, size - off), 'latin1');
  return buf;
}

/**
 * The CLI tests' tree plus what stat(2) must get right through a mount:
 * hard links, a fifo, a device node, a sparse file, owners, a nanosecond
 * mtime, names with spaces and commas, and an 8 MiB file for parallel reads.
 */
export function makeRichTree(root: string): void {
  makeTree(root);
  writeFileSync(join(root, 'eight-mib.bin'), patterned(8 * MiB, 'eight'));
  linkSync(join(root, 'docs', 'readme.txt'), join(root, 'hardlink-to-readme'));
  sh('mkfifo', [join(root, 'a-fifo')]);
  sh('mknod', [join(root, 'null-device'), 'c', '1', '3']);
  const sparse = join(root, 'sparse.bin');
  writeFileSync(sparse, 'start');
  truncateSync(sparse, 20 * MiB);
  const owned = join(root, OWNED);
  writeFileSync(owned, 'owner test\n');
  chownSync(owned, 1234, 5678);
  // mkfs -d stores whole seconds; buildExtImage adds the nanoseconds with debugfs.
  for (const name of ['eight-mib.bin', 'hardlink-to-readme', 'a-fifo', 'null-device', 'sparse.bin', OWNED]) utimesSync(join(root, name), T0, T0);
  lutimesSync(join(root, 'fast-link'), T0, T0);
}

/** A file with an owner and, in the image, a nanosecond mtime (T0 + 0.123456789 s). */
export const OWNED = 'owned by 1234, 5678.txt';
export const T0 = 1614834368;
const OWNED_NS = 123_456_789;

export interface BuiltImage {
  image: string;
  /** Host trees put into p1 and p2. */
  trees: { p1: string; p2: string };
}

/**
 * 80 MiB MBR image: p1 ext2 (8 MiB, small tree), p2 ext4 (the rich tree),
 * both made by mkfs -d straight into the image at the partition's offset.
 */
export function buildExtImage(dir: string): BuiltImage {
  const image = join(dir, 'two-ext.img');
  const p1Tree = join(dir, 'tree-p1');
  const p2Tree = join(dir, 'tree-p2');
  makeTree(p1Tree);
  makeRichTree(p2Tree);
  createSparse(image, 80 * MiB);
  sh('sfdisk', ['-q', image], 'label: dos\nstart=2048, size=16384, type=83\nstart=18432, type=83\n');
  const p1Start = 2048 * 512;
  const p2Start = 18432 * 512;
  sh('mkfs.ext2', ['-q', '-F', '-d', p1Tree, '-E', `offset=${p1Start}`, image, `${(16384 * 512) / 1024}k`]);
  sh('mkfs.ext4', ['-q', '-F', '-d', p2Tree, '-E', `offset=${p2Start}`, image, `${(80 * MiB - p2Start) / 1024}k`]);
  // ext4's extra time field: nanoseconds << 2 (the low bits extend the epoch).
  sh('debugfs', ['-w', '-R', `sif "/${OWNED}" mtime_extra 0x${(OWNED_NS * 4).toString(16)}`, `${image}?offset=${p2Start}`]);
  return { image, trees: { p1: p1Tree, p2: p2Tree } };
}

function createSparse(path: string, size: number): void {
  writeFileSync(path, '');
  truncateSync(path, size);
}

/** A table-less ext4 image of a small tree (the "fs" volume). */
export function buildBareExtImage(dir: string, name: string, label: string): { image: string; tree: string } {
  const tree = join(dir, `tree-${name}`);
  makeTree(tree);
  writeFileSync(join(tree, 'label.txt'), `${label}\n`);
  const image = join(dir, name);
  sh('mkfs.ext4', ['-q', '-F', '-d', tree, '-L', label.slice(0, 16), image, '8M']);
  return { image, tree };
}
