// Bundles the command line (cli/main.ts and what it imports from this
// repository) with esbuild into dist/bundle/, which bin/loopless.js runs.
// Why: loading ~110 separate ES modules took ~0.15 s of every command's
// start-up (a third of `loopless cat` of a 1 GiB file); one bundle loads in a
// fraction of that. Commands stay lazily loaded (code splitting keeps each
// dynamic import() its own chunk); npm packages stay external.
// `node cli/build.mjs [OUTDIR]`.
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = process.argv[2] ?? join(root, 'dist', 'bundle');

// Chunk names carry content hashes: old ones would pile up.
await rm(out, { recursive: true, force: true });
await build({
  entryPoints: {
    main: join(root, 'cli', 'main.ts'),
    // restore/verify.ts starts it as new URL('./verify-worker.js', import.meta.url): it must sit beside the chunks.
    'verify-worker': join(root, 'restore', 'verify-worker.ts'),
  },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: ['node20'],
  packages: 'external',
  outdir: out,
  logLevel: 'warning',
});
