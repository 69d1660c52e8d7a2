import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, hasTool, heading, isRoot, loopless, ratio, row, sh, tempDir, time } from './lib.js';

/**
 * Issue 2's targets: `loopless cat` of a 1 GiB file on ext4 at least as fast as
 * icat and >= 1.5x a kernel loop mount, peak RSS < 150 MB; `ls /` of a 64 GiB
 * sparse GPT image well under a second. Every consumer is the same
 * `| cat > /dev/null`, so only the producer differs.
 */
export async function run(): Promise<void> {
  const tmp = tempDir('loopless-bench-ext-');
  try {
    heading('ext4: cat of a 1 GiB file (warm page cache, median of 5)');
    const src = join(tmp.dir, 'src');
    const img = join(tmp.dir, 'ext4.img');
    sh(`mkdir -p ${src} && head -c 1G /dev/urandom > ${src}/big.bin && mkfs.ext4 -q -F -d ${src} ${img} 1200M`);
    sh(`cat ${img} > /dev/null`); // warm the page cache
    const ino = JSON.parse(sh(`${loopless} stat ${img} /fs/big.bin --json`)).ino as number;

    const ours = time(`${loopless} cat ${img} /fs/big.bin | cat > /dev/null`);
    row('loopless cat', fmt(ours));
    if (hasTool('icat')) {
      const icat = time(`icat ${img} ${ino} | cat > /dev/null`);
      row('icat (Sleuth Kit)', `${fmt(icat)}  -> loopless is ${ratio(icat, ours)} icat (target >= 1.00x)`);
    } else row('icat', 'not installed (apt-get install sleuthkit)');
    if (isRoot) {
      const mnt = join(tmp.dir, 'mnt');
      sh(`mkdir -p ${mnt} && mount -o loop,ro ${img} ${mnt}`);
      try {
        const kernel = time(`cat ${mnt}/big.bin | cat > /dev/null`);
        row('kernel loop mount + cat', `${fmt(kernel)}  -> loopless is ${ratio(kernel, ours)} the kernel (target >= 1.50x)`);
      } finally {
        sh(`umount ${mnt}`);
      }
    } else row('kernel loop mount', 'skipped (needs root)');
    row('loopless peak RSS', `${ours.peakRssMb.toFixed(0)} MB (target < 150 MB)`);
    sh(`rm -f ${img}`);

    heading('ls of the root of a 64 GiB sparse GPT image');
    const big = join(tmp.dir, 'big-gpt.img');
    sh(`truncate -s 64G ${big} && sgdisk -n1:2048:+60G -t1:8300 -n2:0:0 -t2:0700 ${big} >/dev/null`);
    sh(`mkfs.ext4 -q -F -E offset=${2048 * 512},lazy_itable_init=1 ${big} 60G`);
    writeFileSync(join(tmp.dir, 'note'), 'sparse');
    const lsRoot = time(`${loopless} ls ${big} / > /dev/null`);
    row('loopless ls IMAGE /', `${fmt(lsRoot)} (target well under 1 s)`);
    const lsP1 = time(`${loopless} ls ${big} /p1 > /dev/null`);
    row('loopless ls IMAGE /p1', fmt(lsP1));
    const info = time(`${loopless} info ${big} > /dev/null`);
    row('loopless info IMAGE', fmt(info));
  } finally {
    tmp.cleanup();
  }
}
