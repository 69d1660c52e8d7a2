import type { Dirent } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { basename, extname, join, sep } from 'node:path';

/** One image file offered by the server. */
export interface ImageFile {
  /** The image's path relative to the served folder ("laptops/ana.img"); prefixed with the folder's name when several are served. */
  id: string;
  /** Absolute host path (symlink-free: folders are resolved once, links inside them are never followed). */
  path: string;
  /** The served folder it was found in (absolute, resolved). */
  folder: string;
  size: number;
  mtimeMs: number;
}

/** How deep below a served folder images are looked for ("laptops/ana/2024-05.img" is depth 2). */
const MAX_DEPTH = 4;
const MAX_IMAGES = 10_000;
/** Rescan at most this often; a miss on an unknown ID may trigger one rescan. */
const RESCAN_MS = 2_000;

/** Files that sit next to images but are not images. */
const NOT_IMAGES = new Set([
  '.json', '.md', '.txt', '.sh', '.py', '.js', '.ts', '.sha256', '.sha1', '.md5', '.bmap', '.log',
  '.xml', '.html', '.yml', '.yaml', '.toml', '.csv', '.pdf', '.lock', '.tmp', '.part',
]);

/** Checksum lists and notes that often sit next to images without an extension. */
const NOT_IMAGE_NAMES = /^(SHA\d*SUMS|MD5SUMS|B2SUMS|CHECKSUMS?|README|LICENSE|COPYING|NOTES|Makefile)$/i;

export function looksLikeImageName(name: string): boolean {
  return !name.startsWith('.') && !NOT_IMAGES.has(extname(name).toLowerCase()) && !NOT_IMAGE_NAMES.test(name);
}

/**
 * A folder's symlink-free absolute path, as the catalog compares paths (image
 * paths and the folders a user is limited to). Throws "PATH: no such folder",
 * or "PATH: " and `notFolder` when it is something else.
 */
export async function realFolder(path: string, notFolder = 'not a folder'): Promise<string> {
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    throw new Error(`${path}: no such folder`);
  }
  if (!(await stat(real)).isDirectory()) throw new Error(`${path}: ${notFolder}`);
  return real;
}

/**
 * The images below the served folders. IDs are only ever looked up in this
 * list, never joined onto a host path, so no spelling of an ID (`..`, encoded,
 * absolute, NUL) can name anything else. Symbolic links inside the folders are
 * neither listed nor followed: a link could lead anywhere on the host.
 */
export class ImageCatalog {
  private images = new Map<string, ImageFile>();
  private scannedAt = 0;
  private scanning: Promise<void> | null = null;

  private constructor(private readonly folders: { path: string; label: string | null }[]) {}

  /** Resolve and check the folders once; their own path may contain symlinks (e.g. /srv -> /data/srv). */
  static async open(folders: string[]): Promise<ImageCatalog> {
    if (!folders.length) throw new Error('no image folder given');
    const resolved: string[] = [];
    for (const f of folders) {
      const real = await realFolder(f, 'not a folder (give the folder that holds the images)');
      if (!resolved.includes(real)) resolved.push(real);
    }
    // With several folders an ID starts with the folder's name, made unique.
    const used = new Set<string>();
    const labelled = resolved.map((path) => {
      if (resolved.length === 1) return { path, label: null };
      let label = basename(path) || 'root';
      for (let n = 2; used.has(label); n++) label = `${basename(path)}-${n}`;
      used.add(label);
      return { path, label };
    });
    return new ImageCatalog(labelled);
  }

  get folderPaths(): string[] {
    return this.folders.map((f) => f.path);
  }

  async list(): Promise<ImageFile[]> {
    await this.refresh(false);
    return [...this.images.values()];
  }

  /** The image with this ID, or null. */
  async get(id: string): Promise<ImageFile | null> {
    await this.refresh(false);
    const hit = this.images.get(id);
    if (hit) return hit;
    await this.refresh(true);
    return this.images.get(id) ?? null;
  }

  private async refresh(onMiss: boolean): Promise<void> {
    const age = Date.now() - this.scannedAt;
    if (age < RESCAN_MS && !(onMiss && age >= 250)) return;
    this.scanning ??= this.scan().finally(() => {
      this.scanning = null;
    });
    await this.scanning;
  }

  private async scan(): Promise<void> {
    const found = new Map<string, ImageFile>();
    for (const folder of this.folders) {
      await this.scanFolder(folder.path, folder.path, folder.label ? [folder.label] : [], 0, found);
    }
    this.images = new Map([...found].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    this.scannedAt = Date.now();
  }

  private async scanFolder(root: string, dir: string, prefix: string[], depth: number, found: Map<string, ImageFile>): Promise<void> {
    let names: Dirent[];
    try {
      names = await readdir(dir, { withFileTypes: true });
    } catch {
      return; // unreadable subfolder: its images are simply not offered
    }
    for (const d of names) {
      if (found.size >= MAX_IMAGES) return;
      if (d.name.startsWith('.') || d.name.includes('\n')) continue;
      const path = join(dir, d.name);
      // Dirent types come from readdir without following links; symlinks are skipped here.
      if (d.isDirectory() && depth + 1 < MAX_DEPTH && d.name !== 'lost+found') {
        await this.scanFolder(root, path, [...prefix, d.name], depth + 1, found);
      } else if (d.isFile() && looksLikeImageName(d.name)) {
        try {
          const st = await lstat(path);
          if (!st.isFile() || !path.startsWith(root + sep)) continue;
          const id = [...prefix, d.name].join('/');
          found.set(id, { id, path, folder: root, size: st.size, mtimeMs: st.mtimeMs });
        } catch {
          // vanished between readdir and lstat
        }
      }
    }
  }
}

/** Is `path` (absolute, resolved) the folder `folder` or inside it? */
export function isInside(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}
