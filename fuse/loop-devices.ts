/**
 * The kernel fallback for filesystems Loopless does not read (XFS, btrfs,
 * LVM ...): read-only loop devices over each volume's byte range, via
 * losetup, so nobody computes an --offset by hand.
 */
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { LooplessError } from '../parsers/errors.js';
import { deviceString, readMounts } from './mounts.js';

const run = promisify(execFile);

export interface LoopDevice {
  device: string;
  backingFile: string;
  offset: number;
  sizeLimit: number;
  readOnly: boolean;
  /** Already detached while in use: the kernel frees it when the last user goes. */
  autoclear: boolean;
}

async function losetup(args: string[]): Promise<string> {
  try {
    return (await run('losetup', args, { encoding: 'utf8' })).stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new LooplessError('UNSUPPORTED', '`losetup` is not on PATH: install it with `apt-get install mount` (util-linux)');
    throw new LooplessError('IO', `losetup ${args.join(' ')}: ${(err.stderr ?? err.message).trim().replace(/^losetup: /, '')}`);
  }
}

interface LosetupJson {
  loopdevices?: { name: string; 'back-file': string | null; 'back-ino': number | string | null; 'back-maj:min': string | null; offset: number | string; sizelimit: number | string; ro: boolean | string; autoclear: boolean | string }[];
}

/** Loop devices whose backing file is this very file (same inode on the same filesystem, whatever path it was given by). */
export async function loopDevicesOf(image: string): Promise<LoopDevice[]> {
  const st = await stat(image);
  const json = JSON.parse((await losetup(['--list', '--json', '--output', 'NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN,OFFSET,SIZELIMIT,RO,AUTOCLEAR'])) || '{}') as LosetupJson;
  const flag = (v: boolean | string) => v === true || v === '1';
  return (json.loopdevices ?? [])
    .filter((d) => Number(d['back-ino']) === st.ino && (d['back-maj:min'] ?? '').trim() === deviceString(st.dev))
    .map((d) => ({
      device: d.name,
      backingFile: d['back-file'] ?? '',
      offset: Number(d.offset),
      sizeLimit: Number(d.sizelimit),
      readOnly: flag(d.ro),
      autoclear: flag(d.autoclear),
    }));
}

/** A read-only loop device over [offset, offset + size) of the image; returns its path. */
export async function attachRange(image: string, offset: number, size: number): Promise<string> {
  return (await losetup(['--find', '--show', '--read-only', '--offset', String(offset), '--sizelimit', String(size), image])).trim();
}

/** Release a loop device. One still mounted is only marked to go when unmounted; returns where it is mounted then. */
export async function detachDevice(device: string): Promise<string[]> {
  await losetup(['--detach', device]);
  const st = await stat(device).catch(() => null);
  const dev = st ? deviceString(st.rdev) : null;
  // btrfs reports an anonymous device number in mountinfo, so the source path counts too.
  return (await readMounts()).filter((m) => m.device === dev || m.source === device).map((m) => m.mountpoint);
}
