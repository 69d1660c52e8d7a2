import type { FuseStat, FuseStatfs } from './native.js';

/** An open regular file: the kernel's reads go straight to it, without resolving the path again. */
export interface OpenFile {
  /** Fill buffer[0..length) from `position`; fewer bytes only at the end of the file. */
  read(buffer: Buffer, length: number, position: number): Promise<number>;
}

export interface TreeEntry {
  name: string;
  attributes: FuseStat;
}

/**
 * What a mount shows, addressed by path components below the mountpoint
 * (libfuse hands us normalized absolute paths). Errors are the typed errors
 * of parsers/errors.ts; operations.ts turns them into errno values.
 * Nothing here follows symbolic links: the kernel does that itself.
 */
export interface MountTree {
  getattr(parts: string[]): Promise<FuseStat>;
  /** Entries of a directory, without "." and "..". */
  readdir(parts: string[]): Promise<TreeEntry[]>;
  open(parts: string[]): Promise<OpenFile>;
  readlink(parts: string[]): Promise<string>;
  statfs(parts: string[]): Promise<FuseStatfs>;
  close(): Promise<void>;
}
