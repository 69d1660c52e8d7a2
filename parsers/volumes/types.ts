/**
 * A partition table goes in, a list of volumes comes out. Names follow Linux:
 * p1..p4 MBR primaries, p5+ logical partitions in chain order, GPT entry N as
 * p(N+1)... i.e. the Nth entry (0-based) is p(N+1). No table: one volume "fs".
 */

export type TableKind = 'mbr' | 'gpt' | 'none';

export interface Volume {
  /** "p1", "p5", "fs". */
  name: string;
  /** Linux partition number (1-based); 0 for the whole-image "fs" volume. */
  number: number;
  /** First byte of the volume within the image. */
  start: number;
  /** Size in bytes. */
  size: number;
  /** MBR type id as "0x83", GPT type GUID lowercase, or "none" for a table-less image. */
  type: string;
  /** Human name of the type when known ("Linux filesystem", "EFI System"). */
  typeName: string | null;
  /** GPT partition name; null on MBR. */
  partitionLabel: string | null;
  /** GPT unique partition GUID; null on MBR. */
  partitionUuid: string | null;
  /** MBR active flag / GPT legacy BIOS bootable attribute. */
  bootable: boolean;
}

/** Where a GPT lives, for tools that rewrite it (restore onto a larger disk). */
export interface GptLayout {
  sectorSize: number;
  diskGuid: string;
  primaryHeaderLba: number;
  backupHeaderLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  /** True when the primary header was damaged and the backup was used. */
  usedBackup: boolean;
}

export interface VolumeTable {
  table: TableKind;
  /** Logical sector size the table was found with (512 or 4096). */
  sectorSize: number;
  volumes: Volume[];
  /** Non-fatal findings worth telling the user (fallback to backup GPT, skipped bad EBR link ...). */
  warnings: string[];
  /** Byte ranges holding table structures (MBR, EBRs, GPT headers and arrays). */
  metadataRanges: { start: number; length: number; what: string }[];
  gpt?: GptLayout;
}
