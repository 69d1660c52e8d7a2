import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The truth manifests sample-images/build.sh writes next to each sample image
 * (NAME.manifest.json): what was put into the image, from the source trees,
 * never read back with our code.
 */
export const samples = join(import.meta.dirname, '..', '..', 'sample-images');

export interface ManifestVolume {
  name: string;
  start: number;
  size: number;
  type: string;
  fs: string | null;
  label: string | null;
  uuid: string | null;
  /** Special properties the build gave the volume (gptName, extendedPartition, fragmented files ...). */
  facts: Record<string, unknown>;
}

export interface ManifestEntry {
  /** "/p2/etc/passwd", as the vfs names it. */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  /** Files only. */
  sha256?: string;
  mode: number;
  uid: number;
  gid: number;
  /** Only where the filesystem keeps link counts. */
  nlink?: number;
  mtime: string;
  target?: string;
  /** NTFS alternate data streams. */
  streams?: { name: string; size: number; sha256: string }[];
}

export interface Manifest {
  image: string;
  size: number;
  table: 'mbr' | 'gpt' | 'none';
  volumes: ManifestVolume[];
  entries: ManifestEntry[];
}

/** One manifest, by its file name in sample-images ("mbr.manifest.json"). */
export function readManifest(file: string): Manifest {
  return JSON.parse(readFileSync(join(samples, file), 'utf8')) as Manifest;
}

/** Every committed manifest, in file name order; none when sample-images is missing. */
export function allManifests(): Manifest[] {
  if (!existsSync(samples)) return [];
  return readdirSync(samples)
    .filter((n) => n.endsWith('.manifest.json'))
    .sort()
    .map(readManifest);
}
