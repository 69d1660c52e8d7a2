import type { FileSystem, FsNode, Stat } from '../fs/types.js';

/**
 * A resolved path: where it is, what it is, and (for files inside a
 * filesystem) the handles needed to read it without resolving again.
 */
export interface Entry {
  /** Normalized absolute path inside the image ("/p2/etc/passwd"). */
  path: string;
  name: string;
  stat: Stat;
  /** "volume-root-list" for "/", "volume" for "/p2", "node" for anything inside a filesystem. */
  kind: 'root' | 'volume' | 'node';
  /** Volume name ("p2"); null for "/". */
  volume: string | null;
  fs: FileSystem | null;
  node: FsNode | null;
}

/** The `ls --json` shape (the CLI contract; the web API returns the same). */
export interface LsJson {
  path: string;
  type: Stat['type'];
  size: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: string;
  target?: string;
  streams?: { name: string; size: number }[];
}

export function nsToDate(ns: bigint): Date {
  return new Date(Number(ns / 1_000_000n));
}

/** ISO-8601 UTC with milliseconds; out-of-range times are clamped rather than thrown. */
export function isoTime(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const clamped = Math.max(-8.64e15, Math.min(8.64e15, ms));
  return new Date(clamped).toISOString();
}

export function toLsJson(entry: Entry, target?: string): LsJson {
  const s = entry.stat;
  const out: LsJson = {
    path: entry.path,
    type: s.type,
    size: s.size,
    mode: s.mode & 0o7777,
    uid: s.uid,
    gid: s.gid,
    nlink: s.nlink,
    mtime: isoTime(s.mtimeNs),
  };
  if (s.type === 'symlink' && target !== undefined) out.target = target;
  if (s.streams && s.streams.length) out.streams = s.streams.map((x) => ({ name: x.name, size: x.size }));
  return out;
}

/** Full metadata for `stat --json` and the web details panel. */
export function toStatJson(entry: Entry, target?: string): Record<string, unknown> {
  const s = entry.stat;
  return {
    ...toLsJson(entry, target),
    ino: s.ino,
    atime: isoTime(s.atimeNs),
    ctime: isoTime(s.ctimeNs),
    birthtime: s.birthtimeNs === null ? null : isoTime(s.birthtimeNs),
    mtimeNs: s.mtimeNs.toString(),
    allocatedSize: s.allocatedSize,
    otherKind: s.otherKind ?? null,
    flags: s.flags ?? [],
    volume: entry.volume,
  };
}
