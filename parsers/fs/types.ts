/**
 * The one read-only interface every filesystem parser implements. Front-ends
 * and the vfs use only this; they never see an on-disk format.
 *
 * Nodes are opaque handles returned by the filesystem with their metadata
 * already loaded. Names are plain Unicode strings (NFC not enforced: they are
 * what the disk holds).
 */
import type { ByteRange } from '../source/types.js';
import type { EntryType } from './entry-type.js';

export type { EntryType };

/** Alternate data stream (NTFS) or any other named fork of a file. */
export interface StreamInfo {
  name: string;
  size: number;
}

export interface Stat {
  type: EntryType;
  /** Logical size in bytes (for symlinks: length of the target). */
  size: number;
  /**
   * Permission bits only (mode & 0o7777). Filesystems without Unix modes
   * synthesize them the same way everywhere: directories 0o755, files 0o644
   * (0o444 when the read-only attribute is set), symlinks 0o777; uid/gid 0.
   */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** Times as nanoseconds since the Unix epoch (exact; Date has only ms). */
  mtimeNs: bigint;
  atimeNs: bigint;
  ctimeNs: bigint;
  /** Creation time when the filesystem records it. */
  birthtimeNs: bigint | null;
  /** Bytes actually allocated on disk (for st_blocks and du); may be < size for sparse files. */
  allocatedSize: number;
  /** Inode / MFT record / directory-entry position: unique within the volume. */
  ino: number;
  /** For type 'other': what it is ("fifo", "char device 4,1", "socket", "reparse point 0x80000017" ...). */
  otherKind?: string;
  /** Device number for char/block devices (Linux encoding), when type is 'other'. */
  rdev?: number;
  /** Named alternate streams (NTFS ADS), if any. The unnamed default stream is not listed. */
  streams?: StreamInfo[];
  /** Filesystem-specific flags worth showing (e.g. "compressed", "sparse", "encrypted", "hidden", "system"). */
  flags?: string[];
}

export interface FsNode {
  readonly stat: Stat;
}

export interface DirEntry<N extends FsNode = FsNode> {
  name: string;
  node: N;
}

/** `length` file bytes found at volume byte `at`, or zeros when `at` is null. */
export interface FilePiece {
  at: number | null;
  length: number;
}

export interface FsInfo {
  /** "ext4", "ext3", "ext2", "vfat" variants "fat12"/"fat16"/"fat32", "exfat", "ntfs". */
  type: string;
  label: string | null;
  uuid: string | null;
  blockSize: number;
  totalBlocks: number;
  freeBlocks: number;
  totalInodes: number | null;
  freeInodes: number | null;
  /** Longest name the filesystem allows, for statfs. */
  maxNameLength: number;
  /** Problems found at open that do not stop reading (backup boot region used, truncated volume...), one line each. */
  warnings?: string[];
}

export interface FileSystem<N extends FsNode = FsNode> {
  info(): FsInfo;
  root(): Promise<N>;
  /** Find one name in a directory; null when absent. Throws NotADirectoryError-like errors only via the vfs. */
  lookup(dir: N, name: string): Promise<N | null>;
  /** All entries of a directory except "." and "..", in on-disk order. Hidden metafiles only when `all`. */
  readdir(dir: N, options?: { all?: boolean }): Promise<DirEntry<N>[]>;
  /**
   * Read file bytes [position, position+length) into buffer[offset..]. Returns
   * bytes read (short only at end of file). Holes and unwritten ranges read as
   * zeros. Large reads must reach the source as large reads.
   */
  read(node: N, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  readlink(node: N): Promise<string>;
  /**
   * Where the bytes of file range [position, position+length) lie in the
   * volume, in file order: each piece is `length` bytes at volume byte `at`,
   * or zeros when `at` is null (holes, unwritten extents). Pieces may stop
   * short of `length` (the caller asks again from where they end) but never
   * run past the end of the file. Null when the file's bytes are not stored
   * plainly (inline, compressed, encrypted): read() it instead. Optional; it
   * lets bulk copies read the volume directly (see Disk.syncReader).
   */
  mapFile?(node: N, position: number, length: number): Promise<FilePiece[] | null>;
  /** A named alternate stream of a file as a readable node (NTFS ADS). Absent when unsupported. */
  openStream?(node: N, streamName: string): Promise<N | null>;
  /** Byte ranges of the volume that hold allocated data or metadata (from the allocation bitmap), sorted, merged. */
  allocatedRanges(): Promise<ByteRange[]>;
  close(): Promise<void>;
}

/** A filesystem driver: detection by magic, and opening. */
export interface FsDriver {
  /** Name used in messages. */
  readonly name: string;
  /**
   * Look at the volume and say whether it is ours. `head` holds the first
   * 64 KiB+ of the volume (less if the volume is smaller). Return the precise
   * type ("ext4", "fat32") or null. Must not throw on garbage.
   */
  probe(head: Buffer, volumeSize: number): string | null;
  /**
   * Second chance when no driver recognized the head: formats that keep a
   * backup of their superblock or boot sector (ext in group 1, NTFS at the
   * end of the volume) look for it here. Only asked when every `probe` said no
   * and no foreign signature matched; must not throw on garbage.
   */
  probeDamaged?(source: import('../source/types.js').ByteSource): Promise<string | null>;
  open(source: import('../source/types.js').ByteSource): Promise<FileSystem>;
}
