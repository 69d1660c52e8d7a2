/**
 * Damaged volumes (copies in memory; the image file is never written): each
 * damage must give a clear typed error naming the structure and offset,
 * quickly, while the rest of the volume stays listable and readable.
 */
import { linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CorruptError, LooplessError, UnsupportedError } from '../../../parsers/errors.js';
import { detectFileSystem } from '../../../parsers/fs/index.js';
import { NtfsFileSystem, type NtfsNode } from '../../../parsers/fs/ntfs/index.js';
import { parseBootSector } from '../../../parsers/fs/ntfs/boot.js';
import { Mft } from '../../../parsers/fs/ntfs/mft.js';
import { AttrType, type MftRecord } from '../../../parsers/fs/ntfs/record.js';
import { CachedSource } from '../../../parsers/source/cache.js';
import { MemorySource } from '../../../parsers/source/memory.js';
import { buildImage, lookupPath, noise, readAll, removeDir, setNtfsAttributes, sha256, tempDir } from './helpers.js';

const DIR_ENTRIES = 400;
let work: string;
let pristine: Buffer;
/** Files outside the damaged ones, with their content hashes: they must stay readable. */
const bystanders = new Map<string, string>();

beforeAll(() => {
  work = tempDir();
  const image = join(work, 'base.img');
  buildImage(image, { sizeMiB: 32, mountOptions: ['compression'] }, (mnt) => {
    const put = (rel: string, data: Buffer, bystander = true) => {
      writeFileSync(join(mnt, rel), data);
      if (bystander) bystanders.set(`/${rel}`, sha256(data));
    };
    put('small.txt', Buffer.from('resident\n'));
    put('b.bin', noise(100000, 1));
    put('victim.bin', noise(60000, 2), false);
    mkdirSync(join(mnt, 'ok'));
    put('ok/x.txt', noise(9000, 3));
    mkdirSync(join(mnt, 'dir'));
    // Long names: few entries per 4 KiB block, so the index gets three levels.
    for (let i = 0; i < DIR_ENTRIES; i++) writeFileSync(join(mnt, 'dir', `${String(i).padStart(5, '0')}-${'x'.repeat(100)}`), `${i}`);
    mkdirSync(join(mnt, 'zip'));
    setNtfsAttributes(join(mnt, 'zip'), 0x800);
    put('zip/text.txt', Buffer.from('compress me please '.repeat(10000)), false);
    mkdirSync(join(mnt, 'many'));
    put('many/orig', Buffer.from('many names\n'), false);
    for (let i = 0; i < 120; i++) linkSync(join(mnt, 'many/orig'), join(mnt, 'many', `link-with-quite-a-long-name-${i}`));
  });
  pristine = readFileSync(image);
}, 120_000);

afterAll(() => removeDir(work));

async function openCopy(bytes: Buffer): Promise<NtfsFileSystem> {
  return NtfsFileSystem.open(new MemorySource(bytes, 'damaged copy'));
}

/** Where things are in the pristine volume, found with our own (tested) parser. */
async function locate(): Promise<{ mft: Mft; fs: NtfsFileSystem; record: (path: string) => Promise<MftRecord> }> {
  const source = new MemorySource(pristine);
  const fs = await NtfsFileSystem.open(source);
  const mft = await Mft.open(parseBootSector(pristine.subarray(0, 512), 0), new CachedSource(source));
  return { mft, fs, record: async (path) => mft.readRecord((await lookupPath(fs, path))!.stat.ino) };
}

/** Overwrite bytes of a record, refusing the update-sequence slots (which would tear it by accident). */
function poke(bytes: Buffer, at: number, value: Buffer): void {
  for (let i = 0; i < value.length; i++) if ((at + i) % 512 >= 510) throw new Error(`byte ${at + i} is an update sequence slot`);
  value.copy(bytes, at);
}

/** Every bystander file must still be listed and read back intact. */
async function expectRestIntact(fs: NtfsFileSystem): Promise<void> {
  for (const [path, hash] of bystanders) {
    const node = await lookupPath(fs, path);
    expect(node, path).not.toBeNull();
    expect({ path, hash: sha256(await readAll(fs, node!)) }).toEqual({ path, hash });
  }
  const root = await fs.readdir(await fs.root());
  expect(root.map((e) => e.name)).toEqual(expect.arrayContaining(['small.txt', 'b.bin', 'ok', 'dir']));
}

/**
 * The damaged operation itself must answer within a second: no hang, no
 * runaway loop. (Only that operation is timed; the checks around it are not,
 * so a busy machine does not make this flaky.)
 */
async function within<T>(work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const result = await work();
  expect(Date.now() - started).toBeLessThan(1000);
  return result;
}

async function expectCorrupt(p: Promise<unknown>, structure: RegExp, detail: RegExp): Promise<CorruptError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CorruptError);
  const c = e as CorruptError;
  expect(c.structure).toMatch(structure);
  expect(c.detail).toMatch(detail);
  expect(c.message).not.toContain('\n');
  expect(c.offset).toBeGreaterThan(0);
  return c;
}

/** Damage the victim's record and check: placeholder in the listing, clear error on lookup, the rest intact. */
async function expectVictimCorrupt(bytes: Buffer, detail: RegExp): Promise<void> {
  const fs = await openCopy(bytes);
  const listed = (await within(async () => fs.readdir(await fs.root()))).find((e) => e.name === 'victim.bin')!;
  expect(listed.node.stat.type).toBe('other');
  expect(listed.node.stat.otherKind).toMatch(detail);
  await expectCorrupt(within(async () => fs.lookup(await fs.root(), 'victim.bin')), /NTFS MFT record \d+/, detail);
  await expect(fs.read(listed.node, Buffer.alloc(10), 0, 10, 0)).rejects.toBeInstanceOf(CorruptError);
  await expectRestIntact(fs);
}

describe('damaged NTFS volumes', () => {
  it('opens the undamaged copy and reads every bystander', async () => {
    await expectRestIntact(await openCopy(Buffer.from(pristine)));
  });

  it('a torn MFT record (bad update sequence) is reported, not trusted', async () => {
    const { record } = await locate();
    const victim = await record('/victim.bin');
    const bytes = Buffer.from(pristine);
    bytes[victim.offset + 1022] ^= 0xff; // the stamp at the end of the record's second sector
    await expectVictimCorrupt(bytes, /update sequence mismatch in sector 1/);
  });

  it('a torn $MFT record 0 is read from $MFTMirr; both torn is a clear error', async () => {
    const { mft } = await locate();
    const bytes = Buffer.from(pristine);
    const r0 = mft.stream.physicalOffset(0)!;
    bytes[r0 + 510] ^= 0xff;
    await expectRestIntact(await within(() => openCopy(bytes)));
    const mirror = parseBootSector(pristine.subarray(0, 512), 0).mftMirrLcn * 4096;
    bytes[mirror + 510] ^= 0xff;
    await expectCorrupt(within(() => openCopy(bytes)), /NTFS MFT record 0/, /update sequence mismatch/);
  });

  it('a runlist pointing past the end of the volume fails the read of that file only', async () => {
    const { record } = await locate();
    const data = (await record('/victim.bin')).attributes.find((a) => a.type === AttrType.data && !a.resident)!;
    expect(data.resident).toBe(false);
    if (data.resident) return;
    const bytes = Buffer.from(pristine);
    const header = pristine[data.mappingPairsOffset];
    const lengthSize = header & 0xf;
    const lcnSize = header >> 4;
    const lcnAt = data.mappingPairsOffset + 1 + lengthSize;
    poke(bytes, lcnAt, Buffer.from([...Array(lcnSize - 1).fill(0xff), 0x7f]));
    const fs = await openCopy(bytes);
    const node = (await fs.lookup(await fs.root(), 'victim.bin'))!;
    expect(node.stat.size).toBe(60000);
    await expectCorrupt(within(() => fs.read(node, Buffer.alloc(4096), 0, 4096, 0)), /\$DATA of MFT record/, /outside the volume/);
    await expectRestIntact(fs);
  });

  it('an attribute whose length overflows the record makes that record corrupt', async () => {
    const { record } = await locate();
    const data = (await record('/victim.bin')).attributes.find((a) => a.type === AttrType.data)!;
    const bytes = Buffer.from(pristine);
    poke(bytes, data.offset + 4, Buffer.from([0xf0, 0xff, 0x0f, 0x00]));
    await expectVictimCorrupt(bytes, /attribute length \d+ overflows the record/);
  });

  it('a record whose base reference points to itself is rejected', async () => {
    const { record } = await locate();
    const victim = await record('/victim.bin');
    const bytes = Buffer.from(pristine);
    const ref = Buffer.alloc(8);
    ref.writeUIntLE(victim.number, 0, 6);
    ref.writeUInt16LE(victim.sequence, 6);
    poke(bytes, victim.offset + 0x20, ref);
    await expectVictimCorrupt(bytes, /base record reference points to the record itself/);
  });

  it('an index loop (a block pointing back at itself) is cut short, quickly', async () => {
    const { fs } = await locate();
    const dir = (await lookupPath(fs, '/dir'))!;
    const alloc = dir.indexAttributes.find((a) => a.type === AttrType.indexAllocation && !a.resident)!;
    if (alloc.resident) throw new Error('resident index allocation');
    // Find an index node that has children (an inner node of the tree) and point one of its children at itself.
    const { AttributeStream } = await import('../../../parsers/fs/ntfs/stream.js');
    const stream = new AttributeStream([alloc], 4096, pristine.length / 4096, 'test');
    let patched: { at: number; vcn: number } | null = null;
    for (let pos = 0; pos < stream.size && !patched; pos += 4096) {
      const at = stream.physicalOffset(pos)!;
      const block = pristine.subarray(at, at + 4096);
      if (block.toString('latin1', 0, 4) !== 'INDX' || !(block[0x18 + 0x0c] & 1)) continue;
      let e = 0x18 + block.readUInt32LE(0x18);
      for (let guard = 0; guard < 100; guard++) {
        const length = block.readUInt16LE(e + 8);
        const flags = block.readUInt32LE(e + 12);
        const vcnAt = at + e + length - 8;
        if (flags & 1 && vcnAt % 512 < 502) {
          patched = { at: vcnAt, vcn: Number(block.readBigUInt64LE(0x10)) };
          break;
        }
        if (flags & 2) break;
        e += length;
      }
    }
    expect(patched, 'an inner index node (the directory should have three levels)').not.toBeNull();
    const bytes = Buffer.from(pristine);
    const self = Buffer.alloc(8);
    self.writeBigUInt64LE(BigInt(patched!.vcn));
    poke(bytes, patched!.at, self);
    const damaged = await openCopy(bytes);
    const d = (await lookupPath(damaged, '/dir'))!;
    const names = (await within(() => damaged.readdir(d))).map((e) => e.name);
    expect(names.length).toBeLessThan(DIR_ENTRIES);
    expect(names.length).toBeGreaterThan(DIR_ENTRIES / 2);
    expect(new Set(names).size).toBe(names.length);
    // Names cut off by the loop give a clear error on lookup; the others are found.
    const listed = new Set(names);
    let loops = 0;
    for (let i = 0; i < DIR_ENTRIES; i += 3) {
      const name = `${String(i).padStart(5, '0')}-${'x'.repeat(100)}`;
      const found = await damaged.lookup(d, name).catch((e: unknown) => {
        expect(e).toBeInstanceOf(CorruptError);
        expect((e as CorruptError).detail).toMatch(/index loop/);
        loops++;
        return 'error' as const;
      });
      if (listed.has(name)) expect(found).not.toBe('error');
    }
    expect(loops).toBeGreaterThan(0);
    await expectRestIntact(damaged);
  });

  it('a torn index block loses only its own entries', async () => {
    const { fs } = await locate();
    const dir = (await lookupPath(fs, '/dir'))!;
    const alloc = dir.indexAttributes.find((a) => a.type === AttrType.indexAllocation && !a.resident)!;
    const { AttributeStream } = await import('../../../parsers/fs/ntfs/stream.js');
    const at = new AttributeStream([alloc], 4096, pristine.length / 4096, 'test').physicalOffset(4096)!;
    const bytes = Buffer.from(pristine);
    bytes[at + 510] ^= 0x55;
    const damaged = await openCopy(bytes);
    const d = (await lookupPath(damaged, '/dir'))!;
    const names = (await within(() => damaged.readdir(d))).map((e) => e.name);
    expect(names.length).toBeLessThan(DIR_ENTRIES);
    expect(names.length).toBeGreaterThan(DIR_ENTRIES - 100);
    await expectRestIntact(damaged);
  });

  it('a zeroed boot sector falls back to the backup; both zeroed is a clear error', async () => {
    const bytes = Buffer.from(pristine);
    bytes.fill(0, 0, 512);
    // Detection finds the backup boot sector at the end of the volume...
    expect((await detectFileSystem(new MemorySource(bytes))).type).toBe('ntfs');
    // ...and opening it as NTFS uses that backup.
    const fs = await within(() => openCopy(bytes));
    expect(fs.geometry.bootSectorOffset).toBe(bytes.length - 512);
    await expectRestIntact(fs);
    bytes.fill(0, bytes.length - 512);
    expect((await detectFileSystem(new MemorySource(bytes))).type).toBeNull();
    const e = await within(() => openCopy(bytes).then(() => null, (err: unknown) => err));
    expect(e).toBeInstanceOf(CorruptError);
    expect((e as CorruptError).message).toMatch(/^corrupt NTFS boot sector at byte 0: no "NTFS {4}" OEM id$/);
  });

  it('a boot sector with impossible geometry is rejected', async () => {
    for (const [at, value, detail] of [
      [11, [0x00, 0x03], /bytes per sector 768/],
      [13, [0x03], /sectors per cluster/],
      [13, [0xe0], /sectors per cluster/],
      [0x40, [0x00], /MFT record size/],
      [0x30, [0, 0, 0, 0, 0, 0, 0, 0x7f], /\$MFT cluster .* beyond the volume/],
    ] as const) {
      const bytes = Buffer.from(pristine);
      Buffer.from(value).copy(bytes, at);
      bytes.fill(0, bytes.length - 512); // no backup to fall back to
      const e = await openCopy(bytes).then(() => null, (err: unknown) => err);
      expect(e).toBeInstanceOf(CorruptError);
      expect((e as CorruptError).structure).toBe('NTFS boot sector');
      expect((e as CorruptError).detail).toMatch(detail);
    }
  });

  it('an attribute list naming a record of another file is rejected for that file only', async () => {
    const { record } = await locate();
    const many = await record('/many/orig');
    const list = many.attributes.find((a) => a.type === AttrType.attributeList)!;
    expect(list).toBeDefined();
    // Point the first list entry that names an extension record at record 0 ($MFT, a base record).
    const { AttributeStream } = await import('../../../parsers/fs/ntfs/stream.js');
    const stream = new AttributeStream([list], 4096, pristine.length / 4096, 'test');
    const listBytes = list.resident ? list.value : await stream.readAll(new MemorySource(pristine), 1 << 20);
    let at = 0;
    while (listBytes.readUIntLE(at + 0x10, 6) === many.number) at += listBytes.readUInt16LE(at + 4);
    const physical = list.resident ? -1 : stream.physicalOffset(at)!;
    expect(physical).toBeGreaterThan(0);
    const bytes = Buffer.from(pristine);
    poke(bytes, physical + 0x10, Buffer.from([0, 0, 0, 0, 0, 0]));
    const fs = await openCopy(bytes);
    await expectCorrupt(within(() => lookupPath(fs, '/many/orig')), /attribute list of MFT record/, /names MFT record 0 as an extension/);
    await expectRestIntact(fs);
  });

  it('garbage in a compression unit is a clear error, not a crash', async () => {
    const { fs } = await locate();
    const node = (await lookupPath(fs, '/zip/text.txt'))!;
    const first = node.data!.mapping()[0];
    expect(first.lcn).not.toBeNull();
    const bytes = Buffer.from(pristine);
    bytes.fill(0xff, first.lcn! * 4096, first.lcn! * 4096 + 4096);
    const damaged = await openCopy(bytes);
    const n = (await lookupPath(damaged, '/zip/text.txt'))!;
    await expectCorrupt(within(() => readAll(damaged, n)), /LZNT1/, /./);
    await expectRestIntact(damaged);
  });

  it('EFS-encrypted data is listed but refused with UnsupportedError', async () => {
    const { record } = await locate();
    const data = (await record('/victim.bin')).attributes.find((a) => a.type === AttrType.data)!;
    const bytes = Buffer.from(pristine);
    poke(bytes, data.offset + 12, Buffer.from([0x00, 0x40]));
    const fs = await openCopy(bytes);
    const node = (await fs.lookup(await fs.root(), 'victim.bin'))!;
    expect(node.stat.flags).toContain('encrypted');
    const e = await fs.read(node, Buffer.alloc(10), 0, 10, 0).then(() => null, (err: unknown) => err);
    expect(e).toBeInstanceOf(UnsupportedError);
    expect((e as LooplessError).message).toMatch(/EFS-encrypted/);
  });

  it('a lowered valid data length reads zeros past it', async () => {
    const { record } = await locate();
    const data = (await record('/victim.bin')).attributes.find((a) => a.type === AttrType.data)!;
    const bytes = Buffer.from(pristine);
    const init = Buffer.alloc(8);
    init.writeBigUInt64LE(1000n);
    poke(bytes, data.offset + 0x38, init);
    const fs = await openCopy(bytes);
    const node = (await fs.lookup(await fs.root(), 'victim.bin'))!;
    const content = await readAll(fs, node);
    expect(content.subarray(0, 1000).equals(noise(60000, 2).subarray(0, 1000))).toBe(true);
    expect(content.subarray(1000).equals(Buffer.alloc(59000))).toBe(true);
  });

  it('a truncated image still lists; reads past its end fail clearly', async () => {
    const { fs } = await locate();
    const b = (await lookupPath(fs, '/b.bin'))!;
    const cut = b.data!.mapping()[0].lcn! * 4096 + 4096;
    const damaged = await openCopy(Buffer.from(pristine.subarray(0, cut)));
    const node = (await lookupPath(damaged, '/b.bin'))!;
    await expectCorrupt(readAll(damaged, node), /\$DATA of MFT record/, /volume ends inside the data/);
    expect((await damaged.readdir(await damaged.root())).length).toBeGreaterThan(3);
  });

  it('never leaks an untyped error on a whole-tree walk of any damaged copy above', async () => {
    // Re-run a few damages and walk everything, reading every file: only LooplessErrors may surface.
    const { record } = await locate();
    const victim = await record('/victim.bin');
    const bytes = Buffer.from(pristine);
    bytes[victim.offset + 1022] ^= 0xff;
    const fs = await openCopy(bytes);
    const visit = async (dir: NtfsNode): Promise<void> => {
      for (const { node } of await fs.readdir(dir, { all: true })) {
        try {
          if (node.stat.type === 'dir') await visit(node);
          else if (node.stat.type === 'file') await readAll(fs, node);
        } catch (e) {
          expect(e).toBeInstanceOf(LooplessError);
        }
      }
    };
    await visit(await fs.root());
  });
});
