import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError } from '../parsers/errors.js';
import { imageStatfs, syntheticAttributes } from './attributes.js';
import { ImageTree, type ImageLogger } from './image-tree.js';
import type { FuseStat, FuseStatfs } from './native.js';
import type { MountTree, OpenFile, TreeEntry } from './tree.js';
import type { Stats } from 'node:fs';

interface Probe {
  /** dev:ino:size:mtime of the file when it was opened: a changed file is opened again. */
  identity: string;
  /** The opened image, or null when the file is not a disk image. */
  tree: Promise<ImageTree | null>;
}

function identityOf(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}

/**
 * A folder of images, one subfolder per image file named after the file
 * (`backups/pc.img` → `MOUNTPOINT/pc.img/p2/...`). The folder is read again
 * whenever the mount's top level is listed or a name in it is looked up, so
 * images copied in later appear and replaced ones are opened afresh.
 * A file counts as an image when something in it is recognized (a partition
 * table, a container or a filesystem); hidden files are skipped.
 */
export class CatalogTree implements MountTree {
  private readonly probes = new Map<string, Probe>();
  /** Images replaced on disk while mounted: open files may still read them, so they are closed at unmount. */
  private readonly retired: Promise<ImageTree | null>[] = [];
  private readonly folder: Stats;

  private constructor(
    readonly dir: string,
    folder: Stats,
    private readonly log: ImageLogger,
  ) {
    this.folder = folder;
  }

  static async open(dir: string, log: ImageLogger): Promise<CatalogTree> {
    return new CatalogTree(dir, await stat(dir), log);
  }

  /** The image behind a top-level name, checking the file on disk first. */
  private async probe(name: string): Promise<ImageTree | null> {
    if (!name || name.startsWith('.') || name.includes('/')) return null;
    let st: Stats;
    try {
      st = await stat(join(this.dir, name));
    } catch {
      return null;
    }
    if (!st.isFile()) return null;
    const identity = identityOf(st);
    const known = this.probes.get(name);
    if (known && known.identity === identity) return known.tree;
    if (known) this.retired.push(known.tree);
    const tree = this.openImage(name);
    this.probes.set(name, { identity, tree });
    return tree;
  }

  private async openImage(name: string): Promise<ImageTree | null> {
    const path = join(this.dir, name);
    try {
      const tree = await ImageTree.open(path, this.log);
      if (tree.recognized) return tree;
      await tree.close();
      return null;
    } catch (e) {
      // Probably still being copied in; it is tried again once the file changes.
      this.log(`${path}: not shown: ${e instanceof Error ? e.message : String(e)}`);
      return null;
    }
  }

  /** For paths below an image's folder: the image as last probed (the kernel revalidates the folder itself). */
  private async image(name: string): Promise<ImageTree> {
    const known = this.probes.get(name);
    const tree = known ? await known.tree : await this.probe(name);
    if (!tree) throw new NotFoundError(`/${name}`);
    return tree;
  }

  private async list(): Promise<{ name: string; tree: ImageTree }[]> {
    const names = (await readdir(this.dir)).sort();
    for (const gone of [...this.probes.keys()].filter((n) => !names.includes(n))) {
      this.retired.push(this.probes.get(gone)!.tree);
      this.probes.delete(gone);
    }
    const trees = await Promise.all(names.map((n) => this.probe(n)));
    return names.flatMap((name, i) => (trees[i] ? [{ name, tree: trees[i]! }] : []));
  }

  private folderAttributes(tree: ImageTree): FuseStat {
    return syntheticAttributes(tree.image, 'dir', 0);
  }

  async getattr(parts: string[]): Promise<FuseStat> {
    if (parts.length === 0) return syntheticAttributes(this.folder, 'dir', 0);
    if (parts.length === 1) {
      const tree = await this.probe(parts[0]);
      if (!tree) throw new NotFoundError(`/${parts[0]}`);
      return this.folderAttributes(tree);
    }
    return (await this.image(parts[0])).getattr(parts.slice(1));
  }

  async readdir(parts: string[]): Promise<TreeEntry[]> {
    if (parts.length === 0) return (await this.list()).map(({ name, tree }) => ({ name, attributes: this.folderAttributes(tree) }));
    return (await this.image(parts[0])).readdir(parts.slice(1));
  }

  async open(parts: string[]): Promise<OpenFile> {
    return (await this.image(parts[0])).open(parts.slice(1));
  }

  async readlink(parts: string[]): Promise<string> {
    return (await this.image(parts[0])).readlink(parts.slice(1));
  }

  async statfs(parts: string[]): Promise<FuseStatfs> {
    if (parts.length === 0) {
      let bytes = 0;
      for (const p of this.probes.values()) bytes += (await p.tree)?.disk.size ?? 0;
      return imageStatfs(bytes);
    }
    return (await this.image(parts[0])).statfs(parts.slice(1));
  }

  async close(): Promise<void> {
    const all = [...this.retired, ...[...this.probes.values()].map((p) => p.tree)];
    for (const tree of await Promise.all(all)) await tree?.close();
  }
}
