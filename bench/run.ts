import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pauseFreePageReporting } from './memory.js';

/**
 * `npm run bench [area ...]`: every area's figures in one run, as ratios
 * against the kernel, the Sleuth Kit and dd/bmaptool. Areas live in
 * bench/<area>.ts and export run().
 */
const AREAS = ['ext', 'fat', 'ntfs', 'fuse', 'containers', 'restore', 'server'];

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const areas = wanted.length ? wanted : AREAS;
async function runArea(area: string): Promise<boolean> {
  const file = join(import.meta.dirname, `${area}.js`);
  if (!existsSync(file)) {
    process.stdout.write(`\n== ${area}: no bench yet ==\n`);
    return true;
  }
  try {
    const mod = (await import(file)) as { run: () => Promise<void> };
    await mod.run();
    return true;
  } catch (e) {
    process.stdout.write(`\n== ${area}: bench failed: ${e instanceof Error ? e.message : String(e)} ==\n`);
    return false;
  }
}

let failed = 0;
const reporting = pauseFreePageReporting();
process.stdout.write(`memory: ${reporting.note}\n`);
try {
  for (const area of areas) if (!(await runArea(area))) failed++;
} finally {
  reporting.restore();
}
process.exitCode = failed ? 1 : 0;
