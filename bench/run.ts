import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `npm run bench [area ...]`: every area's figures in one run, as ratios
 * against the kernel, the Sleuth Kit and dd/bmaptool. Areas live in
 * bench/<area>.ts and export run().
 */
const AREAS = ['ext', 'fat', 'ntfs', 'fuse', 'containers', 'restore', 'server'];

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const areas = wanted.length ? wanted : AREAS;
let failed = 0;
for (const area of areas) {
  const file = join(import.meta.dirname, `${area}.js`);
  if (!existsSync(file)) {
    process.stdout.write(`\n== ${area}: no bench yet ==\n`);
    continue;
  }
  try {
    const mod = (await import(file)) as { run: () => Promise<void> };
    await mod.run();
  } catch (e) {
    failed++;
    process.stdout.write(`\n== ${area}: bench failed: ${e instanceof Error ? e.message : String(e)} ==\n`);
  }
}
process.exitCode = failed ? 1 : 0;
