import { join } from 'node:path';
import { hasTool, heading, isRoot, loopless, row, sh, tempDir, time, type Timing } from './lib.js';

/**
 * Issue 7's targets, in one run: whole-disk restore of a 2 GiB GPT image
 * whose ext4 filesystem is ~10% used and of one ~90% used, against
 * `dd bs=4M conv=fsync` and `bmaptool copy` with a block map. Targets:
 * <= 0.2x dd's time at 10% used, no slower than bmaptool, >= 0.9x dd's
 * throughput at 90% used.
 *
 * The images are written out fully (no holes), as a dd image of a real disk
 * is: bmaptool's own map (`bmaptool create`, from holes) then maps it all,
 * while Loopless's map comes from the allocation bitmaps. bmaptool is timed
 * with both maps. Every command writes a fresh file target on the same disk
 * and ends with its data synced; the image is in the page cache.
 */
const IMAGE_MIB = 2048;
const RUNS = 3;

export async function run(): Promise<void> {
  const tmp = tempDir('loopless-bench-restore-');
  try {
    for (const usedPercent of [10, 90]) {
      heading(`restore: ${IMAGE_MIB} MiB GPT image, ext4 ${usedPercent}% used, file target (median of ${RUNS})`);
      const image = buildImage(tmp.dir, usedPercent);
      const target = join(tmp.dir, 'target.img');
      const mib = (t: Timing) => `${(IMAGE_MIB / t.seconds).toFixed(0)} MiB/s`;
      const show = (label: string, t: Timing, extra = '') => row(label, `${t.seconds.toFixed(2)} s  ${mib(t)} of image  (peak RSS ${t.peakRssMb.toFixed(0)} MB)${extra}`);
      sh(`cat ${image} > /dev/null`);

      const dd = time(`rm -f ${target} && dd if=${image} of=${target} bs=4M conv=fsync status=none`, RUNS);
      show('dd bs=4M conv=fsync', dd);
      const ours = time(`rm -f ${target} && ${loopless} restore ${image} ${target} > /dev/null`, RUNS);
      show('loopless restore (verified)', ours);
      const oursNoVerify = time(`rm -f ${target} && ${loopless} restore --no-verify ${image} ${target} > /dev/null`, RUNS);
      show('loopless restore --no-verify', oursNoVerify);

      const ratioDd = ours.seconds / dd.seconds;
      if (usedPercent === 10) row('  time vs dd', `${ratioDd.toFixed(3)}x dd's time (target <= 0.20x)`);
      else row('  throughput vs dd', `${(dd.seconds / ours.seconds).toFixed(2)}x dd's throughput (target >= 0.90x)`);

      if (hasTool('bmaptool')) {
        const ourMap = join(tmp.dir, 'loopless.bmap');
        const theirMap = join(tmp.dir, 'bmaptool.bmap');
        sh(`${loopless} bmap ${image} -o ${ourMap} --force && bmaptool -q create ${image} -o ${theirMap}`);
        const bmapCreate = time(`${loopless} bmap ${image} -o ${ourMap} --force`, 1);
        row('loopless bmap (map + sha256 of mapped data)', `${bmapCreate.seconds.toFixed(2)} s`);
        const theirs = time(`rm -f ${target} && bmaptool -q copy --bmap ${theirMap} ${image} ${target}`, RUNS);
        show('bmaptool copy, map from bmaptool create', theirs);
        const withOurs = time(`rm -f ${target} && bmaptool -q copy --bmap ${ourMap} ${image} ${target}`, RUNS);
        show('bmaptool copy, map from loopless bmap', withOurs);
        row('  loopless vs bmaptool (its own map)', `${(theirs.seconds / ours.seconds).toFixed(2)}x faster (target >= 1.00x)`);
        row('  loopless vs bmaptool (same map)', `${(withOurs.seconds / ours.seconds).toFixed(2)}x faster (bmaptool does not read back)`);
      } else row('bmaptool', 'not installed (apt-get install bmap-tools)');
      sh(`rm -f ${image} ${target}`);
    }
    if (!isRoot) row('note', 'block-device targets need root; this bench uses file targets only');
  } finally {
    tmp.cleanup();
  }
}

/**
 * A GPT disk with one ext4 partition filled with random data to
 * `usedPercent`, written out with no holes (cp --sparse=never).
 */
function buildImage(dir: string, usedPercent: number): string {
  const sparse = join(dir, `sparse-${usedPercent}.img`);
  const image = join(dir, `disk-${usedPercent}.img`);
  const tree = join(dir, `tree-${usedPercent}`);
  const partMiB = IMAGE_MIB - 2;
  const dataMiB = Math.floor((partMiB * usedPercent) / 100) - 40; // ext4's own metadata and journal take ~40 MiB
  const files = 16;
  const perFile = Math.floor(dataMiB / files);
  sh(`mkdir -p ${tree} && for i in $(seq 1 ${files}); do head -c ${perFile}M /dev/urandom > ${tree}/f$i.bin; done`);
  sh(`truncate -s ${IMAGE_MIB}M ${sparse} && sgdisk -o -n1:2048:0 -t1:8300 ${sparse} > /dev/null`);
  const sectors = Number(sh(`sgdisk -i1 ${sparse} | sed -n 's/^Partition size: \\([0-9]*\\) sectors.*/\\1/p'`).trim());
  sh(`mkfs.ext4 -q -F -d ${tree} -E offset=${2048 * 512} ${sparse} ${Math.floor((sectors * 512) / 1024)}K`);
  sh(`cp --sparse=never ${sparse} ${image} && rm -rf ${sparse} ${tree} && sync`);
  return image;
}
