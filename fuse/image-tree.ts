import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { CorruptError, InvalidArgumentError, IsADirectoryError, isLooplessError, NotFoundError, NotADirectoryError } from '../parsers/errors.js';
import type { FileSystem } from '../parsers/fs/types.js';
import type { ByteSource } from '../parsers/source/types.js';
import { Disk, joinPath, type Entry } from '../parsers/vfs/index.js';
import { filesystemStatfs, imageStatfs, nodeAttributes, syntheticAttributes } from './attributes.js';
import { PromiseCache } from './cache.js';
import type { FuseStat, FuseStatfs } from './native.js';
import type { MountTree, OpenFile, TreeEntry } from './tree.js';

/** Resolved paths kept per image; a find over a large tree asks for each one several times. */
const ENTRY_CACHE_SIZE = 50_000;

type TopItem =
  | { name: string; kind: 'raw'; source: ByteSource; allocated: number }
  | { name: string; kind: 'volume'; volume: string; fs: FileSystem };

/** Called once per volume whose files cannot be shown (its `.img` still is). */
export type ImageLogger = (message: string) => void;

/**
 * One image laid out for a mount:
 *   disk.img           the whole image, raw
 *   p1.img, p2.img ... each volume's bytes from its first byte
 *   p1/, p2/ ...       the files of every volume whose filesystem opens
 * ("fs.img" and "fs/" for an image without a partition table). Which
 * filesystems open is up to the registered drivers; nothing here knows a format.
 */
export class ImageTree implements MountTree {
  private topItems: Promise<TopItem[]> | null = null;
  private readonly entries = new PromiseCache<Entry>(ENTRY_CACHE_SIZE);
  /** How many of disk.warnings are in the log already. */
  private warningsLogged = 0;

  private constructor(
    readonly disk: Disk,
    /** The image file's own metadata: owner and dates of everything we synthesize. */
    readonly image: Stats,
    private readonly log: ImageLogger,
  ) {}

  static async open(path: string, log: ImageLogger): Promise<ImageTree> {
    const disk = await Disk.open(path);
    try {
      const tree = new ImageTree(disk, await stat(path), log);
      tree.logWarnings();
      return tree;
    } catch (e) {
      await disk.close();
      throw e;
    }
  }

  /**
   * Log what the disk found since last time: the table's warnings, each
   * filesystem's as it opens (a backup superblock in use), and entries a
   * listing left out because their records are damaged.
   */
  private logWarnings(): void {
    const all = this.disk.warnings;
    for (; this.warningsLogged < all.length; this.warningsLogged++) this.log(`${this.disk.path}: ${all[this.warningsLogged]}`);
  }

  /** Something in it was recognized: a partition table, a container, or a filesystem. */
  get recognized(): boolean {
    const d = this.disk;
    return d.table.table !== 'none' || d.image.chain.length > 0 || d.volumes.some((v) => d.detectedType(v.name) !== null);
  }

  private top(): Promise<TopItem[]> {
    this.topItems ??= this.listTop();
    return this.topItems;
  }

  private async listTop(): Promise<TopItem[]> {
    const d = this.disk;
    // A sparse raw image says how much of it is allocated; a container's file size says nothing about the disk inside.
    const diskAllocated = d.image.chain.length ? d.size : Math.min(d.size, this.image.blocks * 512);
    const items: TopItem[] = [{ name: 'disk.img', kind: 'raw', source: d.source, allocated: diskAllocated }];
    for (const v of d.volumes) {
      const source = d.volumeSource(v.name);
      items.push({ name: `${v.name}.img`, kind: 'raw', source, allocated: source.size });
    }
    for (const v of d.volumes) {
      if (!d.detectedType(v.name)) continue;
      try {
        items.push({ name: v.name, kind: 'volume', volume: v.name, fs: await d.filesystem(v.name) });
      } catch (e) {
        this.log(`${this.disk.path}: ${v.name}/ not shown: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    this.logWarnings();
    return items;
  }

  private async item(name: string): Promise<TopItem> {
    const found = (await this.top()).find((i) => i.name === name);
    if (!found) throw new NotFoundError(`/${name}`);
    return found;
  }

  private blockSize(fs: FileSystem): number {
    return fs.info().blockSize || 4096;
  }

  private topAttributes(item: TopItem): FuseStat {
    if (item.kind === 'raw') return syntheticAttributes(this.image, 'file', item.source.size, item.allocated);
    return syntheticAttributes(this.image, 'dir', 0);
  }

  /** The vfs entry for a path below a volume folder (never following a final symlink). */
  private entry(volume: string, rest: string[]): Promise<Entry> {
    const path = joinPath([volume, ...rest]);
    return this.entries.get(path, () => this.disk.lstat(path), permanentFailure);
  }

  private entryAttributes(entry: Entry, fs: FileSystem): FuseStat {
    // A volume's root entry carries the volume's size for `ls`; the folder itself is the filesystem's root node.
    const stat = entry.node ? entry.node.stat : entry.stat;
    return nodeAttributes(stat, this.blockSize(fs));
  }

  async getattr(parts: string[]): Promise<FuseStat> {
    if (parts.length === 0) return syntheticAttributes(this.image, 'dir', 0);
    const item = await this.item(parts[0]);
    if (parts.length === 1 && item.kind === 'raw') return this.topAttributes(item);
    if (item.kind !== 'volume') throw new NotADirectoryError(`/${parts[0]}`);
    return this.entryAttributes(await this.entry(item.volume, parts.slice(1)), item.fs);
  }

  async readdir(parts: string[]): Promise<TreeEntry[]> {
    if (parts.length === 0) return (await this.top()).map((i) => ({ name: i.name, attributes: this.topAttributes(i) }));
    const item = await this.item(parts[0]);
    if (item.kind !== 'volume') throw new NotADirectoryError(`/${parts[0]}`);
    const dir = await this.entry(item.volume, parts.slice(1));
    const children = await this.disk.readdir(dir);
    this.logWarnings();
    // The kernel looks up every name it is given next: answer from the listing.
    for (const child of children) this.entries.set(child.path, Promise.resolve(child));
    return children.map((c) => ({ name: c.name, attributes: this.entryAttributes(c, item.fs) }));
  }

  async open(parts: string[]): Promise<OpenFile> {
    if (parts.length === 0) throw new IsADirectoryError('/');
    const item = await this.item(parts[0]);
    if (item.kind === 'raw' && parts.length === 1) return openSource(item.source, `/${item.name}`);
    if (item.kind !== 'volume') throw new NotADirectoryError(`/${parts[0]}`);
    const entry = await this.entry(item.volume, parts.slice(1));
    if (entry.stat.type !== 'file') {
      if (entry.stat.type === 'dir') throw new IsADirectoryError(entry.path);
      // Reads of nodes we show as empty files never reach us; opening one is fine.
      return { read: async () => 0 };
    }
    return openEntry(this.disk, entry);
  }

  async readlink(parts: string[]): Promise<string> {
    if (parts.length < 2) throw new InvalidArgumentError(`${joinPath(parts)}: not a symbolic link`);
    const item = await this.item(parts[0]);
    if (item.kind !== 'volume') throw new NotADirectoryError(`/${parts[0]}`);
    return this.disk.readlink(await this.entry(item.volume, parts.slice(1)));
  }

  async statfs(parts: string[]): Promise<FuseStatfs> {
    if (parts.length > 0) {
      const item = await this.item(parts[0]).catch(() => null);
      if (item?.kind === 'volume') return filesystemStatfs(item.fs.info());
    }
    return imageStatfs(this.disk.size);
  }

  close(): Promise<void> {
    return this.disk.close();
  }
}

/** Not-found and not-a-directory answers never change on an image that does not change. */
function permanentFailure(e: unknown): boolean {
  return isLooplessError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR');
}

/**
 * Reads must be full except at the end of the file: a short read in the
 * middle would make the kernel believe the file ends there.
 */
function checkedRead(size: number, what: string, read: (buffer: Buffer, length: number, position: number) => Promise<number>): OpenFile {
  return {
    async read(buffer, length, position) {
      const n = await read(buffer, length, position);
      const expected = Math.max(0, Math.min(length, size - position));
      if (n < expected) throw new CorruptError(what, position + n, `data ends before the size ${size}`);
      return n;
    },
  };
}

function openSource(source: ByteSource, what: string): OpenFile {
  return checkedRead(source.size, `raw file ${what}`, (buffer, length, position) => source.read(buffer, 0, length, position));
}

/** File bytes mapped to image offsets at a time, for the synchronous read path. */
const MAP_AHEAD = 64 * 1024 * 1024;

/**
 * A file of a raw image is read synchronously from the page cache where it
 * can be (Disk.syncReader; slow reads send it back to async for a while):
 * libfuse 2 caps requests at 128 KiB, and a threadpool round trip per
 * request was the largest cost of a cold sequential read through the mount.
 */
function openEntry(disk: Disk, entry: Entry): OpenFile {
  const size = entry.stat.size;
  const reader = disk.syncReader(entry);
  let plain = reader !== null;
  const readSync = async (buffer: Buffer, length: number, position: number): Promise<number | null> => {
    const want = Math.max(0, Math.min(length, size - position));
    let done = 0;
    let maps = 0;
    while (done < want) {
      const n = reader!.covers(position + done) ? reader!.readSync(buffer, done, want - done, position + done) : 0;
      if (n > 0) {
        done += n;
        continue;
      }
      // Concurrent requests on one handle may remap the window under each other: after a few tries, read async.
      if (++maps > 3) return null;
      if (!(await reader!.map(position + done, Math.min(MAP_AHEAD, size - position - done)))) {
        plain = false;
        return null;
      }
    }
    return done;
  };
  return checkedRead(size, `file ${entry.path}`, async (buffer, length, position) => {
    if (plain && reader!.preferSync) {
      const n = await readSync(buffer, length, position);
      if (n !== null) return n;
    }
    // Async from the start of the request: a partial sync read is simply done again.
    return disk.read(entry, buffer, 0, length, position);
  });
}
