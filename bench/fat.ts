import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, hasTool, heading, isRoot, loopless, ratio, row, sh, tempDir, time, type Timing } from './lib.js';

/**
 * Issue 3's bench: `loopless cat` of a 1 GiB file on FAT32 and on exFAT
 * against the Sleuth Kit's icat and the kernel's vfat/exfat (when it has
 * them), plus the userspace tools that also read these formats (mtools,
 * exfat-fuse) for context. Every consumer is the same `| cat > /dev/null`.
 */
const GIB = 1024 * 1024 * 1024;

function mbps(t: Timing): string {
  return `${(GIB / 1024 / 1024 / t.seconds).toFixed(0)} MB/s`;
}

/** The Sleuth Kit's inode number for a path in the root directory. */
function tskInode(image: string, name: string): string {
  const line = sh(`fls ${image}`)
    .split('\n')
    .find((l) => l.endsWith(`\t${name}`));
  if (!line) throw new Error(`fls does not list ${name}`);
  return /(\d+):\t/.exec(line)![1];
}

function kernelHas(fs: string): boolean {
  return readFileSync('/proc/filesystems', 'utf8')
    .split('\n')
    .some((l) => l.trim().split(/\s+/).pop() === fs);
}

function compare(label: string, image: string, file: string, extra: (ours: Timing) => void): void {
  heading(`${label}: cat of a 1 GiB file (warm page cache, median of 5)`);
  sh(`cat ${image} > /dev/null`); // warm the page cache, as for every reader below
  const ours = time(`${loopless} cat ${image} /fs/${file} | cat > /dev/null`);
  row('loopless cat', `${fmt(ours)}  ${mbps(ours)}`);
  if (hasTool('icat')) {
    const icat = time(`icat ${image} ${tskInode(image, file)} | cat > /dev/null`);
    row('icat (Sleuth Kit)', `${fmt(icat)}  ${mbps(icat)}  -> loopless is ${ratio(icat, ours)} icat`);
  } else row('icat', 'not installed (apt-get install sleuthkit)');
  extra(ours);
  row('loopless peak RSS', `${ours.peakRssMb.toFixed(0)} MB`);
}

/** Time `cat` through a kernel loop mount when the kernel has the filesystem (this one may not). */
function kernelRow(fs: string, image: string, file: string, ours: Timing, mnt: string): void {
  const label = `kernel ${fs} loop mount + cat`;
  if (!kernelHas(fs)) return row(label, `not available: this kernel has no ${fs} (see /proc/filesystems)`);
  if (!isRoot) return row(label, 'skipped (needs root)');
  sh(`mkdir -p ${mnt} && mount -t ${fs} -o loop,ro ${image} ${mnt}`);
  try {
    const kernel = time(`cat ${mnt}/${file} | cat > /dev/null`);
    row(label, `${fmt(kernel)}  ${mbps(kernel)}  -> loopless is ${ratio(kernel, ours)} the kernel`);
  } finally {
    sh(`umount ${mnt}`);
  }
}

export async function run(): Promise<void> {
  const tmp = tempDir('loopless-bench-fat-');
  try {
    const big = join(tmp.dir, 'big.bin');
    sh(`head -c 1G /dev/urandom > ${big}`);

    // FAT32, 4 KiB clusters (what Windows picks up to 8 GB): 262144 FAT links to follow.
    const fat = join(tmp.dir, 'fat32.img');
    sh(`mkfs.fat -C -F 32 -s 8 -n BENCH ${fat} ${1100 * 1024} > /dev/null`);
    sh(`MTOOLS_SKIP_CHECK=1 mcopy -i ${fat} ${big} ::/big.bin`);
    compare('FAT32', fat, 'big.bin', (ours) => {
      const mcopy = time(`MTOOLS_SKIP_CHECK=1 mcopy -i ${fat} ::/big.bin - | cat > /dev/null`);
      row('mtools mcopy to stdout', `${fmt(mcopy)}  ${mbps(mcopy)}  -> loopless is ${ratio(mcopy, ours)} mtools`);
      kernelRow('vfat', fat, 'big.bin', ours, join(tmp.dir, 'kmnt'));
    });
    sh(`rm -f ${fat}`);

    // exFAT, 128 KiB clusters (mkfs.exfat's default at this size is 32 KiB; Windows uses 128 KiB here).
    const ex = join(tmp.dir, 'exfat.img');
    const mnt = join(tmp.dir, 'mnt');
    sh(`truncate -s 1100M ${ex} && mkdir -p ${mnt}`);
    const loop = sh(`losetup --find --show ${ex}`).trim();
    try {
      sh(`mkfs.exfat -c 128K -L BENCH ${loop} > /dev/null`);
      // exfat-fuse refuses regular files when run as root, hence the loop device. It runs in the
      // foreground (-d) so we can wait for it to exit: then every byte has reached the image.
      sh(
        `(mount.exfat-fuse -d ${loop} ${mnt} > /dev/null 2>&1 & pid=$!; ` +
          `until mountpoint -q ${mnt}; do sleep 0.1; done; ` +
          `cp ${big} ${mnt}/big.bin && fusermount -u ${mnt}; wait $pid)`,
      );
      compare('exFAT', ex, 'big.bin', (ours) => {
        sh(`mount.exfat-fuse -o ro ${loop} ${mnt} 2>/dev/null`);
        try {
          const fuse = time(`cat ${mnt}/big.bin | cat > /dev/null`);
          row('exfat-fuse mount + cat', `${fmt(fuse)}  ${mbps(fuse)}  -> loopless is ${ratio(fuse, ours)} exfat-fuse`);
        } finally {
          sh(`fusermount -u ${mnt}`);
        }
        kernelRow('exfat', ex, 'big.bin', ours, join(tmp.dir, 'kmnt'));
      });
    } finally {
      sh(`losetup -d ${loop}`);
    }
  } finally {
    tmp.cleanup();
  }
}
