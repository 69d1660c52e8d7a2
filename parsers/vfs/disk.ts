import { Readable } from 'node:stream';
import {
  CorruptError,
  InvalidArgumentError,
  IsADirectoryError,
  LoopError,
  LooplessError,
  NotADirectoryError,
  NotFoundError,
  UnsupportedError,
} from '../errors.js';
import { detectFileSystem, type Detection } from '../fs/index.js';
import type { FileSystem, FsInfo, FsNode, Stat } from '../fs/types.js';
import { openImage, type OpenOptions } from '../source/open.js';
import type { AlignedPool } from '../source/aligned.js';
import { SliceSource } from '../source/slice.js';
import type { ByteSource, OpenedImage } from '../source/types.js';
import { readVolumeTable, type Volume, type VolumeTable } from '../volumes/index.js';
import type { Entry } from './entry.js';
import type { InfoJson, VolumeJson } from './json.js';
import { childPath, joinPath, splitPath } from './path.js';
import { SyncFileReader } from './sync-reader.js';

/** Linux gives up after 40 symlinks in one resolution; so do we. */
const MAX_SYMLINK_HOPS = 40;

interface VolumeState {
  volume: Volume;
  source: ByteSource;
  detection: Detection;
  fs: Promise<FileSystem> | null;
}

/** An opened image: its volumes, and path resolution across them. */
export class Disk {
  readonly #warnings: string[];
  /** Each opened filesystem's warning list (it may grow as records are met), and how much of it was taken. */
  readonly #fsWarnings: { volume: string; list: readonly string[]; taken: number }[] = [];

  private constructor(
    readonly path: string,
    readonly image: OpenedImage,
    readonly table: VolumeTable,
    private readonly states: VolumeState[],
  ) {
    this.#warnings = [...table.warnings];
  }

  /**
   * Non-fatal findings, in the order met: the partition table's first, then
   * each filesystem's as it is opened ("p2: ... using the backup superblock")
   * and as damaged records are skipped while reading ("p1: directory inode 2:
   * entry ... left out"). Only grows: a reader may remember how many it showed.
   */
  get warnings(): readonly string[] {
    for (const source of this.#fsWarnings) {
      for (; source.taken < source.list.length; source.taken++) this.#warnings.push(`${source.volume}: ${source.list[source.taken]}`);
    }
    return this.#warnings;
  }

  /** Open an image read-only; `options` reach the container layer (index-building progress, cache dir). */
  static async open(path: string, options: OpenOptions = {}): Promise<Disk> {
    return Disk.fromImage(await openImage(path, options));
  }

  /**
   * A Disk over an image opened some other way (restore streams compressed
   * images it cannot open with random access). Takes ownership of the source.
   */
  static async fromImage(image: OpenedImage): Promise<Disk> {
    const path = image.path;
    try {
      const table = await readVolumeTable(image.source);
      const states: VolumeState[] = [];
      for (const volume of table.volumes) {
        const source = new SliceSource(image.source, volume.start, volume.size, volume.name);
        states.push({ volume, source, detection: await detectFileSystem(source), fs: null });
      }
      return new Disk(path, image, table, states);
    } catch (e) {
      await image.source.close();
      throw e;
    }
  }

  get size(): number {
    return this.image.source.size;
  }

  get source(): ByteSource {
    return this.image.source;
  }

  get volumes(): Volume[] {
    return this.states.map((s) => s.volume);
  }

  /** The filesystem type found on a volume (null when none was recognized). */
  detectedType(volumeName: string): string | null {
    return this.state(volumeName).detection.type;
  }

  volumeSource(volumeName: string): ByteSource {
    return this.state(volumeName).source;
  }

  private state(volumeName: string): VolumeState {
    const s = this.states.find((x) => x.volume.name === volumeName);
    if (!s) {
      const names = this.states.map((x) => x.volume.name).join(', ') || 'none';
      throw new NotFoundError(`/${volumeName}`, `no such volume (volumes: ${names})`);
    }
    return s;
  }

  /** Open (once) and return the filesystem of a volume, or throw why it cannot be read. */
  filesystem(volumeName: string): Promise<FileSystem> {
    const s = this.state(volumeName);
    if (!s.fs) {
      const { detection, volume } = s;
      if (!detection.driver) {
        const why = detection.type
          ? `unsupported filesystem ${detection.type} (Loopless reads ext2/3/4, FAT, exFAT and NTFS; the kernel may read it: see \`loopless attach\`)`
          : detection.blank
            ? 'no filesystem: the volume starts with zeros (unformatted?)'
            : `no filesystem recognized (${describeHead(volume)})`;
        s.fs = Promise.reject(new UnsupportedError(`${volume.name}: ${why}`));
      } else {
        const driver = detection.driver;
        s.fs = driver.open(s.source).then(
          (fs) => {
            this.#fsWarnings.push({ volume: volume.name, list: fs.info().warnings ?? [], taken: 0 });
            return fs;
          },
          (e) => {
            throw this.contextualize(e, volume.name, null);
          },
        );
      }
      s.fs.catch(() => {}); // remembered; reported to whoever asks
    }
    return s.fs;
  }

  /** The `info --json` object. Opens every filesystem to read its label and UUID. */
  async info(): Promise<InfoJson> {
    const volumes: VolumeJson[] = [];
    for (const s of this.states) {
      let fsInfo: FsInfo | null = null;
      let error: string | null = null;
      if (s.detection.driver) {
        try {
          fsInfo = (await this.filesystem(s.volume.name)).info();
        } catch (e) {
          error = e instanceof Error ? e.message : String(e);
        }
      }
      volumes.push({
        name: s.volume.name,
        start: s.volume.start,
        size: s.volume.size,
        type: s.volume.type,
        fs: fsInfo?.type ?? s.detection.type,
        label: fsInfo?.label ?? null,
        uuid: fsInfo?.uuid ?? null,
        typeName: s.volume.typeName,
        partitionLabel: s.volume.partitionLabel,
        supported: s.detection.driver !== null && error === null,
        error,
      });
    }
    return {
      size: this.size,
      table: this.table.table,
      volumes,
      chain: this.image.chain,
      fileSize: this.image.fileSize,
      warnings: [...this.warnings],
    };
  }

  /** Resolve without following a final symlink (like lstat). */
  lstat(path: string): Promise<Entry> {
    return this.resolve(path, false);
  }

  /** Resolve following symlinks everywhere (like stat). */
  stat(path: string): Promise<Entry> {
    return this.resolve(path, true);
  }

  private rootEntry(): Entry {
    return { path: '/', name: '', stat: syntheticDirStat(0), kind: 'root', volume: null, fs: null, node: null };
  }

  private async volumeEntry(s: VolumeState): Promise<Entry> {
    const name = s.volume.name;
    if (!s.detection.driver) {
      const stat: Stat = {
        ...syntheticDirStat(s.volume.size),
        type: 'other',
        mode: 0o444,
        otherKind: `volume (${s.detection.type ? `unsupported filesystem ${s.detection.type}` : 'no filesystem recognized'})`,
      };
      return { path: `/${name}`, name, stat, kind: 'volume', volume: name, fs: null, node: null };
    }
    const fs = await this.filesystem(name);
    const root = await this.guard(name, `/${name}`, () => fs.root());
    return { path: `/${name}`, name, stat: withSize(root.stat, s.volume.size), kind: 'volume', volume: name, fs, node: root };
  }

  private async resolve(path: string, followFinal: boolean): Promise<Entry> {
    const parts = splitPath(path);
    if (parts.length === 0) return this.rootEntry();
    const s = this.state(parts[0]);
    const volumeName = s.volume.name;
    if (parts.length === 1) return this.volumeEntry(s);
    const fs = await this.filesystem(volumeName);
    const root = await this.guard(volumeName, `/${volumeName}`, () => fs.root());

    // Walk component by component; a symlink splices its target into the
    // remaining components (absolute targets restart at the volume root).
    const stack: { name: string; node: FsNode }[] = [];
    const pending = parts.slice(1);
    let hops = 0;
    const here = () => joinPath([volumeName, ...stack.map((x) => x.name)]);
    while (pending.length) {
      const name = pending.shift()!;
      if (name === '.' || name === '') continue;
      if (name === '..') {
        stack.pop();
        continue;
      }
      const dir = stack.length ? stack[stack.length - 1].node : root;
      if (dir.stat.type !== 'dir') throw new NotADirectoryError(here());
      const full = childPath(here(), name);
      let child = await this.guard(volumeName, full, () => fs.lookup(dir, name));
      if (!child && pending.length === 0 && name.includes(':') && fs.openStream) {
        child = await this.openStreamByName(fs, dir, name, full, volumeName);
      }
      if (!child) throw new NotFoundError(displayPath(parts, stack.length + 2, full));
      const isLast = pending.length === 0;
      if (child.stat.type === 'symlink' && (!isLast || followFinal)) {
        if (++hops > MAX_SYMLINK_HOPS) throw new LoopError(`${joinPath(parts)}: too many levels of symbolic links`);
        const target = await this.guard(volumeName, full, () => fs.readlink(child!));
        if (target.startsWith('/')) stack.length = 0;
        pending.unshift(...target.split('/'));
        continue;
      }
      stack.push({ name, node: child });
    }
    const last = stack[stack.length - 1];
    if (!last) return this.volumeEntry(s);
    return {
      path: joinPath(parts),
      name: parts[parts.length - 1],
      stat: last.node.stat,
      kind: 'node',
      volume: volumeName,
      fs,
      node: last.node,
    };
  }

  /** "file.txt:Zone.Identifier" → the named stream of file.txt. */
  private async openStreamByName(fs: FileSystem, dir: FsNode, name: string, full: string, volumeName: string): Promise<FsNode | null> {
    const colon = name.indexOf(':');
    const base = name.slice(0, colon);
    const stream = name.slice(colon + 1);
    if (!base || !stream) return null;
    const file = await this.guard(volumeName, full, () => fs.lookup(dir, base));
    if (!file) return null;
    return this.guard(volumeName, full, () => fs.openStream!(file, stream));
  }

  /** Directory entries sorted by name. "/" lists the volumes. */
  async readdir(entry: Entry, options: { all?: boolean } = {}): Promise<Entry[]> {
    if (entry.kind === 'root') {
      const out: Entry[] = [];
      for (const s of this.states) {
        try {
          out.push(await this.volumeEntry(s));
        } catch (e) {
          // A volume whose filesystem cannot be opened is still listed, as "other".
          out.push({
            path: `/${s.volume.name}`,
            name: s.volume.name,
            stat: { ...syntheticDirStat(s.volume.size), type: 'other', mode: 0o444, otherKind: `volume (${e instanceof Error ? e.message : String(e)})` },
            kind: 'volume',
            volume: s.volume.name,
            fs: null,
            node: null,
          });
        }
      }
      return out;
    }
    if (entry.stat.type !== 'dir' || !entry.fs || !entry.node) {
      if (entry.kind === 'volume' && !entry.fs) await this.filesystem(entry.volume!); // throws why
      throw new NotADirectoryError(entry.path);
    }
    const fs = entry.fs;
    const node = entry.node;
    const list = await this.guard(entry.volume!, entry.path, () => fs.readdir(node, options));
    const out = list.map(
      (d): Entry => ({
        path: childPath(entry.path, d.name),
        name: d.name,
        stat: d.node.stat,
        kind: 'node',
        volume: entry.volume,
        fs,
        node: d.node,
      }),
    );
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return out;
  }

  async readlink(entry: Entry): Promise<string> {
    if (entry.stat.type !== 'symlink' || !entry.fs || !entry.node) throw new InvalidArgumentError(`${entry.path}: not a symbolic link`);
    const { fs, node } = entry;
    return this.guard(entry.volume!, entry.path, () => fs.readlink(node));
  }

  /** Read file bytes; positions past the end read nothing. */
  async read(entry: Entry, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (entry.stat.type === 'dir' || entry.kind !== 'node') throw new IsADirectoryError(entry.path);
    if (!entry.fs || !entry.node || entry.stat.type !== 'file') throw new InvalidArgumentError(`${entry.path}: not a regular file (${entry.stat.otherKind ?? entry.stat.type})`);
    const { fs, node } = entry;
    return this.guard(entry.volume!, entry.path, () => fs.read(node, buffer, offset, length, position));
  }

  /**
   * A synchronous reader of a regular file whose bytes lie plainly in a raw
   * image (no container, a filesystem that maps file ranges); null otherwise,
   * and then read() is the way. Bulk copies use it: see cli/copy-out.ts.
   */
  syncReader(entry: Entry): SyncFileReader | null {
    if (entry.kind !== 'node' || entry.stat.type !== 'file' || !entry.fs?.mapFile || !entry.node || !entry.volume) return null;
    const source = this.state(entry.volume).source;
    if (!source.readSync) return null;
    const volume = entry.volume;
    return new SyncFileReader(entry.fs, entry.node, source, (e) => this.contextualize(e, volume, entry.path));
  }

  /**
   * A file's bytes [start, end] inclusive (as HTTP ranges are), one chunk of
   * up to `chunkSize` bytes per next() (null at the end); call next() again
   * only once the previous call has settled. With `pool`, full-size chunks
   * are the pool's page-aligned buffers, and the caller may give each back
   * when done with it.
   *
   * Raw images are read synchronously while the page cache answers (see
   * source/prefer-sync.ts), else through the threadpool. Measured with 50
   * concurrent 100 MB downloads from a prototype server (load ~2): server CPU
   * 4.23 s with async reads into fresh 256 KiB buffers, 2.76 s with sync
   * reads, 2.26 s with sync reads into recycled aligned buffers (peak RSS
   * 131 -> 69 MB); a plain fs.createReadStream server used 4.26 s.
   */
  readChunks(entry: Entry, range: { start?: number; end?: number } = {}, chunkSize = 1024 * 1024, options: { pool?: AlignedPool } = {}): { next(): Promise<Buffer | null> } {
    const MAP_AHEAD = 64 * 1024 * 1024;
    const endExclusive = Math.min(entry.stat.size, range.end === undefined ? entry.stat.size : range.end + 1);
    let position = range.start ?? 0;
    const pool = options.pool && options.pool.size === chunkSize ? options.pool : null;
    const reader = endExclusive > position ? this.syncReader(entry) : null;
    let plain = reader !== null;
    const take = (want: number) => (pool && want === pool.size ? pool.take() : Buffer.allocUnsafe(want));
    const next = async (): Promise<Buffer | null> => {
      const want = Math.min(chunkSize, endExclusive - position);
      if (want <= 0) return null;
      if (reader && plain && reader.preferSync) {
        if (!reader.covers(position)) {
          if (!(await reader.map(position, Math.min(MAP_AHEAD, endExclusive - position)))) plain = false;
          return next();
        }
        const buf = take(want);
        const n = reader.readSync(buf, 0, want, position);
        position += n;
        return n === buf.length ? buf : buf.subarray(0, n);
      }
      const buf = take(want);
      const n = await this.read(entry, buf, 0, want, position);
      // The filesystem says the file ends before its stated size: a damaged file.
      if (n <= 0) throw new CorruptError(`file ${entry.path}`, position, `data ends before the file's size ${entry.stat.size}`);
      position += n;
      return n === buf.length ? buf : buf.subarray(0, n);
    };
    return { next };
  }

  /**
   * The same bytes as a Readable (readChunks underneath): reads are large
   * (1 MiB by default) and never run ahead of the consumer.
   */
  createReadStream(entry: Entry, range: { start?: number; end?: number } = {}, chunkSize = 1024 * 1024): Readable {
    const chunks = this.readChunks(entry, range, chunkSize);
    return new Readable({
      highWaterMark: chunkSize,
      read(this: Readable) {
        chunks.next().then(
          (chunk) => this.push(chunk),
          (e: unknown) => this.destroy(e as Error),
        );
      },
    });
  }

  async close(): Promise<void> {
    for (const s of this.states) {
      if (s.fs) {
        try {
          await (await s.fs).close();
        } catch {
          // a filesystem that failed to open has nothing to close
        }
      }
    }
    await this.image.source.close();
  }

  /** Run a filesystem call and give its errors the volume and path they concern. */
  private async guard<T>(volumeName: string, path: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.contextualize(e, volumeName, path);
    }
  }

  private contextualize(e: unknown, volumeName: string, path: string | null): Error {
    if (!(e instanceof LooplessError)) {
      // A parser bug or an unexpected I/O failure: still one clear line.
      const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      return new LooplessError('IO', `${path ?? volumeName}: internal error reading ${volumeName}: ${msg}`);
    }
    if (e instanceof CorruptError) {
      const s = this.state(volumeName);
      const out = new CorruptError(e.structure, e.offset, e.detail);
      out.message = `${path ?? volumeName}: corrupt ${e.structure} at byte ${e.offset} of ${volumeName} (image byte ${s.volume.start + e.offset}): ${e.detail}`;
      return out;
    }
    if (path && !e.message.startsWith(path) && !e.message.startsWith(`${volumeName}:`)) {
      const out = new LooplessError(e.code, `${path}: ${e.message}`);
      return out;
    }
    return e;
  }
}

function displayPath(parts: string[], upTo: number, fallback: string): string {
  return parts.length >= upTo ? joinPath(parts) : fallback;
}

/**
 * A copy of `stat` with another size, field by field: a filesystem's Stat may
 * be a class that decodes its times on access (ext), which `{ ...stat }` loses.
 */
function withSize(stat: Stat, size: number): Stat {
  const out: Stat = {
    type: stat.type,
    size,
    mode: stat.mode,
    uid: stat.uid,
    gid: stat.gid,
    nlink: stat.nlink,
    mtimeNs: stat.mtimeNs,
    atimeNs: stat.atimeNs,
    ctimeNs: stat.ctimeNs,
    birthtimeNs: stat.birthtimeNs,
    allocatedSize: stat.allocatedSize,
    ino: stat.ino,
  };
  if (stat.otherKind !== undefined) out.otherKind = stat.otherKind;
  if (stat.rdev !== undefined) out.rdev = stat.rdev;
  if (stat.streams !== undefined) out.streams = stat.streams;
  if (stat.flags !== undefined) out.flags = stat.flags;
  return out;
}

function syntheticDirStat(size: number): Stat {
  return {
    type: 'dir',
    size,
    mode: 0o755,
    uid: 0,
    gid: 0,
    nlink: 2,
    mtimeNs: 0n,
    atimeNs: 0n,
    ctimeNs: 0n,
    birthtimeNs: null,
    allocatedSize: 0,
    ino: 1,
  };
}

function describeHead(volume: Volume): string {
  const type = volume.type === 'none' ? '' : `; partition type ${volume.type}${volume.typeName ? ` (${volume.typeName})` : ''}`;
  return `no ext2/3/4, FAT, exFAT or NTFS signature, nor a known foreign one${type}`;
}
