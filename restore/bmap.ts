/**
 * bmaptool block maps: writing version 2.0 from a restore plan, reading
 * versions 1.0 to 2.0 as bmaptool writes them.
 *
 * Format (bmaptool's BmapCreate/BmapCopy): ImageSize, BlockSize,
 * BlocksCount = ceil(ImageSize / BlockSize), MappedBlocksCount, and a
 * BlockMap of <Range> elements "first-last" (or "n") in blocks, inclusive.
 * 1.2 gives each range a `sha1` attribute; 1.3 adds BmapFileSHA1; 1.4 and 2.0
 * name the algorithm in ChecksumType and use `chksum` and BmapFileChecksum.
 * A file checksum is computed over the file with its own value replaced by
 * ASCII zeros. A range checksum covers the range's bytes up to the image end.
 */
import { createHash, getHashes } from 'node:crypto';
import { CorruptError, UnsupportedError } from '../parsers/errors.js';
import type { ByteSource } from '../parsers/source/types.js';
import type { CopyRange } from './engine.js';
import { alignOut, rangeEnd, type ByteRange } from './ranges.js';

export const BMAP_BLOCK = 4096;

export interface BmapRange {
  first: number;
  last: number;
  checksum: string | null;
}

export interface Bmap {
  version: string;
  imageSize: number;
  blockSize: number;
  blocksCount: number;
  mappedBlocksCount: number;
  /** Algorithm of the range checksums; null when the file has none. */
  checksumType: string | null;
  ranges: BmapRange[];
}

// ---------------------------------------------------------------- reading

export async function parseBmap(raw: Buffer, path: string): Promise<Bmap> {
  const bad = (detail: string) => new CorruptError(`bmap file ${path}`, 0, detail);
  // Loaded on demand: most restores have no block map, and the parser costs startup time.
  const { XMLParser } = await import('fast-xml-parser');
  let doc: Record<string, unknown>;
  try {
    doc = new XMLParser({
      ignoreAttributes: false,
      attributeNamePrefix: '@_',
      parseTagValue: false,
      parseAttributeValue: false,
      trimValues: true,
      isArray: (name) => name === 'Range',
    }).parse(raw.toString('utf8'), true) as Record<string, unknown>;
  } catch (e) {
    throw bad(`not valid XML: ${e instanceof Error ? e.message : String(e)}`);
  }
  const root = doc.bmap as Record<string, unknown> | undefined;
  if (!root || typeof root !== 'object') throw bad('no <bmap> element');
  const version = String(root['@_version'] ?? '');
  const m = /^(\d+)\.(\d+)$/.exec(version);
  if (!m) throw bad(`version "${version}" is not "major.minor"`);
  const major = Number(m[1]);
  if (major < 1 || major > 2) throw new UnsupportedError(`bmap file ${path}: format version ${version} is not supported (1.0 to 2.0 are)`);

  const int = (name: string, required = true): number => {
    const v = root[name];
    if (v === undefined && !required) return NaN;
    const n = Number(String(v ?? '').trim());
    if (!Number.isSafeInteger(n) || n < 0) throw bad(`<${name}> is missing or not a number`);
    return n;
  };
  const imageSize = int('ImageSize');
  const blockSize = int('BlockSize');
  const blocksCount = int('BlocksCount');
  if (blockSize === 0) throw bad('<BlockSize> is 0');
  if (blocksCount !== Math.ceil(imageSize / blockSize)) {
    throw bad(`inconsistent: ${imageSize} bytes need ${Math.ceil(imageSize / blockSize)} blocks of ${blockSize}, the file says ${blocksCount}`);
  }
  const mappedBlocksCount = int('MappedBlocksCount', false);

  // Which attribute carries range checksums, and which element the file's own.
  let checksumType: string | null = null;
  let fileChecksumElement: string | null = null;
  if (root.ChecksumType !== undefined) {
    checksumType = String(root.ChecksumType).trim().toLowerCase();
    fileChecksumElement = 'BmapFileChecksum';
  } else if (root.BmapFileSHA1 !== undefined || version.startsWith('1.')) {
    checksumType = 'sha1';
    fileChecksumElement = root.BmapFileSHA1 !== undefined ? 'BmapFileSHA1' : null;
  }
  if (checksumType && !getHashes().includes(checksumType)) throw new UnsupportedError(`bmap file ${path}: checksum type ${checksumType} is not available`);

  if (fileChecksumElement && root[fileChecksumElement] !== undefined) {
    const stored = String(root[fileChecksumElement]).trim();
    const computed = fileChecksum(raw, stored, checksumType!);
    if (computed !== stored.toLowerCase()) throw bad(`${fileChecksumElement} mismatch: the file says ${stored}, its contents give ${computed} (edited or damaged)`);
  }

  const map = root.BlockMap as Record<string, unknown> | string | undefined;
  const elements = (map && typeof map === 'object' ? (map.Range as unknown[] | undefined) : undefined) ?? [];
  const ranges: BmapRange[] = [];
  let next = 0;
  let mapped = 0;
  for (const el of elements) {
    const text = typeof el === 'object' && el !== null ? String((el as Record<string, unknown>)['#text'] ?? '') : String(el);
    const attrs = typeof el === 'object' && el !== null ? (el as Record<string, unknown>) : {};
    const rm = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(text);
    if (!rm) throw bad(`range "${text}" is not "first-last" or "block"`);
    const first = Number(rm[1]);
    const last = rm[2] === undefined ? first : Number(rm[2]);
    if (last < first) throw bad(`range ${text}: first block after last`);
    if (first < next) throw bad(`range ${text} overlaps or precedes the previous range`);
    if (last >= blocksCount) throw bad(`range ${text} lies past the image's ${blocksCount} blocks`);
    const sum = attrs['@_chksum'] ?? attrs['@_sha1'];
    ranges.push({ first, last, checksum: sum === undefined ? null : String(sum).trim().toLowerCase() });
    mapped += last - first + 1;
    next = last + 1;
  }
  if (!Number.isNaN(mappedBlocksCount) && mappedBlocksCount !== mapped) {
    throw bad(`<MappedBlocksCount> says ${mappedBlocksCount} blocks, the ranges hold ${mapped}`);
  }
  return { version, imageSize, blockSize, blocksCount, mappedBlocksCount: mapped, checksumType, ranges };
}

/** As bmaptool verifies it: hash the file with its checksum's digits replaced by zeros. */
function fileChecksum(raw: Buffer, stored: string, algorithm: string): string {
  const at = raw.indexOf(stored, 0, 'latin1');
  const copy = Buffer.from(raw);
  if (at >= 0) copy.fill('0', at, at + stored.length);
  return createHash(algorithm).update(copy).digest('hex');
}

/** The byte ranges a block map says to copy, each with its checksum. */
export function bmapCopyRanges(bmap: Bmap): CopyRange[] {
  return bmap.ranges.map((r) => {
    const start = r.first * bmap.blockSize;
    const end = Math.min((r.last + 1) * bmap.blockSize, bmap.imageSize);
    const range: CopyRange = { start, length: end - start };
    if (r.checksum && bmap.checksumType) range.checksum = { algorithm: bmap.checksumType, hex: r.checksum };
    return range;
  });
}

// ---------------------------------------------------------------- writing

/** Block ranges [first, last] covering the given byte ranges. */
export function toBlockRanges(ranges: ByteRange[], imageSize: number): { first: number; last: number }[] {
  return alignOut(ranges, BMAP_BLOCK, imageSize).map((r) => ({
    first: r.start / BMAP_BLOCK,
    last: Math.ceil(rangeEnd(r) / BMAP_BLOCK) - 1,
  }));
}

/**
 * A bmaptool 2.0 file mapping `ranges` of the image, with a sha256 per range.
 * Reads every mapped byte once; `onProgress` gets the bytes hashed so far.
 */
export async function renderBmap(source: ByteSource, ranges: ByteRange[], onProgress?: (hashed: number) => void): Promise<string> {
  const imageSize = source.size;
  const blocks = toBlockRanges(ranges, imageSize);
  const blocksCount = Math.ceil(imageSize / BMAP_BLOCK);
  const mapped = blocks.reduce((n, b) => n + b.last - b.first + 1, 0);
  const lines: string[] = [];
  const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
  let hashed = 0;
  for (const b of blocks) {
    const start = b.first * BMAP_BLOCK;
    const end = Math.min((b.last + 1) * BMAP_BLOCK, imageSize);
    const hash = createHash('sha256');
    for (let pos = start; pos < end; ) {
      const n = await source.read(buffer, 0, Math.min(buffer.length, end - pos), pos);
      if (n <= 0) throw new CorruptError('image', pos, `ends before byte ${end} (truncated?)`);
      hash.update(buffer.subarray(0, n));
      pos += n;
      hashed += n;
      onProgress?.(hashed);
    }
    const span = b.first === b.last ? `${b.first}` : `${b.first}-${b.last}`;
    lines.push(`        <Range chksum="${hash.digest('hex')}"> ${span} </Range>\n`);
  }
  const percent = blocksCount ? ((mapped * 100) / blocksCount).toFixed(1) : '0.0';
  const zeros = '0'.repeat(64);
  const text =
    `<?xml version="1.0" ?>\n` +
    `<!-- Block map written by Loopless from the image's partition table and\n` +
    `     filesystem allocation bitmaps (not only from holes in the file): the\n` +
    `     blocks listed are the table areas, everything outside the filesystems,\n` +
    `     and each filesystem's allocated blocks. bmaptool 2.0 format. -->\n\n` +
    `<bmap version="2.0">\n` +
    `    <!-- Image size in bytes: ${humanBytes(imageSize)} -->\n` +
    `    <ImageSize> ${imageSize} </ImageSize>\n\n` +
    `    <!-- Size of a block in bytes -->\n` +
    `    <BlockSize> ${BMAP_BLOCK} </BlockSize>\n\n` +
    `    <!-- Count of blocks in the image file -->\n` +
    `    <BlocksCount> ${blocksCount} </BlocksCount>\n\n` +
    `    <!-- Count of mapped blocks: ${humanBytes(mapped * BMAP_BLOCK)} or ${percent}% -->\n` +
    `    <MappedBlocksCount> ${mapped} </MappedBlocksCount>\n\n` +
    `    <!-- Type of checksum used in this file -->\n` +
    `    <ChecksumType> sha256 </ChecksumType>\n\n` +
    `    <!-- The checksum of this bmap file. When it is calculated, the value of\n` +
    `         the checksum has be zero (all ASCII "0" symbols).  -->\n` +
    `    <BmapFileChecksum> ${zeros} </BmapFileChecksum>\n\n` +
    `    <!-- The block map which consists of elements which may either be a\n` +
    `         range of blocks or a single block. The 'chksum' attribute\n` +
    `         (if present) is the checksum of this blocks range. -->\n` +
    `    <BlockMap>\n` +
    lines.join('') +
    `    </BlockMap>\n` +
    `</bmap>\n`;
  const sum = createHash('sha256').update(text).digest('hex');
  return text.replace(`<BmapFileChecksum> ${zeros} </BmapFileChecksum>`, `<BmapFileChecksum> ${sum} </BmapFileChecksum>`);
}

function humanBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[i]}`;
}
