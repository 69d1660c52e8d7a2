import { dirname, resolve } from 'node:path';
import { CorruptError, UnsupportedError } from '../../errors.js';
import type { ContainerFormat, OpenContext } from '../open.js';
import { RawFileSource } from '../raw.js';
import { readExact } from '../read.js';
import type { ByteRange, ByteSource } from '../types.js';
import { openBackingFile } from './backing.js';
import { MappedSource, type Extent } from './mapped.js';
import { RangeCollector } from './ranges.js';
import { SPARSE_MAGIC, openSparseExtent } from './vmdk-sparse.js';

/**
 * VMDK: a text descriptor listing extents (FLAT raw files, SPARSE hosted
 * sparse files, ZERO runs), either in its own file next to the extents
 * (monolithicFlat, twoGbMaxExtent*) or embedded in a single sparse file
 * (monolithicSparse, streamOptimized). A delta disk names its parent with
 * parentFileNameHint.
 */
const DESCRIPTOR_MAGIC = '# Disk DescriptorFile';
const MAX_DESCRIPTOR = 1024 * 1024;
const MAX_EXTENTS = 4096;

interface DescriptorExtent {
  access: string;
  sectors: number;
  type: string;
  file?: string;
  offsetSectors: number;
}

export interface Descriptor {
  createType?: string;
  parentCID?: string;
  parentFileNameHint?: string;
  extents: DescriptorExtent[];
}

export function parseDescriptor(text: string): Descriptor {
  const d: Descriptor = { extents: [] };
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.replace(/\0.*$/s, '').trim();
    if (!line || line.startsWith('#')) continue;
    const kv = /^([A-Za-z.]+)\s*=\s*"?([^"]*)"?$/.exec(line);
    if (kv) {
      if (kv[1] === 'createType') d.createType = kv[2];
      if (kv[1] === 'parentCID') d.parentCID = kv[2];
      if (kv[1] === 'parentFileNameHint') d.parentFileNameHint = kv[2];
      continue;
    }
    const ext = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?/.exec(line);
    if (ext) {
      if (d.extents.length >= MAX_EXTENTS) throw new CorruptError('VMDK descriptor', 0, `more than ${MAX_EXTENTS} extents`);
      d.extents.push({ access: ext[1], sectors: Number(ext[2]), type: ext[3], file: ext[4], offsetSectors: Number(ext[5] ?? 0) });
    }
  }
  return d;
}

interface PlacedExtent {
  start: number;
  size: number;
  map(pos: number): Promise<Extent>;
  allocated(): Promise<ByteRange[]>;
}

async function parentOf(d: Descriptor, path: string, context: OpenContext): Promise<ByteSource | undefined> {
  if (!d.parentCID || /^f+$/i.test(d.parentCID) || !d.parentFileNameHint) return undefined;
  return openBackingFile(context, path, d.parentFileNameHint);
}

/** A single sparse file with its descriptor embedded (monolithicSparse, streamOptimized). */
async function openMonolithic(inner: ByteSource, path: string, context: OpenContext): Promise<ByteSource> {
  const sparse = await openSparseExtent(inner, path);
  let descriptor: Descriptor = { extents: [] };
  const { descriptorOffset, descriptorSize } = sparse.header;
  if (descriptorOffset > 0 && descriptorSize > 0 && descriptorSize <= MAX_DESCRIPTOR && descriptorOffset + descriptorSize <= inner.size) {
    descriptor = parseDescriptor((await readExact(inner, descriptorOffset, descriptorSize, 'VMDK embedded descriptor')).toString('latin1'));
  }
  const parent = await parentOf(descriptor, path, context);
  const kind = descriptor.createType ?? (sparse.header.compressed ? 'streamOptimized' : 'monolithicSparse');
  return new MappedSource({
    size: sparse.header.capacity,
    description: `VMDK ${kind} image (${inner.description})`,
    extentAt: (pos) => sparse.extentAt(pos),
    backing: parent,
    ownAllocated: () => sparse.allocated(),
    closeOwn: () => inner.close(),
  });
}

/** A descriptor file naming extent files next to it. */
async function openDescriptorFile(inner: ByteSource, path: string, context: OpenContext): Promise<ByteSource> {
  if (inner.size > MAX_DESCRIPTOR) throw new CorruptError('VMDK descriptor', 0, `descriptor file of ${inner.size} bytes is too large`);
  const d = parseDescriptor((await readExact(inner, 0, inner.size, 'VMDK descriptor')).toString('latin1'));
  if (d.extents.length === 0) throw new CorruptError('VMDK descriptor', 0, 'no extents listed');
  const opened: ByteSource[] = [];
  const placed: PlacedExtent[] = [];
  let parent: ByteSource | undefined;
  try {
    let start = 0;
    for (const e of d.extents) {
      const size = e.sectors * 512;
      if (!Number.isSafeInteger(start + size)) throw new CorruptError('VMDK descriptor', 0, 'extent sizes out of range');
      const here = start;
      if (e.type === 'ZERO' || e.access === 'NOACCESS') {
        placed.push({ start: here, size, map: async (pos) => ({ kind: 'zero', length: size - pos }), allocated: async () => [] });
      } else if (e.type === 'FLAT' || e.type === 'VMFS') {
        if (!e.file) throw new CorruptError('VMDK descriptor', 0, `${e.type} extent without a file name`);
        const file = await RawFileSource.open(resolve(dirname(path), e.file));
        opened.push(file);
        const base = e.offsetSectors * 512;
        placed.push({
          start: here,
          size,
          map: async (pos) => ({ kind: 'data', length: size - pos, source: file, offset: base + pos }),
          allocated: async () => [{ start: 0, length: Math.max(0, Math.min(size, file.size - base)) }],
        });
      } else if (e.type === 'SPARSE') {
        if (!e.file) throw new CorruptError('VMDK descriptor', 0, 'SPARSE extent without a file name');
        const file = await RawFileSource.open(resolve(dirname(path), e.file));
        opened.push(file);
        const sparse = await openSparseExtent(file, e.file);
        placed.push({ start: here, size, map: (pos) => sparse.extentAt(pos), allocated: () => sparse.allocated() });
      } else {
        throw new UnsupportedError(`VMDK extent type ${e.type} is not supported`);
      }
      start += size;
    }
    parent = await parentOf(d, path, context);
    const total = start;
    const find = (pos: number): PlacedExtent => {
      let lo = 0;
      let hi = placed.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (placed[mid].start <= pos) lo = mid;
        else hi = mid - 1;
      }
      return placed[lo];
    };
    return new MappedSource({
      size: total,
      description: `VMDK ${d.createType ?? 'descriptor'} image (${inner.description})`,
      extentAt: async (pos) => {
        const p = find(pos);
        const ext = await p.map(pos - p.start);
        // Never let one extent's answer run into the next extent.
        return { ...ext, length: Math.min(ext.length, p.start + p.size - pos) } as Extent;
      },
      backing: parent,
      ownAllocated: async () => {
        const out = new RangeCollector();
        for (const p of placed) for (const r of await p.allocated()) out.add(p.start + r.start, Math.min(r.length, p.size - r.start));
        return out.result();
      },
      closeOwn: async () => {
        for (const f of opened) await f.close();
        await inner.close();
      },
    });
  } catch (e) {
    for (const f of opened) await f.close();
    await parent?.close();
    throw e;
  }
}

export const vmdkSparseFormat: ContainerFormat = {
  name: 'vmdk',
  detect: (head) => head.length >= 512 && head.readUInt32LE(0) === SPARSE_MAGIC,
  open: openMonolithic,
};

export const vmdkDescriptorFormat: ContainerFormat = {
  name: 'vmdk',
  detect: (head) => head.toString('latin1', 0, DESCRIPTOR_MAGIC.length) === DESCRIPTOR_MAGIC,
  open: openDescriptorFile,
};
