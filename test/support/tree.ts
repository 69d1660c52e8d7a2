import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, lutimesSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What was put into an image: the comparison side of every round-trip test. */
export interface TruthEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  mode: number;
  mtime: string;
  sha256?: string;
  target?: string;
}

const T0 = Date.UTC(2021, 2, 4, 5, 6, 8) / 1000;

/** A small tree with the cases the CLI must get right. Even-second mtimes (FAT-safe). */
export function makeTree(root: string): void {
  mkdirSync(root, { recursive: true });
  const file = (rel: string, content: string | Buffer, mode = 0o644, t = T0) => {
    const p = join(root, rel);
    writeFileSync(p, content);
    chmodSync(p, mode);
    utimesSync(p, t, t);
  };
  const dir = (rel: string, mode = 0o755) => {
    mkdirSync(join(root, rel), { recursive: true });
    chmodSync(join(root, rel), mode);
  };
  dir('docs');
  dir('docs/deep/er/and/deeper');
  dir('empty-dir');
  dir('private', 0o700);
  dir('Ünïcødé');
  file('docs/readme.txt', 'hello loopless\n');
  file('docs/deep/er/and/deeper/bottom.txt', 'bottom\n', 0o640, T0 + 2);
  file('empty.txt', '');
  file('private/secret.bin', Buffer.alloc(70000, 7), 0o600, T0 + 4);
  file('run.sh', '#!/bin/sh\necho hi\n', 0o755);
  file('setuid-tool', 'x', 0o4755);
  file('Ünïcødé/日本語.txt', 'こんにちは\n');
  file('x'.repeat(200), 'long name\n');
  file('big.dat', Buffer.alloc(3 * 1024 * 1024 + 123, 'loopless-pattern-'));
  symlinkSync('docs/readme.txt', join(root, 'fast-link'));
  symlinkSync('docs/deep/er/and/deeper/' + 'y'.repeat(80), join(root, 'slow-link'));
  symlinkSync('/nowhere/at/all', join(root, 'dangling'));
  for (const l of ['fast-link', 'slow-link', 'dangling']) lutimesSync(join(root, l), T0, T0);
  // Directory mtimes last: creating children bumps them.
  for (const d of ['docs/deep/er/and/deeper', 'docs/deep/er/and', 'docs/deep/er', 'docs/deep', 'docs', 'empty-dir', 'private', 'Ünïcødé']) utimesSync(join(root, d), T0, T0);
}

/** Read a tree from the host the same way the manifests describe images. */
export function readTree(root: string, prefix: string): TruthEntry[] {
  const out: TruthEntry[] = [];
  const visit = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(root, r);
      const st = lstatSync(p);
      const base = { path: `${prefix}/${r}`, mode: st.mode & 0o7777, mtime: new Date(Math.floor(st.mtimeMs)).toISOString() };
      if (st.isDirectory()) {
        out.push({ ...base, type: 'dir', size: 0 });
        visit(r);
      } else if (st.isSymbolicLink()) {
        const target = readlinkSync(p);
        out.push({ ...base, type: 'symlink', size: Buffer.byteLength(target), target });
      } else if (st.isFile()) {
        out.push({ ...base, type: 'file', size: st.size, sha256: createHash('sha256').update(readFileSync(p)).digest('hex') });
      } else out.push({ ...base, type: 'other', size: 0 });
    }
  };
  visit('');
  return out;
}
