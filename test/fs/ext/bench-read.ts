/**
 * Micro-benchmark, run by hand (not part of the suite):
 *
 *   npx tsx test/fs/ext/bench-read.ts [image-with-/big.bin]
 *
 * Without an argument it builds an ext4 image holding a 1 GiB file in a temp
 * dir. It reads /big.bin in 4 MiB requests and prints MB/s, how many source
 * reads that took (and their sizes), peak RSS, and the same read straight from
 * the raw image for comparison. Both runs read from the page cache once the
 * image is warm, so the figure is the parser's overhead, not the disk's.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExtFileSystem } from '../../../parsers/fs/ext/index.js';
import { RawFileSource } from '../../../parsers/source/raw.js';
import type { ByteSource } from '../../../parsers/source/types.js';

const CHUNK = 4 * 1024 * 1024;
const env = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}` };

class CountingSource implements ByteSource {
  reads = 0;
  bytes = 0;
  largest = 0;
  constructor(private readonly inner: ByteSource) {}
  get size() {
    return this.inner.size;
  }
  get description() {
    return this.inner.description;
  }
  async read(buffer: Uint8Array, offset: number, length: number, position: number) {
    this.reads++;
    this.bytes += length;
    this.largest = Math.max(this.largest, length);
    return this.inner.read(buffer, offset, length, position);
  }
  close() {
    return this.inner.close();
  }
}

let image = process.argv[2];
let work: string | null = null;
if (!image) {
  work = mkdtempSync(join(tmpdir(), 'loopless-ext-bench-'));
  const tree = join(work, 'tree');
  mkdirSync(tree);
  console.log('building a 1 GiB file and an ext4 image of it ...');
  execFileSync('dd', ['if=/dev/urandom', `of=${join(tree, 'big.bin')}`, 'bs=4M', 'count=256', 'status=none']);
  image = join(work, 'bench.img');
  execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', tree, image, '1100M'], { env });
  rmSync(tree, { recursive: true });
}

try {
  const raw = await RawFileSource.open(image);
  const counting = new CountingSource(raw);
  const fs = await ExtFileSystem.open(counting);
  const node = await fs.lookup(await fs.root(), 'big.bin');
  if (!node) throw new Error(`${image} has no /big.bin`);
  const size = node.stat.size;
  const buf = Buffer.allocUnsafe(CHUNK);

  // Warm the page cache so both runs below measure the same thing.
  for (let pos = 0; pos < size; pos += CHUNK) await raw.read(buf, 0, CHUNK, pos);

  const readAll = async () => {
    let requests = 0;
    const start = process.hrtime.bigint();
    for (let pos = 0; pos < size; ) {
      const n = await fs.read(node, buf, 0, CHUNK, pos);
      if (n <= 0) throw new Error(`short read at ${pos}`);
      pos += n;
      requests++;
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    return { seconds, requests };
  };

  counting.reads = 0;
  counting.bytes = 0;
  counting.largest = 0;
  const run = await readAll();
  const sourceReads = counting.reads;
  const largest = counting.largest;

  const rawStart = process.hrtime.bigint();
  // The same byte count straight off the image, for reference.
  for (let pos = 0; pos < size; pos += CHUNK) await raw.read(buf, 0, CHUNK, pos);
  const rawSeconds = Number(process.hrtime.bigint() - rawStart) / 1e9;

  const mb = size / 1e6;
  console.log(`file: ${size} bytes in ${run.requests} reads of 4 MiB`);
  console.log(`loopless ext read: ${(mb / run.seconds).toFixed(0)} MB/s (${run.seconds.toFixed(3)} s)`);
  console.log(`source reads: ${sourceReads} (largest ${largest} bytes)`);
  console.log(`raw image read, same size: ${(mb / rawSeconds).toFixed(0)} MB/s (${rawSeconds.toFixed(3)} s)`);
  console.log(`peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
  await fs.close();
  await raw.close();
} finally {
  if (work) rmSync(work, { recursive: true, force: true });
}
