import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, run, tempDir } from '../support/run.js';
import { makeRawDisk } from './support.js';

/**
 * Through the real CLI (built by `npm test`): every container made from a raw
 * disk gives the same `info --json` (apart from the chain and the file size),
 * the same `ls -R --json` and the same file contents as the raw original.
 * Runs on a disk made here, and on every committed sample image.
 */
const repo = join(import.meta.dirname, '..', '..');
const built = existsSync(join(repo, 'dist', 'cli', 'main.js')) && existsSync(join(repo, 'dist', 'parsers', 'source', 'containers', 'index.js'));
const samples = existsSync(join(repo, 'sample-images'))
  ? readdirSync(join(repo, 'sample-images')).filter((n) => n.endsWith('.img')).map((n) => join(repo, 'sample-images', n))
  : [];
/** Files hashed per volume: every volume's filesystem is read, at a bounded number of CLI runs. */
const FILES_PER_VOLUME = 3;

const tmp = tempDir('loopless-containers-cli-');
afterAll(() => tmp.cleanup());
let generated: string;
beforeAll(() => {
  generated = makeRawDisk(tmp.dir);
});

const containers: [string, (raw: string, out: string) => void][] = [
  ['qcow2', (raw, out) => run('qemu-img', ['convert', '-c', '-O', 'qcow2', raw, out])],
  ['vhdx', (raw, out) => run('qemu-img', ['convert', '-O', 'vhdx', raw, out])],
  ['vhd', (raw, out) => run('qemu-img', ['convert', '-O', 'vpc', '-o', 'force_size=on', raw, out])],
  ['vmdk', (raw, out) => run('qemu-img', ['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, out])],
  ['vdi', (raw, out) => run('qemu-img', ['convert', '-O', 'vdi', raw, out])],
  ['gzip', (raw, out) => run('sh', ['-c', 'gzip -1 -c < "$1" > "$2"', 'sh', raw, out])],
  ['zstd', (raw, out) => run('sh', ['-c', 'pzstd -q -p 1 -c < "$1" > "$2"', 'sh', raw, out])],
];

function json(args: string[]): unknown {
  const r = cli(args);
  if (r.status !== 0) throw new Error(`loopless ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.toString('utf8'));
}

function lsAll(image: string): { path: string; type: string }[] {
  const r = cli(['ls', '-R', '--json', image, '/']);
  if (r.status !== 0) throw new Error(`ls exited ${r.status}: ${r.stderr}`);
  const text = r.stdout.toString('utf8').trim();
  return text.startsWith('[') ? JSON.parse(text) : text.split('\n').map((l) => JSON.parse(l));
}

function hashes(image: string, files: string[]): string[] {
  return files.map((f) => {
    const r = cli(['cat', image, f]);
    if (r.status !== 0) throw new Error(`loopless cat ${image} ${f} exited ${r.status}: ${r.stderr}`);
    return createHash('sha256').update(r.stdout).digest('hex');
  });
}

interface Truth {
  info: Record<string, unknown>;
  listing: { path: string; type: string }[];
  files: string[];
  hashes: string[];
}
const truths = new Map<string, Truth>();

/** What the raw original shows, computed once per image. */
function truth(raw: string): Truth {
  let t = truths.get(raw);
  if (!t) {
    const info = json(['info', '--json', raw]) as Record<string, unknown>;
    const listing = lsAll(raw);
    expect(listing.length).toBeGreaterThan(0);
    const perVolume = new Map<string, string[]>();
    for (const e of listing) {
      if (e.type !== 'file') continue;
      const volume = e.path.split('/')[1];
      const list = perVolume.get(volume) ?? [];
      if (list.length < FILES_PER_VOLUME) list.push(e.path);
      perVolume.set(volume, list);
    }
    const files = [...perVolume.values()].flat();
    t = { info, listing, files, hashes: hashes(raw, files) };
    truths.set(raw, t);
  }
  return t;
}

describe.skipIf(!built)('the CLI sees the same disk through every container', () => {
  const images = () => [generated, ...samples];
  it.each(containers)('%s', { timeout: 600_000 }, (name, make) => {
    for (const raw of images()) {
      const { info, listing, files, hashes: rawHashes } = truth(raw);

      const out = join(tmp.dir, `${raw.split('/').pop()}.${name}`);
      make(raw, out);
      const wrapped = json(['info', '--json', out]) as Record<string, unknown>;
      expect(wrapped.chain).toEqual([name]);
      const { chain: _a, fileSize: _b, ...rest } = wrapped;
      const { chain: _c, fileSize: _d, ...restRaw } = info;
      expect(rest).toEqual(restRaw);
      expect(lsAll(out)).toEqual(listing);
      expect(hashes(out, files)).toEqual(rawHashes);
    }
  });
});
