/**
 * Helpers for the FUSE tests: run the built CLI, mount and always unmount,
 * build small real images with real tools, and list trees with find and
 * sha256sum so a FUSE mount and a kernel mount can be compared field by field.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const repo = join(import.meta.dirname, '..', '..');
export const bin = join(repo, 'bin', 'loopless.js');
const execFileAsync = promisify(execFile);

export const env = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? '/usr/bin:/bin'}` };

if (!existsSync(join(repo, 'dist', 'fuse', 'mount.js'))) {
  throw new Error('dist/ is not built: run `npx tsc -p .` (npm test builds first)');
}

export interface Result {
  status: number;
  stdout: string;
  stderr: string;
}

/** Run the built CLI; never throws. */
export function loopless(args: string[], options: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): Result {
  const r = spawnSync(process.execPath, [bin, ...args], { env: options.env ?? env, timeout: options.timeout ?? 60_000, encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Run a tool, return stdout; throws with stderr on failure. */
export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { env, input, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, stdio: ['pipe', 'pipe', 'pipe'] });
}

export async function shAsync(cmd: string, args: string[]): Promise<string> {
  return (await execFileAsync(cmd, args, { env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })).stdout;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Poll until true. Generous by default: two cores shared with the rest of the suite can be slow to start a process. */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The /proc/self/mounts line for a mountpoint, or undefined. */
export function mountLine(mountpoint: string): { source: string; type: string; options: string[] } | undefined {
  const line = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[1] === mountpoint.replace(/ /g, '\\040'))
    .pop();
  // /proc/mounts writes space, tab, newline and backslash as octal escapes.
  const unescape = (f: string) => f.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return line ? { source: unescape(line[0]), type: line[2], options: line[3].split(',') } : undefined;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill(0); it is gone for our purposes.
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Everything a test mounts or attaches, undone in cleanup() whatever happened:
 * FUSE mounts unmounted (lazily), their processes waited for (killed if
 * needed), kernel mounts and loop devices released, temp dirs removed.
 */
export class Cleanup {
  private readonly fuseMounts = new Set<string>();
  private readonly kernelMounts: string[] = [];
  private readonly pids = new Set<number>();
  private readonly dirs: string[] = [];
  private readonly loopImages: string[] = [];

  dir(prefix: string): string {
    const d = tempDir(prefix);
    this.dirs.push(d);
    return d;
  }

  /** `loopless mount` in the background (logging next to the mountpoint, not in $HOME); returns the serving process id. */
  mount(source: string, mountpoint: string, extra: string[] = []): { pid: number; log: string } {
    mkdirSync(mountpoint, { recursive: true });
    const log = extra.includes('--log') ? [] : ['--log', `${mountpoint}.log`];
    const r = loopless(['mount', source, mountpoint, '--json', ...log, ...extra]);
    if (r.status !== 0) throw new Error(`loopless mount failed (${r.status}): ${r.stderr}`);
    const info = JSON.parse(r.stdout) as { pid: number; log: string };
    this.fuseMounts.add(mountpoint);
    this.pids.add(info.pid);
    return info;
  }

  track(mountpoint: string, pid?: number): void {
    this.fuseMounts.add(mountpoint);
    if (pid) this.pids.add(pid);
  }

  kernelMount(args: string[], mountpoint: string): void {
    mkdirSync(mountpoint, { recursive: true });
    sh('mount', [...args, mountpoint]);
    this.kernelMounts.push(mountpoint);
  }

  loopImage(image: string): void {
    this.loopImages.push(image);
  }

  async cleanup(): Promise<void> {
    for (const m of this.kernelMounts.reverse()) spawnSync('umount', [m], { env });
    for (const image of this.loopImages) {
      const list = JSON.parse(spawnSync('losetup', ['-J', '-l', '-j', image], { env, encoding: 'utf8' }).stdout || '{"loopdevices":[]}') as {
        loopdevices: { name: string }[];
      };
      for (const d of list.loopdevices) spawnSync('losetup', ['-d', d.name], { env });
    }
    for (const m of this.fuseMounts) if (mountLine(m)) spawnSync('fusermount', ['-u', '-z', m], { env });
    for (const pid of this.pids) {
      try {
        await waitFor(`process ${pid} to exit`, () => !processAlive(pid), 15_000);
      } catch {
        process.kill(pid, 'SIGKILL');
      }
    }
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** One line per entry below root, as find prints it: the fields stat(2) gives, times in ms. */
export interface Listed {
  path: string;
  /** find's %y: f d l p c b s */
  type: string;
  mode: number;
  size: number;
  uid: number;
  gid: number;
  nlink: number;
  mtimeMs: number;
  target: string;
  blocks: number;
}

/** find's "seconds.fraction" as whole milliseconds, without float rounding. */
function msOf(secondsDotFraction: string): number {
  const [s, frac = ''] = secondsDotFraction.split('.');
  return Number(s) * 1000 + Number((frac + '000').slice(0, 3)) * (s.startsWith('-') ? -1 : 1);
}

export async function findListing(root: string): Promise<Map<string, Listed>> {
  const out = await shAsync('find', [root, '-mindepth', '1', '-printf', '%P\\0%y\\0%m\\0%s\\0%U\\0%G\\0%n\\0%T@\\0%l\\0%b\\0']);
  const f = out.split('\0');
  const map = new Map<string, Listed>();
  for (let i = 0; i + 10 <= f.length; i += 10) {
    map.set(f[i], {
      path: f[i],
      type: f[i + 1],
      mode: parseInt(f[i + 2], 8),
      size: Number(f[i + 3]),
      uid: Number(f[i + 4]),
      gid: Number(f[i + 5]),
      nlink: Number(f[i + 6]),
      mtimeMs: msOf(f[i + 7]),
      target: f[i + 8],
      blocks: Number(f[i + 9]),
    });
  }
  return map;
}

/** sha256 of every regular file below root, by path relative to root (find -print0 | xargs -0 sha256sum -z). */
export async function sha256Listing(root: string): Promise<Map<string, string>> {
  const out = await shAsync('sh', ['-c', 'cd "$1" && find . -type f -print0 | xargs -0 -r sha256sum -z', 'sh', root]);
  const map = new Map<string, string>();
  for (const rec of out.split('\0')) {
    if (!rec) continue;
    map.set(rec.slice(66).replace(/^\.\//, ''), rec.slice(0, 64));
  }
  return map;
}

/** sha256 of a byte range of a file, read by dd (an oracle independent of Loopless). */
export async function ddSha256(file: string, start: number, size: number): Promise<string> {
  const out = await shAsync('sh', ['-c', 'dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none | sha256sum', 'sh', file, String(start), String(size)]);
  return out.slice(0, 64);
}

export async function fileSha256(file: string): Promise<string> {
  return (await shAsync('sha256sum', [file])).slice(0, 64);
}

/** Partition starts and sizes in bytes, from sfdisk (not from Loopless). */
export function partitions(image: string): { name: string; start: number; size: number }[] {
  const table = JSON.parse(sh('sfdisk', ['--json', image])) as { partitiontable: { sectorsize?: number; partitions: { node: string; start: number; size: number }[] } };
  const sector = table.partitiontable.sectorsize ?? 512;
  return table.partitiontable.partitions.map((p) => ({
    name: `p${/(\d+)$/.exec(p.node)![1]}`,
    start: p.start * sector,
    size: p.size * sector,
  }));
}
