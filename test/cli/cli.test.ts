import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { cli, run, tempDir, isRoot } from '../support/run.js';
import { makeTree, readTree, type TruthEntry } from '../support/tree.js';

const tmp = tempDir('loopless-cli-');
let img: string;
let truth: TruthEntry[];
const src = tmp.path('src');

beforeAll(() => {
  makeTree(src);
  truth = readTree(src, '/fs');
  img = tmp.path('ext4.img');
  run('mkfs.ext4', ['-q', '-F', '-L', 'clitest', '-U', '0b4c8a3e-1111-4222-8333-944455556666', '-d', src, img, '32M']);
});
afterAll(() => tmp.cleanup());

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('loopless CLI contract', () => {
  it('--help works and exits 0; an unknown command exits 2', () => {
    const help = cli(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout.toString()).toMatch(/Usage: loopless/);
    for (const cmd of ['info', 'ls', 'cat', 'cp', 'stat']) expect(help.stdout.toString()).toContain(cmd);
    expect(cli(['frobnicate']).status).toBe(2);
    expect(cli(['cat', img]).status).toBe(2);
  });

  it('info --json has exactly the contract fields for a bare filesystem', () => {
    const r = cli(['info', img, '--json']);
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout.toString());
    expect(info).toMatchObject({
      size: 32 * 1024 * 1024,
      table: 'none',
      volumes: [{ name: 'fs', start: 0, size: 32 * 1024 * 1024, type: 'none', fs: 'ext4', label: 'clitest', uuid: '0b4c8a3e-1111-4222-8333-944455556666' }],
    });
    const human = cli(['info', img]).stdout.toString();
    expect(human).toMatch(/fs\s+0\s+32M\s+none\s+ext4\s+clitest/);
  });

  it('ls -R --json lists exactly what was put in (type, size, mode, mtime, target)', () => {
    const r = cli(['ls', img, '/fs', '-R', '--json']);
    expect(r.status).toBe(0);
    const listed = JSON.parse(r.stdout.toString()) as Record<string, unknown>[];
    const byPath = new Map(listed.map((e) => [e.path as string, e]));
    for (const t of truth) {
      const e = byPath.get(t.path);
      expect(e, t.path).toBeDefined();
      expect(e!.type, t.path).toBe(t.type);
      expect(e!.mode, t.path).toBe(t.mode);
      expect(e!.mtime, t.path).toBe(t.mtime);
      if (t.type !== 'dir') expect(e!.size, t.path).toBe(t.size);
      if (t.type === 'symlink') expect(e!.target, t.path).toBe(t.target);
      else expect(e!.target).toBeUndefined();
    }
    // Nothing extra but lost+found.
    expect(listed.map((e) => e.path).filter((p) => !byPath.has(p as string) || !truth.some((t) => t.path === p))).toEqual(['/fs/lost+found']);
  });

  it('ls / lists the volumes; ls of a file shows that file', () => {
    const vols = JSON.parse(cli(['ls', img, '/', '--json']).stdout.toString());
    expect(vols).toMatchObject([{ path: '/fs', type: 'dir' }]);
    const one = JSON.parse(cli(['ls', img, '/fs/docs/readme.txt', '--json']).stdout.toString());
    expect(one).toMatchObject([{ path: '/fs/docs/readme.txt', type: 'file', size: 15 }]);
    const human = cli(['ls', img, '/fs']).stdout.toString();
    expect(human).toMatch(/^lrwxrwxrwx\s+1\s+0\s+0\s+15\s+2021-03-04 05:06\s+fast-link -> docs\/readme.txt$/m);
    expect(human).toMatch(/^-rwsr-xr-x .* setuid-tool$/m);
  });

  it('cat gives the exact bytes, following symlinks inside the image', () => {
    for (const t of truth.filter((x) => x.type === 'file')) {
      const r = cli(['cat', img, t.path]);
      expect(r.status, t.path).toBe(0);
      expect(sha256(r.stdout), t.path).toBe(t.sha256);
    }
    expect(cli(['cat', img, '/fs/fast-link']).stdout.toString()).toBe('hello loopless\n');
  });

  it('errors: one line, no stack, meaningful exit codes', () => {
    const cases: [string[], number, RegExp][] = [
      [['cat', tmp.path('missing.img'), '/fs/x'], 3, /missing\.img: no such image file/],
      [['cat', img, '/fs/nope.txt'], 3, /\/fs\/nope\.txt: no such file or directory/],
      [['cat', img, '/p9/x'], 3, /\/p9: no such volume \(volumes: fs\)/],
      [['cat', img, '/fs/docs'], 7, /\/fs\/docs: is a directory/],
      [['ls', img, '/fs/docs/readme.txt/x'], 7, /\/fs\/docs\/readme\.txt: not a directory/],
      [['cat', img, '/fs/dangling'], 3, /no such file or directory/],
    ];
    for (const [args, code, message] of cases) {
      const r = cli(args);
      expect(r.status, args.join(' ')).toBe(code);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
    }
  });

  it('cp -R restores the tree with modes, mtimes, symlinks, empty files and dirs', () => {
    const dest = tmp.path('restored');
    const r = cli(['cp', img, '/fs', dest, '-R']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const got = readTree(dest, '/fs').filter((e) => !e.path.startsWith('/fs/lost+found'));
    expect(got).toEqual(truth);
    if (isRoot) expect(lstatSync(join(dest, 'private/secret.bin')).uid).toBe(lstatSync(join(src, 'private/secret.bin')).uid);
    // No temporary files left behind.
    const leftovers = (dir: string): string[] => readdirSync(dir, { recursive: true }).map(String).filter((n) => n.includes('.loopless-'));
    expect(leftovers(dest)).toEqual([]);
  });

  it('cp never overwrites silently; --force does; a dir without -R is refused', () => {
    const dest = tmp.path('one.txt');
    expect(cli(['cp', img, '/fs/docs/readme.txt', dest]).status).toBe(0);
    expect(readFileSync(dest, 'utf8')).toBe('hello loopless\n');
    writeFileSync(dest, 'mine');
    const again = cli(['cp', img, '/fs/docs/readme.txt', dest]);
    expect(again.status).toBe(6);
    expect(again.stderr).toMatch(/already exists \(use --force to overwrite\)/);
    expect(readFileSync(dest, 'utf8')).toBe('mine');
    expect(cli(['cp', img, '/fs/docs/readme.txt', dest, '--force']).status).toBe(0);
    expect(readFileSync(dest, 'utf8')).toBe('hello loopless\n');
    const dirNoR = cli(['cp', img, '/fs/docs', tmp.path('docs-copy')]);
    expect(dirNoR.status).toBe(7);
    expect(existsSync(tmp.path('docs-copy'))).toBe(false);
    // Into an existing directory: the item keeps its name.
    expect(cli(['cp', img, '/fs/empty.txt', tmp.dir]).status).toBe(0);
    expect(readFileSync(tmp.path('empty.txt'), 'utf8')).toBe('');
  });

  it('a zeroed superblock is read through its backup; with the backups gone too, a clear error within a second', () => {
    const bad = tmp.path('zeroed.img');
    writeFileSync(bad, readFileSync(img));
    const fd = openSync(bad, 'r+');
    writeSync(fd, Buffer.alloc(1024), 0, 1024, 1024);
    const recovered = cli(['ls', bad, '/fs/docs', '--json']);
    expect(recovered.status, recovered.stderr).toBe(0);
    expect(recovered.stderr).toMatch(/warning: fs: corrupt ext superblock at byte 1024: bad magic.*using the backup superblock at byte \d+/);
    // Wipe every backup superblock as well (their magic), as dumpe2fs lists them.
    const blockSize = 1024;
    for (const group of [1, 3]) writeSync(fd, Buffer.alloc(2), 0, 2, (1 + group * 8192) * blockSize + 0x38);
    closeSync(fd);
    const started = Date.now();
    const r = cli(['ls', bad, '/fs']);
    expect(Date.now() - started).toBeLessThan(3000); // includes node start-up
    expect(r.status).toBe(5);
    expect(r.stderr).toMatch(/^loopless: fs: no filesystem recognized/);
    const info = JSON.parse(cli(['info', bad, '--json']).stdout.toString());
    expect(info.volumes[0].fs).toBeNull();
  });
});

describe('a directory that contains its own ancestor', () => {
  it('ls -R, ls -R --json and cp -R all end, saying where the loop is', () => {
    const loopSrc = tmp.path('loop-src');
    makeTree(loopSrc);
    const loopImg = tmp.path('loop.img');
    run('mkfs.ext4', ['-q', '-F', '-d', loopSrc, loopImg, '16M']);
    // debugfs links the root directory (inode 2) inside a subdirectory: a cycle.
    run('debugfs', ['-w', '-R', 'ln <2> /docs/deep/up', loopImg]);
    for (const args of [['ls', loopImg, '/fs', '-R'], ['ls', loopImg, '/fs', '-R', '--json'], ['cp', loopImg, '/fs', tmp.path('loop-out'), '-R']]) {
      const started = Date.now();
      const r = cli(args);
      expect(Date.now() - started, args.join(' ')).toBeLessThan(5000);
      expect(r.stderr, args.join(' ')).toMatch(/\/fs\/docs\/deep\/up: directory already (listed|copied|visited)/);
    }
    const listed = JSON.parse(cli(['ls', loopImg, '/fs', '-R', '--json']).stdout.toString()) as { path: string }[];
    expect(listed.filter((e) => e.path.startsWith('/fs/docs/deep/up/'))).toEqual([]);
  });
});
