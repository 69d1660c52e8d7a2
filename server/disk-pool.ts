import { lstat } from 'node:fs/promises';
import { NotFoundError } from '../parsers/errors.js';
import { Disk } from '../parsers/vfs/index.js';

/** A Disk lent to one request. Release it exactly when the request's last read is done. */
export interface DiskLease {
  readonly disk: Disk;
  /** Identity of the image file's current contents (device, inode, size, times). */
  readonly signature: string;
  release(): void;
}

interface Slot {
  path: string;
  signature: string;
  opening: Promise<Disk>;
  disk: Disk | null;
  leases: number;
  /** No longer handed out (evicted or the file changed); closed when the last lease returns. */
  retired: boolean;
}

/**
 * Opened Disks kept for reuse, at most `capacity` of them (least recently used
 * go first). A Disk still read by a download is never closed under it: it is
 * retired and closed when its last lease is released. Before each use the
 * image file is stat'ed; when it changed (replaced, rewritten) it is reopened.
 * A failed open is remembered for that same file state, so a corrupt image is
 * not re-parsed on every request.
 *
 * Symlinks are never followed (the catalog does not list them): the image is
 * opened with O_NOFOLLOW, so a link swapped in for an image file after the
 * folder was scanned is refused as if the image were gone. Opening is also
 * confined to the served folder (checked on the open file): a subfolder
 * swapped for a symlink, or a backing file named by absolute path, cannot
 * lead outside it.
 */
export class DiskPool {
  private readonly slots = new Map<string, Slot>();
  private closed = false;

  constructor(private readonly capacity = 8) {}

  /** `folder` is the served folder the image was found in: the image and any backing file must lie inside it. */
  async acquire(path: string, folder: string): Promise<DiskLease> {
    if (this.closed) throw new Error('server is shutting down');
    const signature = await fileSignature(path);
    let slot = this.slots.get(path);
    if (slot && slot.signature !== signature) {
      this.retire(slot);
      slot = undefined;
    }
    if (!slot) {
      slot = { path, signature, opening: Disk.open(path, { noFollow: true, confineTo: folder }), disk: null, leases: 0, retired: false };
      const s = slot;
      s.opening.then(
        (d) => {
          s.disk = d;
          if (s.retired && s.leases === 0) void closeQuietly(d);
        },
        () => {},
      );
    }
    // Most recently used last.
    this.slots.delete(path);
    this.slots.set(path, slot);
    slot.leases++;
    let disk: Disk;
    try {
      disk = await slot.opening;
    } catch (e) {
      slot.leases--;
      throw e;
    }
    this.evict();
    let released = false;
    const s = slot;
    return {
      disk,
      signature,
      release: () => {
        if (released) return;
        released = true;
        s.leases--;
        if (s.retired && s.leases === 0) void closeQuietly(disk);
      },
    };
  }

  /** Number of open Disks (tests and the bench look at this). */
  get openCount(): number {
    return [...this.slots.values()].filter((s) => s.disk).length;
  }

  /** Leases not yet released, over all Disks still in the pool. */
  get leaseCount(): number {
    return [...this.slots.values()].reduce((n, s) => n + s.leases, 0);
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.slots.values()];
    this.slots.clear();
    for (const s of all) {
      s.retired = true;
      if (s.disk) await closeQuietly(s.disk);
    }
  }

  private evict(): void {
    for (const slot of this.slots.values()) {
      if (this.slots.size <= this.capacity) return;
      this.retire(slot);
    }
  }

  private retire(slot: Slot): void {
    this.slots.delete(slot.path);
    slot.retired = true;
    if (slot.leases === 0 && slot.disk) void closeQuietly(slot.disk);
  }
}

/** lstat, not stat: a symlink swapped in for the image is not followed, it is no image (ENOENT). */
export async function fileSignature(path: string): Promise<string> {
  const st = await lstat(path, { bigint: true });
  if (st.isSymbolicLink()) throw new NotFoundError(path, 'is a symbolic link, not an image file (not followed)');
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

async function closeQuietly(disk: Disk): Promise<void> {
  try {
    await disk.close();
  } catch {
    // closing a read-only file cannot lose data; nothing to report
  }
}
