import type { ByteSource } from '../source/types.js';
import { readExact } from '../source/read.js';
import type { Volume } from './types.js';
import { mbrTypeName } from './type-names.js';

/** One 16-byte entry of an MBR or EBR partition table. */
export interface MbrEntry {
  status: number;
  type: number;
  /** LBA as stored (relative to whatever the table's convention is). */
  lba: number;
  sectors: number;
}

export const SECTOR = 512;
const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
/** Linux stops at a few hundred logical partitions; a longer chain is a loop in disguise. */
const MAX_LOGICAL = 256;

export function isExtendedType(type: number): boolean {
  return EXTENDED_TYPES.has(type);
}

export function hasBootSignature(sector: Buffer): boolean {
  return sector.length >= 512 && sector[510] === 0x55 && sector[511] === 0xaa;
}

export function parseEntries(sector: Buffer): MbrEntry[] {
  const out: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const o = 446 + i * 16;
    out.push({ status: sector[o], type: sector[o + 4], lba: sector.readUInt32LE(o + 8), sectors: sector.readUInt32LE(o + 12) });
  }
  return out;
}

/**
 * Does sector 0 look like a real partition table rather than boot code or a
 * filesystem boot sector that happens to end in 55 AA? Every status byte must
 * be 0x00 or 0x80, used entries must not start at sector 0, and must not overlap.
 */
export function looksLikeMbr(sector: Buffer): boolean {
  if (!hasBootSignature(sector)) return false;
  const entries = parseEntries(sector);
  if (entries.some((e) => e.status !== 0 && e.status !== 0x80)) return false;
  const used = entries.filter((e) => e.type !== 0 && e.sectors !== 0);
  if (used.length === 0) return false;
  if (used.some((e) => e.lba === 0)) return false;
  const sorted = [...used].sort((a, b) => a.lba - b.lba);
  for (let i = 1; i < sorted.length; i++) if (sorted[i - 1].lba + sorted[i - 1].sectors > sorted[i].lba) return false;
  return true;
}

function volumeFrom(name: string, number: number, entry: MbrEntry, absoluteLba: number): Volume {
  return {
    name,
    number,
    start: absoluteLba * SECTOR,
    size: entry.sectors * SECTOR,
    type: '0x' + entry.type.toString(16).padStart(2, '0'),
    typeName: mbrTypeName(entry.type),
    partitionLabel: null,
    partitionUuid: null,
    bootable: entry.status === 0x80,
  };
}

export interface MbrResult {
  volumes: Volume[];
  warnings: string[];
  metadataRanges: { start: number; length: number; what: string }[];
}

/**
 * Primaries p1..p4 by slot; logical partitions p5+ in chain order. In each EBR,
 * entry 0 is the logical partition relative to that EBR, entry 1 links to the
 * next EBR relative to the start of the extended partition. A loop or a link
 * outside the extended partition ends the chain with a warning; what was found
 * before it stays usable.
 */
export async function readMbr(source: ByteSource, sector0: Buffer): Promise<MbrResult> {
  const diskSectors = Math.floor(source.size / SECTOR);
  const volumes: Volume[] = [];
  const warnings: string[] = [];
  const metadataRanges = [{ start: 0, length: SECTOR, what: 'MBR' }];
  let extended: { lba: number; sectors: number } | null = null;

  parseEntries(sector0).forEach((entry, i) => {
    if (entry.type === 0 || entry.sectors === 0) return;
    if (isExtendedType(entry.type)) {
      if (extended) warnings.push(`MBR entry ${i + 1}: a second extended partition is ignored`);
      else extended = { lba: entry.lba, sectors: entry.sectors };
      return;
    }
    if (entry.lba >= diskSectors) {
      warnings.push(`MBR entry ${i + 1} (p${i + 1}) starts at sector ${entry.lba}, past the end of the ${diskSectors}-sector image; skipped`);
      return;
    }
    if (entry.lba + entry.sectors > diskSectors) {
      warnings.push(`p${i + 1} extends past the end of the image (truncated image?); only the first ${diskSectors - entry.lba} sectors are readable`);
    }
    volumes.push(volumeFrom(`p${i + 1}`, i + 1, entry, entry.lba));
  });

  if (extended) {
    const logical = await readLogicalChain(source, extended, diskSectors, warnings, metadataRanges);
    volumes.push(...logical);
  }
  return { volumes, warnings, metadataRanges };
}

async function readLogicalChain(
  source: ByteSource,
  extended: { lba: number; sectors: number },
  diskSectors: number,
  warnings: string[],
  metadataRanges: MbrResult['metadataRanges'],
): Promise<Volume[]> {
  const out: Volume[] = [];
  const extEnd = extended.lba + extended.sectors;
  const visited = new Set<number>();
  let ebrLba = extended.lba;
  let number = 5;
  for (let hop = 0; ; hop++) {
    if (hop >= MAX_LOGICAL) {
      warnings.push(`EBR chain longer than ${MAX_LOGICAL} links; stopped (loop?)`);
      break;
    }
    if (visited.has(ebrLba)) {
      warnings.push(`EBR chain loops back to sector ${ebrLba} (byte ${ebrLba * SECTOR}); chain stopped after ${out.length} logical partitions`);
      break;
    }
    if (ebrLba < extended.lba || ebrLba >= extEnd || ebrLba >= diskSectors) {
      warnings.push(`EBR link to sector ${ebrLba} (byte ${ebrLba * SECTOR}) lies outside the extended partition (sectors ${extended.lba}..${extEnd - 1}) or the image; chain stopped`);
      break;
    }
    visited.add(ebrLba);
    const ebr = await readExact(source, ebrLba * SECTOR, SECTOR, 'EBR');
    metadataRanges.push({ start: ebrLba * SECTOR, length: SECTOR, what: `EBR at sector ${ebrLba}` });
    if (!hasBootSignature(ebr)) {
      // An empty extended partition (no logical partitions yet) has a zeroed first EBR.
      if (hop > 0 || ebr.some((b) => b !== 0)) warnings.push(`EBR at byte ${ebrLba * SECTOR} has no 55 AA signature; chain stopped`);
      break;
    }
    const [data, link] = parseEntries(ebr);
    if (data.type !== 0 && data.sectors !== 0 && !isExtendedType(data.type)) {
      const abs = ebrLba + data.lba;
      if (abs >= extEnd || abs >= diskSectors) {
        warnings.push(`logical partition in EBR at byte ${ebrLba * SECTOR} starts outside the extended partition; skipped`);
      } else {
        if (abs + data.sectors > Math.min(extEnd, diskSectors)) {
          warnings.push(`p${number} extends past the end of the extended partition or image; only its readable part is used`);
        }
        out.push(volumeFrom(`p${number}`, number, data, abs));
        number++;
      }
    }
    if (link.type === 0 || link.sectors === 0 || !isExtendedType(link.type)) break;
    ebrLba = extended.lba + link.lba;
  }
  return out;
}
