/**
 * Reparse points and Interix special files: what turns an NTFS file into a
 * symlink (or something else) for a Unix reader.
 *
 * Symlink targets are rendered for someone browsing the volume from Linux:
 * - relative targets (symlinks with the relative flag) keep their shape, with
 *   `\` turned into `/`: `..\docs\a.txt` -> `../docs/a.txt`, so they resolve
 *   inside a mounted tree exactly as on Windows;
 * - absolute targets lose the NT prefix (`\??\`, `\\?\`) and become
 *   absolute-looking paths that name the drive: `\??\C:\Users\bob` ->
 *   `/C:/Users/bob`; volume GUID paths -> `/Volume{guid}/...`; UNC paths
 *   `\??\UNC\server\share\x` -> `//server/share/x`.
 *   We cannot know which volume was "C:" on the machine the image came from,
 *   so such links dangle rather than silently point into the wrong volume (or
 *   loop, as Windows' compatibility junctions like "Application Data" would).
 *   The drive-qualified path still tells the user where to look.
 */

export const ReparseTag = {
  mountPoint: 0xa0000003,
  symlink: 0xa000000c,
  /** WSL symlink: a UTF-8 target. */
  lxSymlink: 0xa000001d,
} as const;

/** Well-known tags, to say what an unsupported reparse point is. */
const TAG_NAMES: Record<number, string> = {
  0x80000005: 'driver extender',
  0x80000006: 'HSM2',
  0x80000007: 'single instance storage',
  0x80000008: 'WIM image',
  0x80000009: 'cluster shared volume',
  0x8000000a: 'DFS',
  0x8000000b: 'filter manager',
  0x80000012: 'DFS-R',
  0x80000013: 'deduplicated',
  0x80000014: 'NFS',
  0x80000015: 'file placeholder',
  0x80000017: 'WOF compressed',
  0x80000018: 'Windows container isolation',
  0x8000001b: 'app execution alias',
  0x8000001e: 'storage sync',
  0x80000020: 'unhandled',
  0x80000021: 'OneDrive',
  0x80000023: 'AF_UNIX socket',
  0x80000024: 'WSL FIFO',
  0x80000025: 'WSL character device',
  0x80000026: 'WSL block device',
  0xa0000010: 'IIS cache',
  0xa0000019: 'global reparse',
  0xa000001c: 'projected file system',
  0xa0000027: 'WCI link',
  0xc0000004: 'HSM',
  0xc0000014: 'append-only',
};

/** Human name of a reparse tag: "reparse point 0x80000017 (WOF compressed)". */
export function describeReparseTag(tag: number): string {
  const hex = `0x${tag.toString(16).padStart(8, '0')}`;
  // Cloud files use 0x9000x01A: the x nibble is a per-provider flag.
  const name = (tag & 0xffff0fff) === 0x9000001a ? 'cloud file' : TAG_NAMES[tag];
  return name ? `reparse point ${hex} (${name})` : `reparse point ${hex}`;
}

/** Turn an NT path into the Unix-looking target described above. */
export function renderNtPath(path: string, relative: boolean): string {
  if (relative) return path.replace(/\\/g, '/');
  let p = path;
  if (p.startsWith('\\??\\') || p.startsWith('\\\\?\\')) p = p.slice(4);
  if (/^UNC\\/i.test(p)) return `//${p.slice(4).replace(/\\/g, '/')}`;
  if (p.startsWith('\\\\')) return `//${p.slice(2).replace(/\\/g, '/')}`;
  p = p.replace(/\\/g, '/');
  return p.startsWith('/') ? p : `/${p}`;
}

export type ReparseMeaning = { kind: 'symlink'; target: string } | { kind: 'other'; tag: number; description: string };

/**
 * Read a reparse buffer: tag (u32), data length (u16), reserved (u16), then
 * the tag's data. Symlinks and mount points carry substitute and print names
 * (offsets/lengths into a UTF-16 path buffer); symlinks add a flags word whose
 * bit 0 means "relative". Malformed data is described, not trusted.
 */
export function interpretReparse(b: Buffer): ReparseMeaning {
  if (b.length < 8) return { kind: 'other', tag: 0, description: 'reparse point (truncated data)' };
  const tag = b.readUInt32LE(0);
  const dataLength = Math.min(b.readUInt16LE(4), b.length - 8);
  const data = b.subarray(8, 8 + dataLength);
  if (tag === ReparseTag.symlink || tag === ReparseTag.mountPoint) {
    const pathStart = tag === ReparseTag.symlink ? 12 : 8;
    if (data.length >= pathStart) {
      const relative = tag === ReparseTag.symlink && (data.readUInt32LE(8) & 1) === 1;
      const name = (offAt: number) => {
        const off = pathStart + data.readUInt16LE(offAt);
        const len = data.readUInt16LE(offAt + 2);
        return len > 0 && !(len & 1) && off + len <= data.length ? data.toString('utf16le', off, off + len) : null;
      };
      // The substitute name is what Windows follows; the print name is the fallback.
      const target = name(0) ?? name(4);
      if (target) return { kind: 'symlink', target: renderNtPath(target, relative) };
    }
    return { kind: 'other', tag, description: `${describeReparseTag(tag)} with malformed data` };
  }
  if (tag === ReparseTag.lxSymlink && data.length > 4 && data.readUInt32LE(0) === 2) {
    return { kind: 'symlink', target: data.toString('utf8', 4) };
  }
  return { kind: 'other', tag, description: describeReparseTag(tag) };
}

/**
 * Interix special files, as ntfs-3g creates symlinks and devices by default:
 * a file with the system attribute whose data starts with a magic. Only
 * files that carry the magic are reinterpreted.
 */
export type InterixMeaning = { kind: 'symlink'; target: string } | { kind: 'device'; block: boolean; major: number; minor: number } | null;

export const INTERIX_MAX_SIZE = 8 + 2 * 4096;

export function interpretInterix(b: Buffer): InterixMeaning {
  if (b.length < 8) return null;
  const magic = b.toString('latin1', 0, 8);
  if (magic === 'IntxLNK\x01' && b.length > 8 && (b.length & 1) === 0) return { kind: 'symlink', target: b.toString('utf16le', 8) };
  if ((magic === 'IntxCHR\0' || magic === 'IntxBLK\0') && b.length >= 24) {
    const major = Number(b.readBigUInt64LE(8) & 0xffffffffn);
    const minor = Number(b.readBigUInt64LE(16) & 0xffffffffn);
    return { kind: 'device', block: magic === 'IntxBLK\0', major, minor };
  }
  return null;
}
