import { readFileSync, writeFileSync } from 'node:fs';

/**
 * This VM hands memory the guest frees back to the host within seconds
 * (virtio-balloon free page reporting), and the next first touch of such a
 * page costs kernel time: ~2.5 s per GiB here. Every command that fills the
 * page cache then pays by how long ago something else freed memory: a 4 GiB
 * `dd conv=fsync` measured 1.5 s or 10 s, a kernel loop mount's cold 1 GiB
 * read 0.1 s or 1.5 s, run to run. Bare metal and most VMs reuse freed
 * memory at no cost. For the bench, reporting is paused (a reporting order
 * above the largest page order reports nothing) and restored afterwards;
 * each area's warm-up round then backs the memory it needs once.
 */
const ORDER = '/sys/module/page_reporting/parameters/page_reporting_order';
const ABOVE_MAX_ORDER = '11';

/** Pause free page reporting where the machine has it; returns what undoes that. */
export function pauseFreePageReporting(): { note: string; restore: () => void } {
  let before: string;
  try {
    before = readFileSync(ORDER, 'utf8').trim();
  } catch {
    return { note: 'no free page reporting on this machine', restore: () => {} };
  }
  try {
    writeFileSync(ORDER, ABOVE_MAX_ORDER);
  } catch (e) {
    return { note: `free page reporting active (could not pause it: ${(e as Error).message}); page-cache-heavy figures will be noisy`, restore: () => {} };
  }
  return {
    note: `free page reporting paused for the run (page_reporting_order ${before} -> ${ABOVE_MAX_ORDER}; restored at the end)`,
    restore: () => writeFileSync(ORDER, before),
  };
}
