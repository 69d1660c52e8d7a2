import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openImage } from '../parsers/source/open.js';
import { fmt, heading, loopless, ratio, row, sh, tempDir, time, type Timing } from './lib.js';

/**
 * Issue 8: reading a 1 GiB file out of a qcow2, a VHDX and an .img.gz,
 * against the raw image and against what a user would otherwise do first
 * (qemu-img convert / gunzip to a raw file, then read). Also the gzip seek
 * index: build time on first open, reopen time, and its size on disk.
 *
 * The file is half random (incompressible) and half text, so compressors and
 * sparse formats meet both kinds of data. Every consumer is `| cat > /dev/null`.
 */
const RUNS = 3;

export async function run(): Promise<void> {
  const tmp = tempDir('loopless-bench-containers-');
  try {
    heading('containers: cat of a 1 GiB file (median of 3, image files warm in the page cache)');
    const src = join(tmp.dir, 'src');
    const img = join(tmp.dir, 'disk.img');
    sh(`mkdir -p ${src} && head -c 512M /dev/urandom > ${src}/big.bin`);
    sh(`yes 'Loopless reads disk images in userspace: partition tables, ext, FAT, exFAT and NTFS.' | head -c 512M >> ${src}/big.bin`);
    sh(`mkfs.ext4 -q -F -d ${src} ${img} 1200M && rm -rf ${src}`);
    const qcow2 = join(tmp.dir, 'disk.qcow2');
    const vhdx = join(tmp.dir, 'disk.vhdx');
    const gz = join(tmp.dir, 'disk.img.gz');
    sh(`qemu-img convert -O qcow2 ${img} ${qcow2}`);
    sh(`qemu-img convert -O vhdx ${img} ${vhdx}`);
    sh(`pigz -p 2 -6 -c ${img} > ${gz}`);
    for (const f of [img, qcow2, vhdx, gz]) sh(`cat ${f} > /dev/null`);
    const sizes = [img, qcow2, vhdx, gz].map((f) => `${f.split('/').pop()} ${(statSync(f).size / 2 ** 20).toFixed(0)} MiB`).join(', ');
    row('files', sizes);

    const cacheDir = join(tmp.dir, 'cache');
    const cat = (image: string) => `LOOPLESS_CACHE_DIR=${cacheDir} ${loopless} cat ${image} /fs/big.bin | cat > /dev/null`;
    const scratch = join(tmp.dir, 'scratch.img');

    // gzip index: first open builds it (timed in-process, with progress), reopen uses it.
    let t = performance.now();
    let progressCalls = 0;
    const first = await openImage(gz, { cacheDir, onProgress: () => progressCalls++ });
    const buildSeconds = (performance.now() - t) / 1000;
    await first.source.close();
    const indexFiles = readdirSync(cacheDir).filter((n) => n.endsWith('.idx'));
    const indexBytes = indexFiles.reduce((s, n) => s + statSync(join(cacheDir, n)).size, 0);
    t = performance.now();
    const again = await openImage(gz, { cacheDir });
    const reopenMs = performance.now() - t;
    const checkpoints = /(\d+) checkpoints/.exec(again.source.description)?.[1] ?? '?';
    await again.source.close();

    const raw = time(cat(img), RUNS);
    row('raw image', fmt(raw));
    const rows: [string, Timing, string, Timing][] = [];
    for (const [label, image, convert] of [
      ['qcow2', qcow2, `qemu-img convert -O raw ${qcow2} ${scratch}`],
      ['VHDX', vhdx, `qemu-img convert -O raw ${vhdx} ${scratch}`],
      ['img.gz', gz, `gunzip -c ${gz} > ${scratch}`],
    ] as const) {
      const ours = time(cat(image), RUNS);
      const firstConvert = time(`${convert} && ${cat(scratch)} && rm -f ${scratch}`, 1);
      rows.push([label, ours, convert.split(' ')[0], firstConvert]);
      row(`${label} through loopless`, `${fmt(ours)}  -> ${ratio(raw, ours)} the speed of raw`);
      row(`${label}: ${convert.split(' ')[0]} to raw, then cat`, `${fmt(firstConvert)}  -> loopless is ${ratio(firstConvert, ours)} faster`);
    }

    heading('gzip seek index');
    row('build on first open (one full pass)', `${buildSeconds.toFixed(2)} s for ${(statSync(gz).size / 2 ** 20).toFixed(0)} MiB compressed, ${progressCalls} progress reports`);
    row('index size on disk', `${(indexBytes / 2 ** 20).toFixed(2)} MiB (${checkpoints} checkpoints, ${((100 * indexBytes) / statSync(gz).size).toFixed(2)}% of the .gz)`);
    row('reopen with the cached index', `${reopenMs.toFixed(0)} ms`);
  } finally {
    tmp.cleanup();
  }
}
