import type { DirEntry, FsNode } from '../types.js';

/**
 * Upper-case a name one UTF-16 unit at a time, mapping only where the upper
 * case is a single unit. This is close to what Windows does with the up-case
 * table of exFAT (and NLS tables on FAT): a simple 1:1 mapping, so "ß" stays
 * "ß" rather than becoming "SS". Good enough for lookups; we never write names.
 */
export function foldCase(name: string): string {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const ch = name[i];
    const up = ch.toUpperCase();
    out += up.length === 1 ? up : ch;
  }
  return out;
}

export interface IndexedEntry<N extends FsNode> extends DirEntry<N> {
  /** Another name the entry answers to (the 8.3 alias of a long FAT name). */
  altName?: string;
}

/**
 * A parsed directory, ready for lookups. Lookups try the exact name first,
 * then compare case-insensitively (FAT and exFAT names are case-preserving but
 * case-insensitive on Windows and Linux), then the 8.3 alias.
 */
export class DirectoryIndex<N extends FsNode> {
  readonly entries: DirEntry<N>[];
  /** Built on the first lookup: a listing that is only read (ls) never pays for them. */
  private exact?: Map<string, N>;
  private folded?: Map<string, N>;

  constructor(
    private readonly indexed: IndexedEntry<N>[],
    /** Volume label found among the entries (root directory only). */
    readonly label: string | null = null,
  ) {
    this.entries = indexed.map(({ name, node }) => ({ name, node }));
  }

  find(name: string): N | null {
    if (!this.exact) this.build();
    return this.exact!.get(name) ?? this.folded!.get(foldCase(name)) ?? null;
  }

  private build(): void {
    this.exact = new Map();
    this.folded = new Map();
    for (const e of this.indexed) {
      if (!this.exact.has(e.name)) this.exact.set(e.name, e.node);
      const f = foldCase(e.name);
      if (!this.folded.has(f)) this.folded.set(f, e.node);
    }
    // Aliases last, so a real name always wins over another entry's alias.
    for (const e of this.indexed) {
      if (e.altName === undefined) continue;
      const f = foldCase(e.altName);
      if (!this.folded.has(f)) this.folded.set(f, e.node);
    }
  }
}
