import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Where the built page lives: dist/web/ of the package, found by walking up
 * from this module (it runs from dist/server/ when installed and from
 * server/ in the tests).
 */
export function defaultWebRoot(): string {
  let dir = import.meta.dirname;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'loopless') return join(dir, 'dist', 'web');
    const up = dirname(dir);
    if (up === dir) return join(import.meta.dirname, '..', 'web');
    dir = up;
  }
}
