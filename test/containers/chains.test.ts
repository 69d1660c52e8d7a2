import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImage } from '../../parsers/source/open.js';
import { run, tempDir } from '../support/run.js';
import { checkAllocatedCovers, checkRandomReads, expectTypedError, fileSha256, makeRawDisk, readAll, sha256 } from './support.js';

/**
 * Parent and backing chains: a qcow2 overlay on a qcow2 (and on a raw file),
 * extended-L2 subclusters over a backing file, a VMDK delta disk, and a
 * differencing VHD, each with changed data checked against the expected
 * bytes; plus loops and missing parents.
 */
const tmp = tempDir('loopless-chains-');
let raw: string;
let rawBytes: Buffer;
beforeAll(() => {
  raw = makeRawDisk(tmp.dir, 'base.img');
  rawBytes = readFileSync(raw);
});
afterAll(() => tmp.cleanup());

const p = (name: string) => join(tmp.dir, name);

/** Apply qemu-io style writes to a copy of the expected bytes. */
function expectWith(base: Buffer, writes: { at: number; length: number; byte: number }[]): Buffer {
  const out = Buffer.from(base);
  for (const w of writes) out.fill(w.byte, w.at, w.at + w.length);
  return out;
}

async function checkImage(path: string, chain: string[], expected: Buffer): Promise<void> {
  const before = fileSha256(path);
  const img = await openImage(path, { cacheDir: p('cache') });
  try {
    expect(img.chain).toEqual(chain);
    expect(img.source.size).toBe(expected.length);
    expect(sha256(await readAll(img.source))).toBe(sha256(expected));
    await checkRandomReads(img.source, expected, 30, 5);
    checkAllocatedCovers(await img.source.allocatedRanges!(), expected);
  } finally {
    await img.source.close();
  }
  expect(fileSha256(path)).toBe(before);
}

describe('backing files and parents', () => {
  it('qcow2 overlay on a qcow2 base, changed by qemu-io', async () => {
    run('qemu-img', ['convert', '-O', 'qcow2', raw, p('base.qcow2')]);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', p('overlay.qcow2')]);
    run('qemu-io', ['-c', 'write -P 0xab 1M 64k', '-c', 'write -P 0xcd 5000k 4k', '-c', 'write -z 1100k 64k', p('overlay.qcow2')]);
    const expected = expectWith(rawBytes, [
      { at: 1 << 20, length: 65536, byte: 0xab },
      { at: 5000 * 1024, length: 4096, byte: 0xcd },
      { at: 1100 * 1024, length: 65536, byte: 0 },
    ]);
    await checkImage(p('overlay.qcow2'), ['qcow2'], expected);
    // The base is untouched and still reads as the original.
    await checkImage(p('base.qcow2'), ['qcow2'], rawBytes);
  });

  it('three levels: qcow2 -> qcow2 -> raw file (backing format raw is not probed)', async () => {
    copyFileSync(raw, p('level0.raw'));
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'level0.raw', '-F', 'raw', p('level1.qcow2')]);
    run('qemu-io', ['-c', 'write -P 0x11 2M 8k', p('level1.qcow2')]);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'level1.qcow2', '-F', 'qcow2', p('level2.qcow2')]);
    run('qemu-io', ['-c', 'write -P 0x22 2052k 8k', '-c', 'write -P 0x33 9M 512', p('level2.qcow2')]);
    const expected = expectWith(rawBytes, [
      { at: 2 << 20, length: 8192, byte: 0x11 },
      { at: 2052 * 1024, length: 8192, byte: 0x22 },
      { at: 9 << 20, length: 512, byte: 0x33 },
    ]);
    await checkImage(p('level2.qcow2'), ['qcow2'], expected);
  });

  it('extended L2: 4 KiB subclusters come from the overlay, the rest of the cluster from the base', async () => {
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=128k', '-b', 'base.qcow2', '-F', 'qcow2', p('sub.qcow2')]);
    run('qemu-io', ['-c', 'write -P 0x5e 1060k 4k', '-c', 'write -z 1200k 8k', p('sub.qcow2')]);
    const expected = expectWith(rawBytes, [
      { at: 1060 * 1024, length: 4096, byte: 0x5e },
      { at: 1200 * 1024, length: 8192, byte: 0 },
    ]);
    await checkImage(p('sub.qcow2'), ['qcow2'], expected);
  });

  it('VMDK delta disk finds its parent through parentFileNameHint', async () => {
    run('qemu-img', ['convert', '-O', 'vmdk', raw, p('base.vmdk')]);
    run('qemu-img', ['create', '-q', '-f', 'vmdk', '-b', 'base.vmdk', '-F', 'vmdk', p('delta.vmdk')]);
    run('qemu-io', ['-c', 'write -P 0x77 3M 128k', p('delta.vmdk')]);
    await checkImage(p('delta.vmdk'), ['vmdk'], expectWith(rawBytes, [{ at: 3 << 20, length: 131072, byte: 0x77 }]));
  });

  it('differencing VHD reads changed sectors from itself and the rest from its parent', async () => {
    // qemu-img cannot create differencing VHDs, so one is derived from two
    // qemu-made dynamic VHDs (parent, and the changed disk) following the
    // VHD spec: blocks equal to the parent are dropped from the BAT, and each
    // kept block's sector bitmap marks only the sectors that differ.
    const changed = expectWith(rawBytes, [
      { at: (3 << 20) + 512 * 3, length: 512 * 5, byte: 0xd1 },
      { at: 6 << 20, length: 70000, byte: 0xd2 },
      { at: 12345678, length: 1, byte: 0xd3 },
    ]);
    writeFileSync(p('changed.img'), changed);
    run('qemu-img', ['convert', '-O', 'vpc', '-o', 'force_size=on', raw, p('parent.vhd')]);
    run('qemu-img', ['convert', '-O', 'vpc', '-o', 'force_size=on', p('changed.img'), p('child-full.vhd')]);
    writeFileSync(p('child.vhd'), makeDifferencing(readFileSync(p('child-full.vhd')), readFileSync(p('parent.vhd')), rawBytes, changed, 'parent.vhd'));
    await checkImage(p('child.vhd'), ['vhd'], changed);

    // Without its parent it is a clear "not found" naming what was tried.
    renameSync(p('parent.vhd'), p('parent.moved'));
    try {
      await expectTypedError(openImage(p('child.vhd')), 'ENOENT', /parent disk not found.*parent\.vhd/);
    } finally {
      renameSync(p('parent.moved'), p('parent.vhd'));
    }
  });

  it('a backing chain that loops is refused (ELOOP), as is a missing backing file', async () => {
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-b.qcow2', '-F', 'qcow2', p('loop-a.qcow2'), '32M']);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-a.qcow2', '-F', 'qcow2', p('loop-b.qcow2'), '32M']);
    await expectTypedError(openImage(p('loop-a.qcow2')), 'ELOOP', /loops back/);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', 'self.qcow2', '-F', 'qcow2', p('self.qcow2'), '32M']);
    await expectTypedError(openImage(p('self.qcow2')), 'ELOOP', /self\.qcow2/);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', 'nowhere.qcow2', '-F', 'qcow2', p('orphan.qcow2'), '32M']);
    await expectTypedError(openImage(p('orphan.qcow2')), 'ENOENT', /nowhere\.qcow2/);
  });
});

/** VHD footer/header checksum: one's complement of the byte sum, skipping the field. */
function vhdChecksum(buf: Buffer, at: number): void {
  buf.writeUInt32BE(0, at);
  let sum = 0;
  for (const b of buf) sum += b;
  buf.writeUInt32BE(~sum >>> 0, at);
}

function makeDifferencing(child: Buffer, parentVhd: Buffer, parent: Buffer, changed: Buffer, parentName: string): Buffer {
  const footer = Buffer.from(child.subarray(child.length - 512));
  const hdrAt = Number(footer.readBigUInt64BE(16));
  const hdr = Buffer.from(child.subarray(hdrAt, hdrAt + 1024));
  const batAt = Number(hdr.readBigUInt64BE(16));
  const blockSize = hdr.readUInt32BE(32);
  const sectors = blockSize / 512;
  const bitmapSize = Math.ceil(sectors / 8 / 512) * 512;
  const body = Buffer.from(child.subarray(0, child.length - 512));
  const blocks = Math.ceil(changed.length / blockSize);
  for (let b = 0; b < blocks; b++) {
    const entry = body.readUInt32BE(batAt + b * 4);
    if (entry === 0xffffffff) continue;
    const bitmap = Buffer.alloc(bitmapSize);
    let any = false;
    for (let s = 0; s < sectors; s++) {
      const at = b * blockSize + s * 512;
      if (at >= changed.length) break;
      if (!changed.subarray(at, at + 512).equals(parent.subarray(at, at + 512))) {
        bitmap[s >> 3] |= 0x80 >> (s & 7);
        any = true;
      } else {
        // Sectors not marked must come from the parent: poison the child's copy so a reader that ignores the bitmap fails.
        body.fill(0xee, entry * 512 + bitmapSize + s * 512, entry * 512 + bitmapSize + (s + 1) * 512);
      }
    }
    if (any) bitmap.copy(body, entry * 512);
    else body.writeUInt32BE(0xffffffff, batAt + b * 4);
  }
  // Parent locator: a relative Windows path in UTF-16LE, in a sector before the footer.
  const locatorAt = body.length;
  const locator = Buffer.alloc(512);
  const rel = Buffer.from(`.\\${parentName}`, 'utf16le');
  rel.copy(locator);
  hdr.write('W2ru', 576, 'latin1');
  hdr.writeUInt32BE(1, 576 + 4);
  hdr.writeUInt32BE(rel.length, 576 + 8);
  hdr.writeBigUInt64BE(BigInt(locatorAt), 576 + 16);
  parentVhd.copy(hdr, 40, parentVhd.length - 512 + 68, parentVhd.length - 512 + 84);
  const name = Buffer.from(parentName, 'utf16le').swap16();
  hdr.fill(0, 64, 576);
  name.copy(hdr, 64);
  vhdChecksum(hdr, 36);
  hdr.copy(body, hdrAt);
  footer.writeUInt32BE(4, 60);
  vhdChecksum(footer, 64);
  footer.copy(body, 0);
  return Buffer.concat([body, locator, footer]);
}
