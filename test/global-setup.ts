import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Records the sha256 of every sample image before the suite and proves after
 * it that none changed: a source image is never written.
 */
const dir = join(import.meta.dirname, '..', 'sample-images');

function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (d) => h.update(d)).on('error', reject).on('end', () => resolve(h.digest('hex')));
  });
}

async function hashAll(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.img')).sort()) out.set(name, await hashFile(join(dir, name)));
  return out;
}

let before: Map<string, string>;

export async function setup(): Promise<void> {
  before = await hashAll();
}

export async function teardown(): Promise<void> {
  const after = await hashAll();
  const changed = [...before].filter(([name, sum]) => after.get(name) !== sum).map(([name]) => name);
  if (changed.length) throw new Error(`sample images were modified by the test suite: ${changed.join(', ')}`);
}
