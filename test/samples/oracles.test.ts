/**
 * Proves the committed truth manifests (sample-images/*.manifest.json) are the
 * truth, independently of our parsers: every image is read with peer tools
 * (sfdisk, sgdisk, blkid, debugfs, mtools, the Sleuth Kit) and compared with
 * its manifest: partition tables, labels and UUIDs, and every entry's name,
 * type, size, sha256 (and mtime, mode, symlink target where the tool tells).
 *
 * Read-only: debugfs and the Sleuth Kit open the images read-only; mtools
 * gets a copy of the FAT volume. A check whose tool is missing is skipped and
 * says so in its name.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allManifests, samples, type ManifestEntry, type ManifestVolume } from '../support/manifests.js';
import { isRoot, tempDir } from '../support/run.js';

/** What a peer tool saw at one path. Fields it cannot tell are left out. */
interface Seen {
  type: ManifestEntry['type'] | 'file-or-dir';
  size?: number;
  sha256?: string;
  target?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtimeSec?: number;
}

const ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? '/usr/bin:/bin'}`, TZ: 'UTC', LC_ALL: 'C.UTF-8', MTOOLS_SKIP_CHECK: '1' };
const manifests = allManifests();

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { env: ENV }).status === 0;
}
const tools = Object.fromEntries(['sfdisk', 'sgdisk', 'blkid', 'debugfs', 'mcopy', 'mattrib', 'fls', 'icat', 'tsk_recover'].map((t) => [t, has(t)]));
const missing = (...need: string[]) => need.filter((t) => !tools[t]);
const label = (title: string, ...need: string[]) => (missing(...need).length ? `${title} (skipped: ${missing(...need).join(', ')} not installed)` : title);

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 512 * 1024 * 1024 });
}
function runBuffer(cmd: string, args: string[]): Buffer {
  return execFileSync(cmd, args, { env: ENV, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 512 * 1024 * 1024 });
}
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const sec = (iso: string) => Math.floor(Date.parse(iso) / 1000);

const tmp = tempDir('loopless-oracles-');
afterAll(() => tmp.cleanup());

/** A host directory tree (extracted by a peer tool) as Seen entries under `prefix`. */
function readHostTree(root: string, prefix: string, opts: { modes: boolean; owners: boolean; dirTimes: boolean }): Map<string, Seen> {
  const out = new Map<string, Seen>();
  const visit = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(root, r);
      const st = lstatSync(p);
      const seen: Seen = st.isDirectory() ? { type: 'dir' } : st.isSymbolicLink() ? { type: 'symlink', target: readlinkSync(p) } : st.isFile() ? { type: 'file', size: st.size, sha256: sha256(readFileSync(p)) } : { type: 'other' };
      if (opts.modes && !st.isSymbolicLink()) seen.mode = st.mode & 0o7777;
      if (opts.owners) Object.assign(seen, { uid: st.uid, gid: st.gid });
      if (st.isFile() || (opts.dirTimes && st.isDirectory())) seen.mtimeSec = Math.floor(st.mtimeMs / 1000);
      out.set(`${prefix}/${r}`, seen);
      if (st.isDirectory()) visit(r);
    }
  };
  visit('');
  return out;
}

/** Differences between the manifest's entries of one volume and what a tool saw. */
function compare(expected: ManifestEntry[], seen: Map<string, Seen>, skip: (e: ManifestEntry) => boolean = () => false): string[] {
  const problems: string[] = [];
  const want = expected.filter((e) => !skip(e));
  const wanted = new Set(want.map((e) => e.path));
  for (const p of seen.keys()) if (!wanted.has(p) && !expected.some((e) => e.path === p)) problems.push(`${p}: seen but not in the manifest`);
  for (const e of want) {
    const s = seen.get(e.path);
    if (!s) {
      problems.push(`${e.path}: in the manifest, not seen`);
      continue;
    }
    const check = (field: string, a: unknown, b: unknown) => a !== undefined && a !== b && problems.push(`${e.path}: ${field} ${JSON.stringify(a)} != manifest ${JSON.stringify(b)}`);
    if (s.type !== 'file-or-dir') check('type', s.type, e.type);
    if (e.type === 'file') {
      check('size', s.size, e.size);
      check('sha256', s.sha256, e.sha256);
    }
    if (e.type === 'symlink') check('target', s.target, e.target);
    check('mode', s.mode, e.mode);
    check('uid', s.uid, e.uid);
    check('gid', s.gid, e.gid);
    if (s.mtimeSec !== undefined && e.mtime < '2038') check('mtime', s.mtimeSec, sec(e.mtime));
  }
  return problems;
}

/** Copy one volume out of an image (for tools that may open their input read-write). */
function copySlice(image: string, start: number, size: number, dest: string): string {
  const src = openSync(image, 'r');
  const dst = openSync(dest, 'w');
  const buf = Buffer.alloc(1 << 20);
  for (let off = 0; off < size; ) {
    const n = readSync(src, buf, 0, Math.min(buf.length, size - off), start + off);
    if (n <= 0) break;
    writeSync(dst, buf, 0, n);
    off += n;
  }
  closeSync(src);
  closeSync(dst);
  return dest;
}

// ---------------------------------------------------------------- Sleuth Kit
interface FlsEntry {
  kind: string;
  inode: string;
  path: string;
  deleted: boolean;
  mtimeSec: number;
  size: number;
}
/** `fls -r -p -l`: every name with its inode address, mtime and size. */
function fls(image: string, sector: number): FlsEntry[] {
  const out: FlsEntry[] = [];
  for (const line of run('fls', ['-r', '-p', '-l', '-o', String(sector), image]).split('\n')) {
    const m = /^(\S+) (\*?\s*)([\d-]+)(?:\(realloc\))?:\t([^\t]*)\t([^\t]*)\t[^\t]*\t[^\t]*\t[^\t]*\t(\d+)/.exec(line);
    if (!m) continue;
    out.push({ kind: m[1], deleted: m[2].includes('*'), inode: m[3], path: `/${m[4]}`, mtimeSec: sec(m[5].replace(' (UTC)', 'Z').replace(' ', 'T')), size: Number(m[6]) });
  }
  return out;
}

/** Names a user sees: no deleted entries, metafiles, streams or exFAT/NTFS bookkeeping. */
function userEntries(entries: FlsEntry[]): FlsEntry[] {
  return entries.filter((e) => !e.deleted && !/^\/\$/.test(e.path) && !e.path.includes(':') && !e.path.endsWith('(Volume Label Entry)') && !e.path.startsWith('/$OrphanFiles'));
}

/** Regular files of a volume as the Sleuth Kit reads them: size from fls, bytes from tsk_recover. */
function tskFiles(image: string, vol: ManifestVolume, dest: string): Map<string, { size: number; sha256: string; mtimeSec: number }> {
  const sector = String(vol.start / 512);
  mkdirSync(dest);
  run('tsk_recover', ['-a', '-o', sector, image, dest]); // allocated files with data; not empty ones
  const out = new Map<string, { size: number; sha256: string; mtimeSec: number }>();
  for (const e of userEntries(fls(image, vol.start / 512)).filter((x) => x.kind === 'r/r')) {
    out.set(`/${vol.name}${e.path}`, { size: e.size, sha256: sha256(e.size === 0 ? Buffer.alloc(0) : readFileSync(join(dest, e.path))), mtimeSec: e.mtimeSec });
  }
  return out;
}

/** A REPARSE_DATA_BUFFER's tag, names and flags. */
function reparse(buf: Buffer): { tag: number; substituteName: string; printName: string; flags?: number } {
  const tag = buf.readUInt32LE(0);
  const [subOff, subLen, prnOff, prnLen] = [8, 10, 12, 14].map((o) => buf.readUInt16LE(o));
  const body = tag === 0xa000000c ? 20 : 16;
  const name = (off: number, len: number) => buf.subarray(body + off, body + off + len).toString('utf16le');
  return { tag, substituteName: name(subOff, subLen), printName: name(prnOff, prnLen), flags: tag === 0xa000000c ? buf.readUInt32LE(16) : undefined };
}

/** blkid -o export prints non-ASCII bytes in `cat -v` notation (M-CM-^\\ for 0xC3 0x9C). */
function unCatV(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    let high = 0;
    if (s.startsWith('M-', i)) {
      high = 0x80;
      i += 2;
    }
    if (s[i] === '^' && i + 1 < s.length) {
      bytes.push(high | (s[i + 1] === '?' ? 0x7f : s.charCodeAt(i + 1) ^ 0x40));
      i += 2;
    } else {
      bytes.push(high | s.charCodeAt(i));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

// ---------------------------------------------------------------- tests
it('the comparison reports every kind of difference (so the checks below can fail)', () => {
  const base = { mode: 0o644, uid: 0, gid: 0, mtime: '2021-03-04T05:06:08.000Z' };
  const want: ManifestEntry[] = [
    { ...base, path: '/p1/a', type: 'file', size: 1, sha256: 'aa' },
    { ...base, path: '/p1/l', type: 'symlink', size: 1, target: 'a' },
    { ...base, path: '/p1/gone', type: 'dir', size: 0 },
  ];
  const seen = new Map<string, Seen>([
    ['/p1/a', { type: 'file', size: 2, sha256: 'bb', mode: 0o600, mtimeSec: 0 }],
    ['/p1/l', { type: 'symlink', target: 'b' }],
    ['/p1/extra', { type: 'file' }],
  ]);
  expect(compare(want, seen).map((p) => p.split(':')[0] + ':' + p.split(':')[1].split(' ')[1])).toEqual([
    '/p1/extra:seen', '/p1/a:size', '/p1/a:sha256', '/p1/a:mode', '/p1/a:mtime', '/p1/l:target', '/p1/gone:in',
  ]);
});

it('the sample images, their manifests and SHA256SUMS are committed and agree', () => {
  expect(manifests.map((m) => m.image).sort()).toEqual(['ext4-bare.img', 'fat12-floppy.img', 'gpt.img', 'mbr.img']);
  const sums = readFileSync(join(samples, 'SHA256SUMS'), 'utf8').trim().split('\n').map((l) => l.split(/\s+\*?/));
  expect(sums.map(([, n]) => n).sort()).toEqual(manifests.map((m) => m.image).sort());
  for (const [sum, name] of sums) expect({ name, sum: sha256(readFileSync(join(samples, name))) }).toEqual({ name, sum });
  for (const m of manifests) {
    expect(lstatSync(join(samples, m.image)).size).toBe(m.size);
    for (const e of m.entries) {
      expect(m.volumes.some((v) => e.path.startsWith(`/${v.name}/`)), e.path).toBe(true);
      expect(e.mtime, e.path).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(e.type === 'file' ? /^[0-9a-f]{64}$/.test(e.sha256 ?? '') : e.sha256 === undefined, e.path).toBe(true);
      expect(e.type === 'symlink' ? typeof e.target === 'string' : e.target === undefined, e.path).toBe(true);
    }
  }
});

describe.each(manifests.map((m) => [m.image, m] as const))('%s', (_name, manifest) => {
  const image = join(samples, manifest.image);

  if (manifest.table !== 'none') it(label('partition table matches sfdisk --json', 'sfdisk'), () => {
    if (missing('sfdisk').length) return;
    const table = JSON.parse(run('sfdisk', ['--json', image])).partitiontable;
    expect(table.label).toBe(manifest.table === 'mbr' ? 'dos' : 'gpt');
    const parts = (table.partitions as { node: string; start: number; size: number; type: string; name?: string }[]).map((p) => ({
      name: `p${/(\d+)$/.exec(p.node)![1]}`,
      start: p.start * 512,
      size: p.size * 512,
      type: manifest.table === 'mbr' ? `0x${p.type.padStart(2, '0')}` : p.type.toLowerCase(),
      partName: p.name,
    }));
    const extended = parts.filter((p) => ['0x05', '0x0f', '0x85'].includes(p.type));
    const volumes = parts.filter((p) => !extended.includes(p));
    expect(volumes.map(({ name, start, size, type }) => ({ name, start, size, type }))).toEqual(manifest.volumes.map(({ name, start, size, type }) => ({ name, start, size, type })));
    if (manifest.table === 'gpt') expect(volumes.map((p) => p.partName)).toEqual(manifest.volumes.map((v) => v.facts?.gptName));
    const recorded = manifest.volumes.map((v) => v.facts?.extendedPartition).filter(Boolean);
    expect(extended.map(({ start, size, type }) => ({ start, size, type }))).toEqual(recorded);
  });

  if (manifest.table === 'gpt') it(label('GPT matches sgdisk -p', 'sgdisk'), () => {
    if (missing('sgdisk').length) return;
    const out = run('sgdisk', ['-p', image]);
    const rows = [...out.matchAll(/^\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d.]+ \S+\s+[0-9A-F]{4}\s+(.*)$/gm)].map((m) => ({
      name: `p${m[1]}`,
      start: Number(m[2]) * 512,
      size: (Number(m[3]) - Number(m[2]) + 1) * 512,
      partName: m[4].trim(),
    }));
    expect(rows).toEqual(manifest.volumes.map((v) => ({ name: v.name, start: v.start, size: v.size, partName: v.facts?.gptName })));
    expect(run('sgdisk', ['-v', image])).toContain('No problems found');
  });

  if (manifest.table === 'none') it(label('a table-less image has no partitions (sfdisk)', 'sfdisk'), () => {
    if (missing('sfdisk').length) return;
    const r = spawnSync('sfdisk', ['--json', image], { env: ENV, encoding: 'utf8' });
    const partitions = r.status === 0 ? (JSON.parse(r.stdout).partitiontable.partitions ?? []) : [];
    expect(partitions).toEqual([]);
    expect(manifest.volumes).toMatchObject([{ name: 'fs', start: 0, size: manifest.size, type: 'none' }]);
  });

  it(label('filesystem type, label and UUID match blkid -p at each offset', 'blkid'), () => {
    if (missing('blkid').length) return;
    for (const v of manifest.volumes) {
      const r = spawnSync('blkid', ['-p', '-o', 'export', '-O', String(v.start), '-S', String(v.size), image], { env: ENV, encoding: 'utf8' });
      const got = Object.fromEntries(r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), unCatV(l.slice(l.indexOf('=') + 1))]));
      if (v.fs === null) {
        expect({ volume: v.name, type: got.TYPE }).toEqual({ volume: v.name, type: undefined });
        continue;
      }
      const fs = got.TYPE === 'vfat' ? (got.VERSION ?? '').toLowerCase() : got.TYPE;
      expect({ volume: v.name, fs, label: got.LABEL ?? null, uuid: got.UUID ?? null }).toEqual({ volume: v.name, fs: v.fs, label: v.label, uuid: v.uuid });
    }
  });

  for (const vol of manifest.volumes.filter((v) => v.fs !== null)) {
    const entries = manifest.entries.filter((e) => e.path.startsWith(`/${vol.name}/`));
    const prefix = `/${vol.name}`;

    if (vol.fs!.startsWith('ext')) {
      it(label(`${vol.name} (${vol.fs}): every entry matches debugfs rdump (and icat for inline data)`, 'debugfs'), () => {
        if (missing('debugfs').length) return;
        const dev = `${image}?offset=${vol.start}`; // debugfs opens read-only without -w
        const debugfs = (cmd: string) => run('debugfs', ['-R', cmd, dev]);
        const dest = join(tmp.dir, `${manifest.image}-${vol.name}`);
        mkdirSync(dest);
        const r = spawnSync('debugfs', ['-R', `rdump / ${dest}`, dev], { env: ENV, encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        // rdump restores modes, owners (as root) and file/dir mtimes (32-bit seconds); not fifos.
        const seen = readHostTree(dest, prefix, { modes: isRoot, owners: isRoot, dirTimes: true });
        // rdump chmods before it chowns, so setuid/setgid bits are lost: ask debugfs stat.
        for (const e of entries.filter((x) => x.mode & 0o6000)) {
          const mode = /Mode:\s+(\d+)/.exec(debugfs(`stat "${e.path.slice(prefix.length)}"`))![1];
          if (seen.has(e.path) && isRoot) seen.get(e.path)!.mode = parseInt(mode, 8);
        }
        // debugfs 1.47.0 dumps an inline-data file padded to 60 bytes; the Sleuth Kit reads it right.
        if (/Filesystem features:.*inline_data/.test(debugfs('stats -h'))) {
          if (missing('fls', 'tsk_recover').length) throw new Error(`${vol.name} has inline data: needs the Sleuth Kit (fls, tsk_recover) to check contents`);
          for (const [path, s] of tskFiles(image, vol, `${dest}.tsk`)) {
            if (seen.get(path)?.type === 'file') Object.assign(seen.get(path)!, { size: s.size, sha256: s.sha256 });
          }
        }
        expect(compare(entries, seen, (e) => e.type === 'other').slice(0, 20)).toEqual([]);
        for (const e of entries.filter((x) => x.type === 'other')) {
          expect({ path: e.path, stat: /Type: (\w+)/.exec(debugfs(`stat "${e.path.slice(prefix.length)}"`))?.[1] }).toEqual({ path: e.path, stat: 'FIFO' });
        }
      });
    }

    if (vol.fs!.startsWith('fat')) {
      it(label(`${vol.name} (${vol.fs}): every entry matches mcopy and mattrib`, 'mcopy', 'mattrib'), () => {
        if (missing('mcopy', 'mattrib').length) return;
        const copy = copySlice(image, vol.start, vol.size, join(tmp.dir, `${manifest.image}-${vol.name}.fat`));
        const dest = join(tmp.dir, `${manifest.image}-${vol.name}`);
        mkdirSync(dest);
        run('mcopy', ['-s', '-m', '-n', '-i', copy, '::/*', `${dest}/`]);
        const seen = readHostTree(dest, prefix, { modes: false, owners: false, dirTimes: true });
        // FAT has no modes: read-only is the R attribute, which mattrib shows.
        for (const line of run('mattrib', ['-/', '-i', copy, '::/']).split('\n')) {
          const m = /^(.*?)::(\/.+)$/.exec(line);
          const s = m && seen.get(`${prefix}${m[2]}`);
          if (s && s.type === 'file') s.mode = m[1].includes('R') ? 0o444 : 0o644;
        }
        expect(compare(entries, seen).slice(0, 20)).toEqual([]);
      });
    }

    if (vol.fs === 'exfat' || vol.fs === 'ntfs') {
      it(label(`${vol.name} (${vol.fs}): every entry matches fls, tsk_recover and icat`, 'fls', 'icat', 'tsk_recover'), () => {
        if (missing('fls', 'icat', 'tsk_recover').length) return;
        const sector = String(vol.start / 512);
        const listed = fls(image, vol.start / 512);
        const files = tskFiles(image, vol, join(tmp.dir, `${manifest.image}-${vol.name}`));
        const seen = new Map<string, Seen>();
        for (const e of userEntries(listed)) {
          const path = `${prefix}${e.path}`;
          seen.set(path, e.kind.startsWith('d') ? { type: 'dir', mtimeSec: e.mtimeSec } : { type: 'file', ...files.get(path)! });
        }
        // Symlinks as ntfs-3g writes them (Interix: a system file holding
        // "IntxLNK\1" + UTF-16 target) and reparse points (junction, Windows
        // symlink): checked by their bytes, not as files or dirs.
        const byPath = new Map(listed.filter((e) => !e.deleted).map((e) => [`${prefix}${e.path}`, e]));
        for (const e of entries.filter((x) => x.type === 'symlink')) {
          const s = seen.get(e.path)!;
          const ino = byPath.get(e.path)!.inode.split('-')[0];
          const data = runBuffer('icat', ['-o', sector, image, ino]);
          if (data.subarray(0, 8).toString('latin1') === 'IntxLNK\x01') {
            Object.assign(s, { type: 'symlink', target: data.subarray(8).toString('utf16le'), size: undefined, sha256: undefined });
          } else {
            const rp = reparse(runBuffer('icat', ['-o', sector, image, `${ino}-192`]));
            expect([0xa0000003, 0xa000000c], e.path).toContain(rp.tag);
            // Targets as a Unix reader sees them: relative with '/', absolute as /C:/... (no \\??\\ prefix).
            const relative = rp.tag === 0xa000000c && rp.flags === 1;
            const target = relative ? rp.substituteName.replaceAll('\\', '/') : `/${rp.substituteName.replace(/^\\\?\?\\/, '').replaceAll('\\', '/')}`;
            Object.assign(s, { type: 'symlink', target, size: undefined, sha256: undefined });
          }
        }
        // ntfs-3g stamps a file's $FILE_NAME with the time it was created; fls shows $STANDARD_INFORMATION.
        expect(compare(entries, seen).slice(0, 20)).toEqual([]);
        // Alternate data streams: fls lists them as file:stream.
        for (const e of entries.filter((x) => x.streams)) {
          const theirs = listed.filter((l) => !l.deleted && l.path.startsWith(`${e.path.slice(prefix.length)}:`));
          expect(theirs.map((l) => ({ name: l.path.slice(l.path.indexOf(':') + 1), size: l.size, sha256: sha256(runBuffer('icat', ['-o', sector, image, l.inode])) })).sort((a, b) => a.name.localeCompare(b.name))).toEqual(
            [...e.streams!].sort((a, b) => a.name.localeCompare(b.name)),
          );
        }
        if (vol.fs === 'ntfs') {
          // Hard links: one MFT record under two names.
          for (const group of (vol.facts?.hardlinks as string[][] | undefined) ?? []) {
            expect(new Set(group.map((p) => byPath.get(p)!.inode.split('-')[0])).size).toBe(1);
          }
        }
      });
    }
  }
});

