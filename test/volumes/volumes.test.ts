import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSync, writeSync, closeSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { RawFileSource } from '../../parsers/source/raw.js';
import { readVolumeTable } from '../../parsers/volumes/index.js';
import { CorruptError } from '../../parsers/errors.js';
import { run, tempDir, isRoot, hasTool } from '../support/run.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

async function table(path: string) {
  const src = await RawFileSource.open(path);
  try {
    return await readVolumeTable(src);
  } finally {
    await src.close();
  }
}

function makeImage(name: string, size: string): string {
  const p = tmp.path(name);
  run('truncate', ['-s', size, p]);
  return p;
}

function patch(path: string, offset: number, bytes: number[] | Buffer): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

interface SfdiskPart {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
}

function sfdiskJson(path: string): { label: string; partitions: SfdiskPart[] } {
  return JSON.parse(run('sfdisk', ['--json', path])).partitiontable;
}

describe('MBR', () => {
  let img: string;
  beforeAll(() => {
    img = makeImage('mbr.img', '64M');
    run('sfdisk', ['-q', img], { input: 'label: dos\n,8M,83,*\n,8M,7\n,8M,c\n,,5\n,4M,83\n,4M,b\n,4M,82\n' });
  });

  it('matches sfdisk --json: primaries p1-p3, logical p5-p7, extended container not a volume', async () => {
    const t = await table(img);
    expect(t.table).toBe('mbr');
    expect(t.warnings).toEqual([]);
    const expected = sfdiskJson(img)
      .partitions.filter((p) => !['5', 'f', '85'].includes(p.type))
      .map((p) => ({ name: 'p' + p.node.replace(/^.*img/, ''), start: p.start * 512, size: p.size * 512, type: '0x' + p.type.padStart(2, '0') }));
    expect(t.volumes.map((v) => ({ name: v.name, start: v.start, size: v.size, type: v.type }))).toEqual(expected);
    expect(t.volumes.map((v) => v.name)).toEqual(['p1', 'p2', 'p3', 'p5', 'p6', 'p7']);
    expect(t.volumes[0].bootable).toBe(true);
    expect(t.metadataRanges.filter((r) => r.what.startsWith('EBR'))).toHaveLength(3);
  });

  it('stops an EBR chain that loops, keeping what came before, within a second', async () => {
    const copy = tmp.path('mbr-loop.img');
    writeFileSync(copy, readFileSync(img));
    const ext = sfdiskJson(copy).partitions.find((p) => p.type === '5')!;
    // The second EBR's link entry (entry 1) is made to point back at the first EBR (relative 0).
    const second = sfdiskJson(copy).partitions.find((p) => p.node.endsWith('img6'))!;
    const secondEbr = ext.start + (second.start - ext.start) - 2048; // sfdisk leaves 2048 sectors before each logical
    const sector = readFileSync(copy).subarray(secondEbr * 512, secondEbr * 512 + 512);
    expect(sector.readUInt16LE(510)).toBe(0xaa55);
    patch(copy, secondEbr * 512 + 446 + 16 + 8, [0, 0, 0, 0]);
    const started = Date.now();
    const t = await table(copy);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(t.volumes.map((v) => v.name)).toEqual(['p1', 'p2', 'p3', 'p5', 'p6']);
    expect(t.warnings.join('\n')).toMatch(/EBR chain loops back to sector \d+/);
  });

  it('stops at an EBR link outside the extended partition', async () => {
    const copy = tmp.path('mbr-out.img');
    writeFileSync(copy, readFileSync(img));
    const ext = sfdiskJson(copy).partitions.find((p) => p.type === '5')!;
    patch(copy, ext.start * 512 + 446 + 16 + 8, [0xff, 0xff, 0xff, 0x0f]);
    const t = await table(copy);
    expect(t.volumes.map((v) => v.name)).toEqual(['p1', 'p2', 'p3', 'p5']);
    expect(t.warnings.join('\n')).toMatch(/lies outside the extended partition/);
  });

  it('keeps partitions of a truncated image and says they are cut', async () => {
    const copy = tmp.path('mbr-trunc.img');
    writeFileSync(copy, readFileSync(img).subarray(0, 20 * 1024 * 1024));
    const t = await table(copy);
    expect(t.volumes.map((v) => v.name)).toEqual(['p1', 'p2', 'p3']);
    expect(t.warnings.join('\n')).toMatch(/p3 extends past the end of the image/);
  });
});

describe('GPT', () => {
  let img: string;
  beforeAll(() => {
    img = makeImage('gpt.img', '64M');
    run('sgdisk', ['-n1:2048:+8M', '-t1:8300', '-c1:root fs', '-n2:0:+4M', '-t2:ef00', '-c2:EFI', '-n3:0:+4M', '-t3:0700', '-c3:Données', '-A1:set:2', img]);
  });

  it('matches sfdisk --json (start, size, type GUID, partition GUID and name)', async () => {
    const t = await table(img);
    expect(t.table).toBe('gpt');
    expect(t.warnings).toEqual([]);
    const expected = sfdiskJson(img).partitions.map((p) => ({
      name: 'p' + p.node.replace(/^.*img/, ''),
      start: p.start * 512,
      size: p.size * 512,
      type: p.type.toLowerCase(),
      partitionUuid: p.uuid!.toLowerCase(),
      partitionLabel: p.name ?? null,
    }));
    expect(t.volumes.map((v) => ({ name: v.name, start: v.start, size: v.size, type: v.type, partitionUuid: v.partitionUuid, partitionLabel: v.partitionLabel }))).toEqual(expected);
    expect(t.volumes[0].bootable).toBe(true);
    expect(t.volumes[2].partitionLabel).toBe('Données');
    expect(t.gpt?.backupHeaderLba).toBe(64 * 2048 - 1);
  });

  it('falls back to the backup when the primary header CRC is bad, and says so', async () => {
    const copy = tmp.path('gpt-badhdr.img');
    writeFileSync(copy, readFileSync(img));
    patch(copy, 512 + 16, [0xde, 0xad, 0xbe, 0xef]);
    const t = await table(copy);
    expect(t.volumes).toEqual((await table(img)).volumes);
    expect(t.gpt?.usedBackup).toBe(true);
    expect(t.warnings.join('\n')).toMatch(/primary GPT header at byte 512: header CRC32 mismatch.*using the backup GPT/);
  });

  it('falls back to the backup when the primary entry array CRC is bad', async () => {
    const copy = tmp.path('gpt-badarray.img');
    writeFileSync(copy, readFileSync(img));
    patch(copy, 1024 + 60, [0x41, 0x41]);
    const t = await table(copy);
    expect(t.volumes).toEqual((await table(img)).volumes);
    expect(t.warnings.join('\n')).toMatch(/primary GPT partition array at byte 1024: CRC32 mismatch/);
  });

  it('finds the backup when the primary header is wiped but the protective MBR remains', async () => {
    const copy = tmp.path('gpt-wiped.img');
    writeFileSync(copy, readFileSync(img));
    patch(copy, 512, Buffer.alloc(512));
    const t = await table(copy);
    expect(t.table).toBe('gpt');
    expect(t.volumes).toHaveLength(3);
  });

  it('fails with a clear error when both copies are damaged', async () => {
    const copy = tmp.path('gpt-both.img');
    writeFileSync(copy, readFileSync(img));
    patch(copy, 512 + 16, [1, 2, 3, 4]);
    patch(copy, 64 * 1024 * 1024 - 512 + 16, [1, 2, 3, 4]);
    const err = await table(copy).catch((e) => e);
    expect(err).toBeInstanceOf(CorruptError);
    expect(err.message).toMatch(/^corrupt GPT at byte 512: primary GPT header .*CRC32 mismatch.*backup GPT header .*CRC32 mismatch/);
    expect(err.message).not.toContain('\n');
  });

  it('uses the primary of a truncated image and warns that the backup is missing', async () => {
    const copy = tmp.path('gpt-trunc.img');
    writeFileSync(copy, readFileSync(img).subarray(0, 12 * 1024 * 1024));
    const t = await table(copy);
    expect(t.volumes.map((v) => v.name)).toEqual(['p1', 'p2']);
    expect(t.warnings.join('\n')).toMatch(/backup GPT header LBA \d+ lies beyond the end of the image/);
  });

  it.runIf(isRoot && hasTool('losetup'))('reads a GPT made for 4096-byte sectors', async () => {
    const img4k = makeImage('gpt4k.img', '64M');
    const dev = run('losetup', ['--sector-size', '4096', '-f', '--show', img4k]).trim();
    try {
      run('sfdisk', ['-q', dev], { input: 'label: gpt\n,4M,L\n,8M,L\n' });
      const expected = sfdiskJson(dev).partitions.map((p) => ({ start: p.start * 4096, size: p.size * 4096 }));
      run('sync', []);
      const t = await table(img4k);
      expect(t.sectorSize).toBe(4096);
      expect(t.volumes.map((v) => ({ start: v.start, size: v.size }))).toEqual(expected);
    } finally {
      run('losetup', ['-d', dev]);
    }
  });
});

describe('no partition table', () => {
  it('an ext4 filesystem image is one volume named fs', async () => {
    const p = makeImage('bare-ext4.img', '8M');
    run('mkfs.ext4', ['-q', '-F', p]);
    const t = await table(p);
    expect(t.table).toBe('none');
    expect(t.volumes).toMatchObject([{ name: 'fs', start: 0, size: 8 * 1024 * 1024 }]);
  });

  it.runIf(hasTool('mkfs.fat'))('a FAT boot sector (which ends in 55 AA) is not taken for an MBR', async () => {
    const p = tmp.path('floppy.img');
    run('mkfs.fat', ['-C', p, '1440']);
    const t = await table(p);
    expect(t.table).toBe('none');
  });

  it.runIf(hasTool('mkntfs'))('an NTFS boot sector is not taken for an MBR', async () => {
    const p = makeImage('ntfs.img', '8M');
    run('mkntfs', ['-q', '-F', '-Q', p]);
    const t = await table(p);
    expect(t.table).toBe('none');
  });

  it('a zero-length image is one empty volume', async () => {
    const p = tmp.path('empty.img');
    writeFileSync(p, '');
    const t = await table(p);
    expect(t.table).toBe('none');
    expect(t.volumes[0].size).toBe(0);
  });
});
