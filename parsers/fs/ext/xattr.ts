/**
 * In-inode extended attributes (Documentation/filesystems/ext4/attributes.rst).
 * We only need one: "system.data", where inline_data files keep the bytes
 * that do not fit in i_block.
 */
import { CorruptError } from '../../errors.js';
import type { Inode } from './inode.js';

const XATTR_MAGIC = 0xea020000;
const ENTRY_HEADER = 16;
/** Name index 7 is the "system." prefix. */
export const XATTR_INDEX_SYSTEM = 7;

/**
 * The value of an in-inode xattr, or null when the inode has none by that
 * name. Values stored in a separate EA inode are not followed (system.data
 * never is).
 */
export function findInodeXattr(inode: Inode, nameIndex: number, name: string): Buffer | null {
  if (inode.xattrStart === 0) return null;
  const raw = inode.raw;
  if (raw.readUInt32LE(inode.xattrStart) !== XATTR_MAGIC) return null;
  const base = inode.xattrStart + 4; // value offsets count from the first entry
  const end = raw.length;
  let at = base;
  // Each entry takes at least 16 bytes, which bounds the walk by the inode size.
  while (at + 4 <= end && raw.readUInt32LE(at) !== 0) {
    if (at + ENTRY_HEADER > end) break;
    const nameLen = raw[at];
    const index = raw[at + 1];
    const valueOffset = raw.readUInt16LE(at + 2);
    const valueInode = raw.readUInt32LE(at + 4);
    const valueSize = raw.readUInt32LE(at + 8);
    if (at + ENTRY_HEADER + nameLen > end) break;
    if (index === nameIndex && nameLen === name.length && raw.toString('latin1', at + ENTRY_HEADER, at + ENTRY_HEADER + nameLen) === name) {
      if (valueInode !== 0) return null;
      const valueStart = base + valueOffset;
      if (valueStart + valueSize > end) {
        throw new CorruptError(`ext inode ${inode.ino} xattr ${name}`, inode.offset + at, `value of ${valueSize} bytes runs past the inode`);
      }
      return raw.subarray(valueStart, valueStart + valueSize);
    }
    at += (ENTRY_HEADER + nameLen + 3) & ~3;
  }
  return null;
}
