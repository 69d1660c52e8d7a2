/**
 * ext2/ext3/ext4, read-only. Detection by the superblock magic (0xEF53 at
 * byte 1024 + 56) plus geometry sanity checks; the type follows blkid's rule.
 */
import type { ByteSource } from '../../source/types.js';
import type { FileSystem, FsDriver } from '../types.js';
import { INCOMPAT, classify } from './features.js';
import { ExtFileSystem, findBackupSuperblock } from './filesystem.js';
import { EXT_MAGIC, looksLikeExt, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from './superblock.js';

export const extDriver: FsDriver = {
  name: 'ext',
  probe(head: Buffer): string | null {
    if (head.length < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) return null;
    const sb = head.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE);
    const incompat = sb.readUInt32LE(0x60);
    // An external journal shares the superblock format but holds no files and
    // has no group geometry (blkid calls it jbd).
    if (sb.readUInt16LE(0x38) === EXT_MAGIC && (incompat & INCOMPAT.journalDev) !== 0) return 'jbd';
    if (!looksLikeExt(sb)) return null;
    return classify(sb.readUInt32LE(0x5c), incompat, sb.readUInt32LE(0x64));
  },
  async probeDamaged(source: ByteSource): Promise<string | null> {
    const backup = await findBackupSuperblock(source);
    return backup ? backup.sb.type : null;
  },
  open(source: ByteSource): Promise<FileSystem> {
    return ExtFileSystem.open(source);
  },
};

export { ExtFileSystem, ExtNode } from './filesystem.js';
