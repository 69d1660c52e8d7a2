import type { Command } from 'commander';
import { resolve } from 'node:path';
import { LooplessError, NotFoundError } from '../../parsers/errors.js';
import type { Disk } from '../../parsers/vfs/index.js';
import { attachRange, detachDevice, loopDevicesOf } from '../../fuse/loop-devices.js';
import { withDisk } from '../disk.js';
import { humanSize, table } from '../format.js';

/** One row of `attach --json`. */
export interface AttachedJson {
  volume: string;
  device: string;
  start: number;
  size: number;
  /** Filesystem found on the volume ("xfs", "btrfs", "lvm2" ...), null when none was recognized. */
  fs: string | null;
  /** False when a matching read-only device already existed and was reused. */
  created: boolean;
}

export function register(program: Command): void {
  program
    .command('attach')
    .description('give volumes read-only loop devices at the right offsets, for filesystems only the kernel reads (root)')
    .argument('<image>', 'raw disk image')
    .argument('[volumes...]', 'volumes to attach, e.g. p2 (default: all)')
    .option('--json', 'print one JSON array of {"volume","device","start","size","fs","created"}')
    .addHelpText('after', '\nThen e.g.: mount -o ro /dev/loop3 /mnt/x   (xfs: -o ro,norecovery). Release with `loopless detach IMAGE`.')
    .action(async (image: string, volumes: string[], opts: { json?: boolean }) => {
      requireRoot('attach');
      const path = resolve(image);
      const attached = await withDisk(path, (disk) => attach(disk, path, volumes), { quiet: opts.json });
      if (opts.json) process.stdout.write(JSON.stringify(attached) + '\n');
      else {
        const rows = [['VOLUME', 'DEVICE', 'START', 'SIZE', 'FS', '']];
        for (const a of attached) rows.push([a.volume, a.device, String(a.start), humanSize(a.size), a.fs ?? '-', a.created ? '' : '(already attached)']);
        process.stdout.write(table(rows, [false, false, true, true]) + '\n');
      }
    });

  program
    .command('detach')
    .description("release the loop devices `loopless attach` gave an image's volumes (root)")
    .argument('<image>', 'raw disk image')
    .argument('[volumes...]', 'volumes to release, e.g. p2 (default: all)')
    .action(async (image: string, volumes: string[]) => {
      requireRoot('detach');
      const path = resolve(image);
      await withDisk(path, (disk) => detach(disk, path, volumes), { quiet: true });
    });
}

function requireRoot(command: string): void {
  if (process.getuid?.() !== 0) throw new LooplessError('IO', `${command} needs root to manage loop devices: run it with sudo (or use \`loopless mount\`, which needs no loop device)`);
}

function selectVolumes(disk: Disk, names: string[]): Disk['volumes'] {
  if (!names.length) return disk.volumes;
  // volumeSource throws the "no such volume (volumes: ...)" error for a wrong name.
  for (const n of names) disk.volumeSource(n);
  return disk.volumes.filter((v) => names.includes(v.name));
}

async function attach(disk: Disk, image: string, names: string[]): Promise<AttachedJson[]> {
  if (disk.image.chain.length) {
    throw new LooplessError(
      'UNSUPPORTED',
      `${image} is a ${disk.image.chain.join('/')} image, and loop devices read raw bytes: mount it with \`loopless mount\` and attach MOUNTPOINT/pN.img instead`,
    );
  }
  const existing = await loopDevicesOf(image);
  const out: AttachedJson[] = [];
  for (const v of selectVolumes(disk, names)) {
    // A truncated image holds less than the table says: the device ends where the bytes do.
    const size = disk.volumeSource(v.name).size;
    const same = existing.find((d) => d.offset === v.start && d.sizeLimit === size && d.readOnly && !d.autoclear);
    const device = same ? same.device : await attachRange(image, v.start, size);
    out.push({ volume: v.name, device, start: v.start, size, fs: disk.detectedType(v.name), created: !same });
  }
  return out;
}

async function detach(disk: Disk, image: string, names: string[]): Promise<void> {
  const wanted = names.length ? selectVolumes(disk, names) : null;
  const devices = (await loopDevicesOf(image)).filter((d) => !wanted || wanted.some((v) => v.start === d.offset));
  if (!devices.length) throw new NotFoundError(image, `no loop device is attached to ${names.length ? names.join(', ') : 'it'}`);
  for (const d of devices) {
    const volume = disk.volumes.find((v) => v.start === d.offset)?.name ?? `offset ${d.offset}`;
    const stillMounted = await detachDevice(d.device);
    process.stdout.write(
      stillMounted.length
        ? `${d.device} (${volume}): still mounted on ${stillMounted.join(', ')}; released when unmounted\n`
        : `${d.device} (${volume}): released\n`,
    );
  }
}
