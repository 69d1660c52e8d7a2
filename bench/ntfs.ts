import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, hasTool, heading, isRoot, loopless, ratio, row, sh, tempDir, time } from './lib.js';

/**
 * Issue 4's target: reading a 1 GiB file on NTFS (contiguous, and fragmented
 * into ~1000 scattered runs) at least as fast as icat, compared with cat
 * through an ntfs-3g FUSE mount. Every consumer is the same `| cat >
 * /dev/null`, so only the producer differs.
 *
 * "Ours" is the real `loopless cat` (the image has no partition table, so the
 * volume is /fs); this module run as a script only lists inode numbers and
 * run counts for icat and the headings.
 */
const GiB = 1024 * 1024 * 1024;
const self = fileURLToPath(import.meta.url);

export async function run(): Promise<void> {
  if (!hasTool('mkntfs') || !hasTool('ntfs-3g') || !isRoot) {
    heading('ntfs: skipped (needs root, mkntfs and ntfs-3g)');
    return;
  }
  const tmp = tempDir('loopless-bench-ntfs-');
  try {
    const img = join(tmp.dir, 'ntfs.img');
    const mnt = join(tmp.dir, 'mnt');
    heading('ntfs: building a 2.5 GiB image (1 GiB contiguous file, 1 GiB fragmented file)');
    sh(`truncate -s 2560M ${img} && mkntfs -F -Q -q -c 4096 ${img} 2>/dev/null && mkdir -p ${mnt}`);
    sh(`ntfs-3g -o big_writes ${img} ${mnt}`);
    try {
      sh(`head -c 1G /dev/urandom > ${mnt}/contiguous.bin`);
      writeShuffled(join(mnt, 'fragmented.bin'), GiB, 1024 * 1024);
    } finally {
      sh(`fusermount -u ${mnt}`);
    }
    sh(`cat ${img} > /dev/null`); // warm the page cache: every reader starts from the same place

    const inodes = JSON.parse(sh(`${process.execPath} ${self} ino ${img}`)) as Record<string, { ino: number; runs: number }>;
    for (const name of ['contiguous.bin', 'fragmented.bin']) {
      heading(`ntfs: cat of a 1 GiB ${name.replace('.bin', '')} file (${inodes[name].runs} runs; warm page cache, median of 5)`);
      const ours = time(`${loopless} cat ${img} /fs/${name} | cat > /dev/null`);
      row('loopless cat', fmt(ours));
      if (hasTool('icat')) {
        const icat = time(`icat ${img} ${inodes[name].ino} | cat > /dev/null`);
        row('icat (Sleuth Kit)', `${fmt(icat)}  -> loopless is ${ratio(icat, ours)} icat (target >= 1.00x)`);
      } else row('icat', 'not installed (apt-get install sleuthkit)');
      // Mount afresh each time so FUSE's page cache does not serve the file from memory.
      const fuse = time(`ntfs-3g -o ro ${img} ${mnt} && cat ${mnt}/${name} | cat > /dev/null; fusermount -u ${mnt}`);
      row('ntfs-3g FUSE mount + cat (incl. mount)', `${fmt(fuse)}  -> loopless is ${ratio(fuse, ours)} ntfs-3g`);
      row('loopless peak RSS', `${ours.peakRssMb.toFixed(0)} MB`);
    }
  } finally {
    sh(`fusermount -u ${join(tmp.dir, 'mnt')} 2>/dev/null || true`);
    tmp.cleanup();
  }
}

/** Write `size` bytes in `chunk`-sized pieces in a shuffled order: ntfs-3g allocates as it goes, so the runs end up scattered. */
function writeShuffled(path: string, size: number, chunk: number): void {
  const order = Array.from({ length: Math.ceil(size / chunk) }, (_, i) => i);
  let seed = 42;
  for (let i = order.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const j = seed % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const data = Buffer.alloc(chunk);
  const fd = openSync(path, 'w');
  try {
    for (const i of order) {
      for (let k = 0; k < chunk; k += 4) data.writeUInt32LE((i * chunk + k) >>> 0, k);
      writeSync(fd, data, 0, Math.min(chunk, size - i * chunk), i * chunk);
    }
  } finally {
    closeSync(fd);
  }
}

/** `node ntfs.js ino IMAGE`: inode numbers and run counts of the root's files. */
async function main(args: string[]): Promise<void> {
  const { RawFileSource } = await import('../parsers/source/raw.js');
  const { NtfsFileSystem } = await import('../parsers/fs/ntfs/index.js');
  const source = await RawFileSource.open(args[1]);
  const fs = await NtfsFileSystem.open(source);
  const out: Record<string, { ino: number; runs: number }> = {};
  for (const { name, node } of await fs.readdir(await fs.root())) out[name] = { ino: node.stat.ino, runs: node.data?.mapping().length ?? 0 };
  process.stdout.write(JSON.stringify(out));
  await fs.close();
  await source.close();
}

if (process.argv[1] === self) await main(process.argv.slice(2));
