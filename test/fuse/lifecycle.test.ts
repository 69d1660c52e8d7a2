import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { buildBareExtImage } from './images.js';
import { bin, Cleanup, env, loopless, mountLine, processAlive, repo, sh, waitFor } from './support.js';

const isRoot = process.getuid?.() === 0;

/** A foreground mount as a child process of the test. */
function foreground(image: string, mnt: string): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [bin, 'mount', '--foreground', image, mnt], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  return Object.assign(child, { output: () => output });
}

/** Until the foreground mount is live; its own output if it gave up instead. */
async function waitForMount(child: ChildProcess & { output: () => string }, mnt: string): Promise<void> {
  await waitFor('the mount', () => {
    if (child.exitCode !== null) throw new Error(`mount exited with ${child.exitCode}: ${child.output()}`);
    return mountLine(mnt) !== undefined;
  });
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
}

describe.runIf(isRoot)('mount lifecycle', () => {
  const c = new Cleanup();
  let dir: string;
  let image: string;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    dir = c.dir('loopless-fuse-life-');
    image = buildBareExtImage(dir, 'bare.img', 'lifecycle').image;
  });
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await c.cleanup();
  });

  const mountpoint = (name: string) => {
    const m = join(dir, name);
    mkdirSync(m, { recursive: true });
    c.track(m);
    return m;
  };

  it('mounts in the background, logs, and `loopless umount` ends the serving process', async () => {
    const mnt = mountpoint('bg');
    const { pid, log } = c.mount(image, mnt);
    expect(mountLine(mnt)?.type).toBe('fuse.loopless');
    expect(readdirSync(mnt).sort()).toEqual(['disk.img', 'fs', 'fs.img']);
    expect(readFileSync(join(mnt, 'fs', 'label.txt'), 'utf8')).toBe('lifecycle\n');
    expect(processAlive(pid)).toBe(true);
    const r = loopless(['umount', mnt]);
    expect(r.status, r.stderr).toBe(0);
    expect(mountLine(mnt)).toBeUndefined();
    await waitFor('the mount process to exit', () => !processAlive(pid));
    expect(readFileSync(log, 'utf8')).toMatch(/mounted .*bare\.img on .*\n.*unmounted/);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('a foreground mount unmounts cleanly on %s', async (signal) => {
    const mnt = mountpoint(`fg-${signal}`);
    const child = foreground(image, mnt);
    children.push(child);
    await waitForMount(child, mnt);
    expect(statSync(join(mnt, 'fs', 'label.txt')).size).toBe(10);
    child.kill(signal);
    expect(await exitOf(child)).toEqual({ code: 0, signal: null });
    expect(mountLine(mnt), child.output()).toBeUndefined();
    expect(readdirSync(mnt)).toEqual([]);
  });

  it('kill -9 leaves no dead mount behind (auto_unmount), and the mountpoint is usable again', async () => {
    const mnt = mountpoint('killed');
    const child = foreground(image, mnt);
    children.push(child);
    await waitForMount(child, mnt);
    child.kill('SIGKILL');
    await exitOf(child);
    await waitFor('fusermount to remove the orphaned mount', () => mountLine(mnt) === undefined);
    // No "Transport endpoint is not connected": it is a plain empty directory again.
    expect(readdirSync(mnt)).toEqual([]);
    const { pid } = c.mount(image, mnt);
    expect(readdirSync(mnt).sort()).toEqual(['disk.img', 'fs', 'fs.img']);
    expect(loopless(['umount', mnt]).status).toBe(0);
    await waitFor('the mount process to exit', () => !processAlive(pid));
  });

  it('refuses bad sources and mountpoints with the right exit codes', () => {
    const empty = mountpoint('refusals');
    let r = loopless(['mount', join(dir, 'missing.img'), empty]);
    expect([r.status, r.stderr]).toEqual([3, expect.stringMatching(/missing\.img: no such image file or folder/)]);
    r = loopless(['mount', image, join(dir, 'no-such-dir')]);
    expect([r.status, r.stderr]).toEqual([3, expect.stringMatching(/no such directory to mount on .*--mkdir/)]);
    const full = mountpoint('not-empty');
    writeFileSync(join(full, 'something'), 'x');
    r = loopless(['mount', image, full]);
    expect([r.status, r.stderr]).toEqual([6, expect.stringMatching(/not empty/)]);
    r = loopless(['mount', image, image]);
    expect(r.status).toBe(7);
    expect(mountLine(empty)).toBeUndefined();
  });

  it('--mkdir creates the mountpoint; a second mount on it is refused', async () => {
    const mnt = join(dir, 'made', 'by', 'mkdir');
    const r = loopless(['mount', '--mkdir', '--json', '--log', join(dir, 'mkdir.log'), image, mnt]);
    expect(r.status, r.stderr).toBe(0);
    const { pid } = JSON.parse(r.stdout) as { pid: number };
    c.track(mnt, pid);
    const again = loopless(['mount', image, mnt]);
    expect([again.status, again.stderr]).toEqual([6, expect.stringMatching(/already a mount point \(fuse\.loopless/)]);
    expect(loopless(['umount', mnt]).status).toBe(0);
    await waitFor('the mount process to exit', () => !processAlive(pid));
  });

  it('umount: not mounted (3), not ours (2), busy (1) unless --lazy', async () => {
    const plain = mountpoint('plain');
    expect(loopless(['umount', plain])).toMatchObject({ status: 3, stderr: expect.stringMatching(/not mounted/) });
    const tmpfs = mountpoint('tmpfs');
    c.kernelMount(['-t', 'tmpfs', 'none'], tmpfs);
    expect(loopless(['umount', tmpfs])).toMatchObject({ status: 2, stderr: expect.stringMatching(/not a loopless mount \(tmpfs/) });

    const mnt = mountpoint('busy');
    const { pid } = c.mount(image, mnt);
    const fd = openSync(join(mnt, 'fs', 'label.txt'), 'r');
    try {
      expect(loopless(['umount', mnt])).toMatchObject({ status: 1, stderr: expect.stringMatching(/busy.*--lazy/) });
      expect(mountLine(mnt)).toBeDefined();
      expect(loopless(['umount', '--lazy', mnt]).status).toBe(0);
      expect(mountLine(mnt)).toBeUndefined();
    } finally {
      closeSync(fd);
    }
    await waitFor('the mount process to exit', () => !processAlive(pid));
  });
});

/** Where the dynamic loader finds the system's libfuse.so.2 (null when not installed). */
function systemLibfuse(): string | null {
  const m = /libfuse\.so\.2 \(libc6,x86-64\) => (\S+)/.exec(sh('ldconfig', ['-p']));
  return m ? realpathSync(m[1]) : null;
}

const bundled = (() => {
  const require = createRequire(join(repo, 'package.json'));
  return (createRequire(require.resolve('fuse-native'))('fuse-shared-library') as { lib: string }).lib;
})();

/** Run a script ($0 = args[0] ...) in a private mount namespace: bind mounts there hide files from this script only, never from the machine. */
function inNamespace(script: string, args: string[]): { status: number; out: string } {
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, ...args], { env, cwd: repo, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

describe.runIf(isRoot)('when FUSE is missing or only partly there', () => {
  const c = new Cleanup();
  let dir: string;
  let image: string;
  beforeAll(() => {
    dir = c.dir('loopless-fuse-missing-');
    image = buildBareExtImage(dir, 'bare.img', 'bundled lib').image;
  });
  afterAll(() => c.cleanup());

  it('says to install fuse3 when fusermount is not on PATH', () => {
    const mnt = join(dir, 'no-fusermount');
    mkdirSync(mnt);
    const r = loopless(['mount', image, mnt], { env: { ...env, PATH: '/nonexistent' } });
    expect(r.status).toBe(5);
    expect(r.stderr).toMatch(/^loopless: FUSE is not usable on this machine: `fusermount` is not on PATH: install it with `apt-get install fuse3`\n$/);
  });

  it('names the device when /dev/fuse is not the FUSE device', () => {
    const mnt = join(dir, 'no-dev-fuse');
    mkdirSync(mnt);
    const r = inNamespace('mount --bind /dev/null /dev/fuse && exec "$0" "$1" mount "$2" "$3"', [process.execPath, bin, image, mnt]);
    expect(r.status).toBe(5);
    expect(r.out).toMatch(/\/dev\/fuse is device 1,3, not the FUSE device 10,229/);
  });

  const libfuse = systemLibfuse();
  it.runIf(libfuse !== null)("uses fuse-shared-library-linux's libfuse.so.2 when the system has none", () => {
    const mnt = join(dir, 'bundled');
    mkdirSync(mnt);
    const script = [
      'set -e',
      'mount --bind /dev/null "$4"', // hide Debian's libfuse.so.2
      // The system copy really is gone: fuse-native alone cannot load.
      `if "$0" -e "require('fuse-native')" 2>/dev/null; then echo "libfuse still visible"; exit 9; fi`,
      'pid=$("$0" "$1" mount --json --log "$3.log" "$2" "$3" | sed -n "s/.*\\"pid\\":\\([0-9]*\\).*/\\1/p")',
      'cat "$3/fs/label.txt"',
      // The serving process really runs on the bundled copy.
      'grep -o "libfuse/lib/libfuse.so" "/proc/$pid/maps" | head -1',
      '"$0" "$1" umount "$3"',
    ].join('\n');
    const r = inNamespace(script, [process.execPath, bin, image, mnt, libfuse!]);
    expect(r.out).toMatch(/bundled lib\nlibfuse\/lib\/libfuse\.so\n/);
    expect(r.status, r.out).toBe(0);
    expect(bundled).toMatch(/fuse-shared-library-linux\/libfuse\/lib\/libfuse\.so$/);
  });

  it.runIf(libfuse !== null)('says to install libfuse2 when no libfuse.so.2 loads at all', () => {
    const mnt = join(dir, 'no-libfuse');
    mkdirSync(mnt);
    const r = inNamespace('mount --bind /dev/null "$4" && mount --bind /dev/null "$5" && exec "$0" "$1" mount "$2" "$3"', [
      process.execPath,
      bin,
      image,
      mnt,
      libfuse!,
      bundled,
    ]);
    expect(r.status).toBe(5);
    expect(r.out).toMatch(/libfuse\.so\.2 not found: install it with `apt-get install libfuse2`/);
  });
});
