#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript bundled into dist/bundle/ by `npm install` (prepare) or
// `npm run build` (see cli/build.mjs for why a bundle).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'dist', 'bundle', 'main.js');
if (!existsSync(main)) {
  process.stderr.write('loopless: not built yet; run `npm install` (or `npm run build`) in ' + root + '\n');
  process.exit(1);
}
await import(main);
