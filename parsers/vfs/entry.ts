import type { FileSystem, FsNode, Stat } from '../fs/types.js';
import type { LsJson, StatJson } from './json.js';

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

export function nsToDate(ns: bigint): Date {
  return new Date(Number(ns / 1_000_000n));
}

/** ISO-8601 UTC with milliseconds; out-of-range times are clamped rather than thrown. */
export function isoTime(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  if (ms >= 0 && ms <= MAX_FAST_MS) return isoFromMs(ms);
  const clamped = Math.max(-8.64e15, Math.min(8.64e15, ms));
  return new Date(clamped).toISOString();
}

/** 9999-12-31T23:59:59.999Z: up to here the result has the plain YYYY-MM-DD form. */
const MAX_FAST_MS = 253402300799999;

const pad2 = (n: number) => (n < 10 ? '0' + n : '' + n);

/**
 * Date#toISOString for 1970..9999, computed (days to civil date, H. Hinnant's
 * algorithm). Listings format one time per entry, and the builtin took ~1.5 µs
 * each here: ~15 ms (57 ms cold, under the profiler) of a 10,000-entry folder
 * through the web API. This is about 3x faster.
 */
function isoFromMs(ms: number): string {
  const days = Math.floor(ms / 86400000);
  let rest = ms - days * 86400000;
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const hours = Math.floor(rest / 3600000);
  rest -= hours * 3600000;
  const minutes = Math.floor(rest / 60000);
  rest -= minutes * 60000;
  const seconds = Math.floor(rest / 1000);
  const millis = rest - seconds * 1000;
  return `${year}-${pad2(month)}-${pad2(day)}T${pad2(hours)}:${pad2(minutes)}:${pad2(seconds)}.${millis < 10 ? '00' + millis : millis < 100 ? '0' + millis : millis}Z`;
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
export function toStatJson(entry: Entry, target?: string): StatJson {
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
