/**
 * The JSON shapes the vfs hands to front-ends: `info`, `ls` and `stat --json`
 * of the CLI, and the same answers from the web API. Types only, importing
 * nothing but other type-only modules, so that the browser code (web/) can
 * import them too without pulling in Node.
 */
import type { EntryType } from '../fs/entry-type.js';
import type { TableKind } from '../volumes/types.js';

export interface VolumeJson {
  name: string;
  start: number;
  size: number;
  type: string;
  fs: string | null;
  label: string | null;
  uuid: string | null;
  /** Human name of the partition type ("Linux filesystem"). */
  typeName: string | null;
  /** GPT partition name. */
  partitionLabel: string | null;
  /** True when Loopless can read the filesystem's files. */
  supported: boolean;
  /** Why the filesystem could not be opened, when it could not. */
  error: string | null;
}

export interface InfoJson {
  size: number;
  table: TableKind;
  volumes: VolumeJson[];
  /** Containers unwrapped to reach the raw disk, outermost first (empty for raw images). */
  chain: string[];
  /** Bytes of the image file on disk. */
  fileSize: number;
  /** Non-fatal findings (backup GPT used, EBR loop cut ...). */
  warnings: string[];
}

/** The `ls --json` shape (the CLI contract; the web API returns the same). */
export interface LsJson {
  path: string;
  type: EntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: string;
  target?: string;
  streams?: { name: string; size: number }[];
}

/** The `stat --json` shape: every piece of metadata. */
export interface StatJson extends LsJson {
  ino: number;
  atime: string;
  ctime: string;
  birthtime: string | null;
  /** The modification time to the nanosecond, as a decimal string (JSON numbers cannot hold it). */
  mtimeNs: string;
  allocatedSize: number;
  otherKind: string | null;
  flags: string[];
  /** Volume name ("p2"); null for "/". */
  volume: string | null;
}
