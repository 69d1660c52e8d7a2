import type { Disk } from './disk.js';
import type { Entry } from './entry.js';

export interface WalkOptions {
  /** Include hidden metafiles (NTFS $MFT ...). */
  all?: boolean;
  /** Called for a directory that could not be listed; the walk goes on. */
  onError?: (path: string, error: unknown) => void;
  /** Stop descending below this depth (root of the walk = 0). */
  maxDepth?: number;
}

/**
 * Depth-first walk below `start` (not yielding `start` itself), children in
 * name order. A directory already seen on this walk (a corrupt image where a
 * directory contains its own ancestor) is yielded but not entered again, so
 * every walk ends.
 */
export async function* walk(disk: Disk, start: Entry, options: WalkOptions = {}): AsyncGenerator<Entry> {
  const seen = new Set<string>();
  const key = (e: Entry) => `${e.volume}:${e.stat.ino}`;
  if (start.kind === 'node' || start.kind === 'volume') seen.add(key(start));
  const maxDepth = options.maxDepth ?? Infinity;

  async function* visit(dir: Entry, depth: number): AsyncGenerator<Entry> {
    let children: Entry[];
    try {
      children = await disk.readdir(dir, { all: options.all });
    } catch (e) {
      if (!options.onError) throw e;
      options.onError(dir.path, e);
      return;
    }
    for (const child of children) {
      yield child;
      if (child.stat.type !== 'dir' || depth + 1 > maxDepth) continue;
      if (child.kind === 'node') {
        const k = key(child);
        if (seen.has(k)) {
          options.onError?.(child.path, new Error(`${child.path}: directory already visited (a loop in the directory tree); not entered again`));
          continue;
        }
        seen.add(k);
      }
      yield* visit(child, depth + 1);
    }
  }
  if (start.stat.type === 'dir') yield* visit(start, 0);
}
