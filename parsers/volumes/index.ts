import type { ByteSource } from '../source/types.js';
import { readZeroPadded } from '../source/read.js';
import { readGpt, hasGptSignature } from './gpt.js';
import { looksLikeMbr, parseEntries, readMbr, SECTOR, hasBootSignature } from './mbr.js';
import type { Volume, VolumeTable } from './types.js';

export type { Volume, VolumeTable, TableKind, GptLayout } from './types.js';

/**
 * Find the partition table of a disk: GPT (512- or 4096-byte sectors, primary
 * or backup), else MBR with its logical chain, else none (the whole image is
 * one filesystem, volume "fs").
 */
export async function readVolumeTable(source: ByteSource): Promise<VolumeTable> {
  const sector0 = await readZeroPadded(source, 0, SECTOR);
  const protective = hasBootSignature(sector0) && parseEntries(sector0).some((e) => e.type === 0xee);

  for (const sectorSize of [512, 4096]) {
    if (await hasGptSignature(source, sectorSize)) {
      const gpt = await readGpt(source, sectorSize);
      return { table: 'gpt', sectorSize, volumes: gpt.volumes, warnings: gpt.warnings, metadataRanges: gpt.metadataRanges, gpt: gpt.layout };
    }
  }
  if (protective) {
    // Primary header wiped but the protective MBR says GPT: the backup may still be there.
    const gpt = await readGpt(source, SECTOR);
    return { table: 'gpt', sectorSize: SECTOR, volumes: gpt.volumes, warnings: gpt.warnings, metadataRanges: gpt.metadataRanges, gpt: gpt.layout };
  }
  if (looksLikeMbr(sector0) && !looksLikeBootSector(sector0)) {
    const mbr = await readMbr(source, sector0);
    return { table: 'mbr', sectorSize: SECTOR, volumes: mbr.volumes, warnings: mbr.warnings, metadataRanges: mbr.metadataRanges };
  }
  return { table: 'none', sectorSize: SECTOR, volumes: [wholeImageVolume(source.size)], warnings: [], metadataRanges: [] };
}

export function wholeImageVolume(size: number): Volume {
  return {
    name: 'fs',
    number: 0,
    start: 0,
    size,
    type: 'none',
    typeName: null,
    partitionLabel: null,
    partitionUuid: null,
    bootable: false,
  };
}

/**
 * A FAT/NTFS/exFAT volume boot sector also ends in 55 AA; a valid BIOS
 * parameter block tells it apart from an MBR (whose bytes 11..17 are code or zero).
 */
function looksLikeBootSector(sector: Buffer): boolean {
  const oem = sector.toString('latin1', 3, 11);
  if (oem === 'NTFS    ' || oem === 'EXFAT   ') return true;
  const jump = sector[0] === 0xe9 || (sector[0] === 0xeb && sector[2] === 0x90);
  const bytesPerSector = sector.readUInt16LE(11);
  const sectorsPerCluster = sector[13];
  const reserved = sector.readUInt16LE(14);
  const fats = sector[16];
  return (
    jump &&
    [512, 1024, 2048, 4096].includes(bytesPerSector) &&
    sectorsPerCluster > 0 &&
    (sectorsPerCluster & (sectorsPerCluster - 1)) === 0 &&
    reserved >= 1 &&
    fats >= 1 &&
    fats <= 4
  );
}
