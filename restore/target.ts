/**
 * What the restore target is (a new file, an existing file, a block device),
 * what the kernel says about it (/sys, /proc), and every reason not to write
 * to it: mounted, used as swap, held by device-mapper/RAID, the image itself,
 * or the file behind a loop device.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { NotFoundError } from '../parsers/errors.js';
import { RefusedError } from './errors.js';

export interface Partition {
  name: string;
  /** Bytes from the start of the disk. */
  start: number;
  size: number;
  devNumber: string;
}

export interface BlockDevice {
  /** Kernel name: "sdb", "loop3", "nvme0n1p2". */
  name: string;
  /** "major:minor". */
  devNumber: string;
  size: number;
  model: string | null;
  vendor: string | null;
  removable: boolean;
  readOnly: boolean;
  /** True when the target is itself a partition of a disk. */
  isPartition: boolean;
  partitions: Partition[];
  /** For loop devices: the file behind it. */
  backingFile: string | null;
  /** The device can zero ranges itself (WRITE ZEROES / unmap), so zeroing the whole device is cheap. */
  writeZeroesMaxBytes: number;
}

export interface Target {
  /** As the user wrote it. */
  path: string;
  kind: 'new-file' | 'file' | 'block';
  /** Current size in bytes (0 for a new file). */
  size: number;
  stats: Stats | null;
  device: BlockDevice | null;
}

export function inspectTarget(path: string): Target {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    if (!existsSync(dirname(path))) throw new NotFoundError(dirname(path), 'no such directory for the target file');
    return { path, kind: 'new-file', size: 0, stats: null, device: null };
  }
  if (stats.isFile()) return { path, kind: 'file', size: stats.size, stats, device: null };
  if (stats.isBlockDevice()) {
    const device = blockDevice(stats);
    return { path, kind: 'block', size: device.size, stats, device };
  }
  throw new RefusedError(`${path}: not a regular file or a block device; restore writes a whole disk to a drive or an image file`);
}

function devNumberOf(rdev: number): string {
  // Linux's encoding of dev_t as Node reports it.
  const major = ((rdev >> 8) & 0xfff) | ((rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff);
  return `${major}:${minor}`;
}

function readSys(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

function blockDevice(stats: Stats): BlockDevice {
  const devNumber = devNumberOf(stats.rdev);
  const sys = realpathSync(`/sys/dev/block/${devNumber}`);
  const name = basename(sys);
  const isPartition = existsSync(join(sys, 'partition'));
  const disk = isPartition ? dirname(sys) : sys;
  const partitions: Partition[] = [];
  if (!isPartition) {
    for (const child of readdirSync(sys)) {
      if (!existsSync(join(sys, child, 'partition'))) continue;
      partitions.push({
        name: child,
        start: Number(readSys(join(sys, child, 'start')) ?? 0) * 512,
        size: Number(readSys(join(sys, child, 'size')) ?? 0) * 512,
        devNumber: readSys(join(sys, child, 'dev')) ?? '',
      });
    }
    partitions.sort((a, b) => a.start - b.start);
  }
  return {
    name,
    devNumber,
    size: Number(readSys(join(sys, 'size')) ?? 0) * 512,
    model: readSys(join(disk, 'device', 'model')),
    vendor: readSys(join(disk, 'device', 'vendor')),
    removable: readSys(join(disk, 'removable')) === '1',
    readOnly: readSys(join(sys, 'ro')) === '1',
    isPartition,
    partitions,
    backingFile: readSys(join(disk, 'loop', 'backing_file')),
    writeZeroesMaxBytes: Number(readSys(join(disk, 'queue', 'write_zeroes_max_bytes')) ?? 0),
  };
}

/** The image as a file on this machine, to recognize it as a target. */
export interface ImageIdentity {
  path: string;
  stats: Stats;
}

/**
 * Every reason this target must not be written, one sentence each (empty
 * when it is safe). Checked before asking for confirmation; the exclusive
 * open afterwards catches what the kernel knows and /proc does not say.
 */
export function targetConflicts(target: Target, image: ImageIdentity): string[] {
  const reasons: string[] = [];
  const img = image.stats;
  if (target.stats && target.stats.dev === img.dev && target.stats.ino === img.ino) {
    reasons.push(`${target.path} is the image itself`);
  }
  if (target.kind === 'file' && target.stats) {
    for (const loop of loopDevicesBackedBy(target.stats)) reasons.push(`${target.path} is attached to ${loop} (detach it first: losetup -d ${loop})`);
  }
  const dev = target.device;
  if (dev) {
    if (dev.readOnly) reasons.push(`/dev/${dev.name} is read-only`);
    if (img.isBlockDevice()) {
      const imgDev = devNumberOf(img.rdev);
      if (imgDev === dev.devNumber) reasons.push(`${target.path} is the image itself`);
      else if (dev.partitions.some((p) => p.devNumber === imgDev)) reasons.push(`the image is a partition of ${target.path}`);
      else if (dev.isPartition && devNumberOf(img.rdev) === readSys(join(realpathSync(`/sys/dev/block/${dev.devNumber}`), '..', 'dev'))) {
        reasons.push(`${target.path} is a partition of the image's disk`);
      }
    }
    if (dev.backingFile) {
      const backing = statOrNull(dev.backingFile.replace(/ \(deleted\)$/, ''));
      if (backing && backing.dev === img.dev && backing.ino === img.ino) reasons.push(`${target.path} is a loop device backed by the image ${image.path}`);
    }
    const devices = new Map<string, string>([[dev.devNumber, `/dev/${dev.name}`], ...dev.partitions.map((p): [string, string] => [p.devNumber, `/dev/${p.name}`])]);
    for (const m of mounts()) {
      const byNumber = devices.get(m.devNumber);
      const bySource = m.source.startsWith('/') ? devices.get(devNumberOfPath(m.source) ?? '') : undefined;
      const which = byNumber ?? bySource;
      if (which) reasons.push(`${which} is mounted on ${m.mountPoint}`);
    }
    for (const swap of swaps()) {
      const which = devices.get(devNumberOfPath(swap) ?? '');
      if (which) reasons.push(`${which} is in use as swap`);
    }
    for (const [number, name] of devices) {
      const sys = `/sys/dev/block/${number}/holders`;
      const holders = existsSync(sys) ? readdirSync(sys) : [];
      if (holders.length) reasons.push(`${name} is held by ${holders.map((h) => `/dev/${h}`).join(', ')} (device-mapper, LVM or RAID)`);
    }
  }
  return [...new Set(reasons)];
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

function devNumberOfPath(path: string): string | null {
  const s = statOrNull(path);
  return s?.isBlockDevice() ? devNumberOf(s.rdev) : null;
}

interface Mount {
  devNumber: string;
  source: string;
  mountPoint: string;
}

/** /proc/self/mountinfo: field 3 is the mounted device's major:minor, after " - " come fstype and source. */
function mounts(): Mount[] {
  const text = readSys('/proc/self/mountinfo') ?? '';
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (fields.length < 5 || dash < 0) continue;
    out.push({ devNumber: fields[2], mountPoint: unescapeMount(fields[4]), source: unescapeMount(fields[dash + 2] ?? '') });
  }
  return out;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function swaps(): string[] {
  const text = readSys('/proc/swaps') ?? '';
  return text
    .split('\n')
    .slice(1)
    .map((l) => unescapeMount(l.split(/\s+/)[0] ?? ''))
    .filter(Boolean);
}

function loopDevicesBackedBy(file: Stats): string[] {
  const out: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync('/sys/block').filter((n) => n.startsWith('loop'));
  } catch {
    return out;
  }
  for (const name of names) {
    const backing = readSys(`/sys/block/${name}/loop/backing_file`);
    if (!backing) continue;
    const s = statOrNull(backing.replace(/ \(deleted\)$/, ''));
    if (s && s.dev === file.dev && s.ino === file.ino) out.push(`/dev/${name}`);
  }
  return out;
}
