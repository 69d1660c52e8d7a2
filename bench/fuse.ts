/**
 * Sequential read of a 1 GiB file, three ways, in one run:
 *   - through `loopless mount` (FUSE),
 *   - with `loopless cat` (no mount at all),
 *   - through the kernel's own ext4 on a loop device (`mount -o loop,ro`),
 * each reading into /dev/null with 1 MiB reads, the image itself warm in the
 * page cache. Every variant runs RUNS times, interleaved so that load from
 * other processes hits them alike; medians and ratios to the kernel are
 * printed. "cold" is the first read after mounting (the mount's own cache is
 * empty), "warm" a second read of the same file, "image on disk" a cold read
 * with the image's own pages evicted too (a backup image nobody read lately).
 *
 * Needs root, FUSE and mkfs.ext4. Run: node dist/bench/fuse.js
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pauseFreePageReporting } from './memory.js';

const RUNS = 5;
const FILE_BYTES = 1024 * 1024 * 1024;
const bin = join(fileURLToPath(import.meta.url), '..', '..', '..', 'bin', 'loopless.js');
const env = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? '/usr/bin:/bin'}` };

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Seconds a command takes, start to exit. */
function timed(cmd: string, args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr?.toString().trim()}`);
  return Number(process.hrtime.bigint() - t) / 1e9;
}

const readFile = (path: string) => timed('dd', [`if=${path}`, 'of=/dev/null', 'bs=1M']);

/** Drop the image's pages from the page cache (posix_fadvise DONTNEED, which GNU dd issues for iflag=nocache). */
function evict(path: string): void {
  sh('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function run(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('fuse bench: skipped (needs root for mounts)');
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'loopless-bench-fuse-'));
  const fuseMnt = join(work, 'fuse');
  const kernelMnt = join(work, 'kernel');
  mkdirSync(fuseMnt);
  mkdirSync(kernelMnt);
  const image = join(work, 'big.img');
  try {
    console.log('fuse bench: building an ext4 image holding a 1 GiB file ...');
    mkdirSync(join(work, 'tree'));
    sh('dd', ['if=/dev/urandom', `of=${join(work, 'tree', 'big.bin')}`, 'bs=4M', `count=${FILE_BYTES / (4 << 20)}`, 'status=none']);
    sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', join(work, 'tree'), image, '1100M']);
    rmSync(join(work, 'tree'), { recursive: true });
    sh('cat', [image]); // warm the image in the page cache

    const times = {
      fuseCold: [] as number[],
      fuseWarm: [] as number[],
      fuseDisk: [] as number[],
      cat: [] as number[],
      kernelCold: [] as number[],
      kernelWarm: [] as number[],
      kernelDisk: [] as number[],
    };
    const viaFuse = (fn: () => void) => {
      sh(process.execPath, [bin, 'mount', '--log', join(work, 'mount.log'), image, fuseMnt]);
      try {
        fn();
      } finally {
        sh(process.execPath, [bin, 'umount', fuseMnt]);
      }
    };
    const viaKernel = (fn: () => void) => {
      sh('mount', ['-o', 'loop,ro', image, kernelMnt]);
      try {
        fn();
      } finally {
        sh('umount', [kernelMnt]);
      }
    };
    /** A cold read with the image itself not in the page cache either (read from the disk). */
    const fromDisk = (read: () => number) => {
      evict(image);
      const t = read();
      sh('cat', [image]);
      return t;
    };
    // Round 0 warms up (and backs the memory the page caches need once; see memory.ts) and is not counted.
    for (let i = 0; i <= RUNS; i++) {
      if (i === 1) for (const list of Object.values(times)) list.length = 0;
      viaFuse(() => {
          times.fuseCold.push(readFile(join(fuseMnt, 'fs', 'big.bin')));
        times.fuseWarm.push(readFile(join(fuseMnt, 'fs', 'big.bin')));
      });
      viaFuse(() => times.fuseDisk.push(fromDisk(() => readFile(join(fuseMnt, 'fs', 'big.bin')))));
      times.cat.push(timed('sh', ['-c', 'exec "$0" "$1" cat "$2" /fs/big.bin > /dev/null', process.execPath, bin, image]));
      viaKernel(() => {
          times.kernelCold.push(readFile(join(kernelMnt, 'big.bin')));
        times.kernelWarm.push(readFile(join(kernelMnt, 'big.bin')));
      });
      viaKernel(() => times.kernelDisk.push(fromDisk(() => readFile(join(kernelMnt, 'big.bin')))));
    }

    const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<keyof typeof times, number>;
    const mbps = (s: number) => `${((FILE_BYTES / s) / 1e6).toFixed(0)} MB/s`;
    const row = (name: string, s: number, kernel: number) => `  ${name.padEnd(40)} ${s.toFixed(2).padStart(6)} s  ${mbps(s).padStart(11)}  ${(kernel / s).toFixed(2)}x kernel`;
    console.log(`fuse bench: sequential read of 1 GiB, median of ${RUNS} interleaved runs (ratio = kernel time / our time; >= 1 is as fast; target >= 0.8)`);
    console.log(row('kernel loop mount, cold, image cached', m.kernelCold, m.kernelCold));
    console.log(row('loopless mount (FUSE), cold, image cached', m.fuseCold, m.kernelCold));
    console.log(row('loopless cat (whole process)', m.cat, m.kernelCold));
    console.log(row('kernel loop mount, image on disk', m.kernelDisk, m.kernelDisk));
    console.log(row('loopless mount (FUSE), image on disk', m.fuseDisk, m.kernelDisk));
    console.log(row('kernel loop mount, warm', m.kernelWarm, m.kernelWarm));
    console.log(row('loopless mount (FUSE), warm', m.fuseWarm, m.kernelWarm));
    console.log(`  all runs (s): ${JSON.stringify(Object.fromEntries(Object.entries(times).map(([k, v]) => [k, v.map((x) => +x.toFixed(2))])))}`);
  } finally {
    spawnSync('umount', [kernelMnt], { env });
    spawnSync('fusermount', ['-u', '-z', fuseMnt], { env });
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const reporting = pauseFreePageReporting();
  console.log(`memory: ${reporting.note}`);
  try {
    await run();
  } finally {
    reporting.restore();
  }
}
