import { CorruptError, UnsupportedError } from '../../errors.js';
import type { ContainerFormat } from '../open.js';
import { readExact } from '../read.js';
import type { ByteRange, ByteSource } from '../types.js';
import { u64le } from './binary.js';
import { MappedSource, type Extent } from './mapped.js';
import { RangeCollector } from './ranges.js';

/**
 * VirtualBox VDI (as read by qemu's block/vdi.c): a header, a block map of
 * 32-bit entries, and blocks (1 MiB by default). Differencing VDIs name their
 * parent only by UUID, so there is no file to find: they are refused.
 */
const SIGNATURE = 0xbeda107f;
const UNALLOCATED = 0xffffffff;
const DISCARDED = 0xfffffffe;
const TYPE_DIFF = 4;
const MAX_BLOCKS = 2 ** 28;

export async function openVdi(inner: ByteSource): Promise<ByteSource> {
  const S = 'VDI header';
  const h = await readExact(inner, 0, 512, S);
  if (h.readUInt32LE(64) !== SIGNATURE) throw new CorruptError(S, 64, 'bad signature');
  const version = h.readUInt32LE(68);
  if (version >>> 16 !== 1) throw new UnsupportedError(`VDI version ${version >>> 16}.${version & 0xffff} is not supported`);
  const type = h.readUInt32LE(76);
  if (type === TYPE_DIFF) throw new UnsupportedError('differencing VDI images (parent known only by UUID) are not supported');
  const bmapOffset = h.readUInt32LE(340);
  const dataOffset = h.readUInt32LE(344);
  const size = u64le(h, 368, S, 0);
  const blockSize = h.readUInt32LE(376);
  const blockExtra = h.readUInt32LE(380);
  const blocks = h.readUInt32LE(384);
  if (blockSize < 512 || (blockSize & (blockSize - 1)) !== 0) throw new CorruptError(S, 376, `block size ${blockSize} is not a power of two`);
  if (blocks > MAX_BLOCKS || blocks * blockSize < size) throw new CorruptError(S, 384, `${blocks} blocks of ${blockSize} bytes do not fit a ${size}-byte disk`);
  const bmap = await readExact(inner, bmapOffset, blocks * 4, 'VDI block map');

  const extentAt = async (pos: number): Promise<Extent> => {
    const block = Math.floor(pos / blockSize);
    const inBlock = pos - block * blockSize;
    const length = blockSize - inBlock;
    const entry = bmap.readUInt32LE(block * 4);
    if (entry === UNALLOCATED || entry === DISCARDED) return { kind: 'zero', length };
    const at = dataOffset + entry * (blockSize + blockExtra) + blockExtra;
    if (entry >= blocks || at >= inner.size) {
      throw new CorruptError('VDI block map', bmapOffset + block * 4, `block ${entry} at byte ${at} is past the end of the ${inner.size}-byte file`);
    }
    return { kind: 'data', length, source: inner, offset: at + inBlock };
  };

  const ownAllocated = async (): Promise<ByteRange[]> => {
    const out = new RangeCollector();
    for (let b = 0; b < blocks; b++) {
      const e = bmap.readUInt32LE(b * 4);
      if (e !== UNALLOCATED && e !== DISCARDED) out.add(b * blockSize, blockSize);
    }
    return out.result();
  };

  return new MappedSource({
    size,
    description: `VDI ${type === 2 ? 'fixed' : 'dynamic'} image (${inner.description})`,
    extentAt,
    ownAllocated,
    closeOwn: () => inner.close(),
  });
}

export const vdiFormat: ContainerFormat = {
  name: 'vdi',
  detect: (head) => head.length >= 512 && head.readUInt32LE(64) === SIGNATURE,
  open: (inner) => openVdi(inner),
};
