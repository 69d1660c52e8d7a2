/**
 * Linear directory entries (Documentation/filesystems/ext4/directory.rst).
 * One parser reads every kind of directory block: htree interior blocks
 * present themselves as a single unused entry (inode 0) spanning the block,
 * the dx_root hides inside the ".." entry's rec_len, and the metadata_csum
 * tail is an entry with inode 0 too. Unused entries are simply skipped.
 */

const HEADER = 8;

export interface RawDirEntry {
  name: string;
  ino: number;
}

export interface DirBlockResult {
  /** False when a record was malformed and the rest of the block was skipped. */
  intact: boolean;
  /** Byte offset (within the block) of the first bad record, when not intact. */
  badAt: number;
  problem: string;
}

/**
 * rec_len as stored: 64 KiB blocks need 17 bits, so the low two bits (always
 * zero for a 4-byte-aligned length) carry bits 16-17, and 65535 or 0 mean a
 * whole 64 KiB block.
 */
function recLen(stored: number, blockSize: number): number {
  if (blockSize < 65536) return stored;
  if (stored === 65535 || stored === 0) return 65536;
  return (stored & 65532) | ((stored & 3) << 16);
}

/**
 * Append the live entries of `buf[start..end)` to `out`, skipping "." and
 * "..", unused slots, entries whose inode number is impossible and names
 * containing "/" or NUL. Stops at the first record whose length is
 * inconsistent (it cannot be stepped over safely).
 */
export function parseDirEntries(
  buf: Buffer,
  start: number,
  end: number,
  blockSize: number,
  maxIno: number,
  out: RawDirEntry[],
): DirBlockResult {
  let at = start;
  while (at < end) {
    if (at + HEADER > end) return bad(at - start, 'entry header runs past the block end');
    const ino = buf.readUInt32LE(at);
    const len = recLen(buf.readUInt16LE(at + 4), blockSize);
    const nameLen = buf[at + 6];
    if (len < HEADER + 4) return bad(at - start, `rec_len ${len} too small`);
    if (len % 4 !== 0) return bad(at - start, `rec_len ${len} not a multiple of 4`);
    if (at + len > end) return bad(at - start, `rec_len ${len} runs past the block end`);
    if (ino !== 0) {
      if (HEADER + nameLen > len) return bad(at - start, `name of ${nameLen} bytes does not fit rec_len ${len}`);
      if (nameLen > 0 && ino <= maxIno) {
        const nameStart = at + HEADER;
        const nameEnd = nameStart + nameLen;
        if (!isDotOrDotDot(buf, nameStart, nameLen) && !hasSlashOrNul(buf, nameStart, nameEnd)) {
          out.push({ name: buf.toString('utf8', nameStart, nameEnd), ino });
        }
      }
    }
    at += len;
  }
  return { intact: true, badAt: -1, problem: '' };
}

function bad(badAt: number, problem: string): DirBlockResult {
  return { intact: false, badAt, problem };
}

function isDotOrDotDot(buf: Buffer, at: number, len: number): boolean {
  return buf[at] === 0x2e && (len === 1 || (len === 2 && buf[at + 1] === 0x2e));
}

function hasSlashOrNul(buf: Buffer, from: number, to: number): boolean {
  // A plain loop: names are at most 255 bytes, and a subarray plus two
  // indexOf calls per name showed in profiles of 10,000-entry listings.
  for (let i = from; i < to; i++) {
    const b = buf[i];
    if (b === 0x2f || b === 0) return true;
  }
  return false;
}
