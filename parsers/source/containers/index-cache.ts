import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OpenContext } from '../open.js';
import { RawFileSource } from '../raw.js';
import { readZeroPadded } from '../read.js';
import type { ByteSource } from '../types.js';

/**
 * On-disk cache of seek indexes (gzip checkpoints with their windows, bzip2
 * block maps, zstd frame maps), so that only the first open of an image pays
 * for the full pass. An index file is keyed by the image's size, mtime and a
 * hash of its first and last 64 KiB, and written atomically (temp + rename).
 *
 * Layout: "LLIDX001", blob area (windows), then a JSON header, then a trailer
 * of [u32 header length][u64 header offset]["LLIDX001"].
 */
const MAGIC = Buffer.from('LLIDX001');
const TRAILER = 20;

export function cacheDirectory(context: Pick<OpenContext, 'cacheDir'>): string {
  if (context.cacheDir) return context.cacheDir;
  if (process.env.LOOPLESS_CACHE_DIR) return process.env.LOOPLESS_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'loopless');
}

export async function indexKey(kind: string, inner: ByteSource, path: string): Promise<string> {
  const h = createHash('sha256');
  h.update(`${kind}\0${inner.size}\0`);
  try {
    const st = await stat(path);
    h.update(`${st.size}\0${st.mtimeMs}\0`);
  } catch {
    // No file to stat (an in-memory source): the content hashes alone key it.
  }
  h.update(await readZeroPadded(inner, 0, Math.min(65536, inner.size)));
  h.update(await readZeroPadded(inner, Math.max(0, inner.size - 65536), Math.min(65536, inner.size)));
  return `${kind}-${h.digest('hex').slice(0, 40)}`;
}

/** A cached index opened for reading: its header, and its blob area for positional reads. */
export interface CachedIndex<H> {
  header: H;
  blobs: ByteSource;
  path: string;
}

export async function loadIndex<H>(dir: string, key: string, validate: (header: unknown) => header is H): Promise<CachedIndex<H> | null> {
  const path = join(dir, `${key}.idx`);
  let file: RawFileSource;
  try {
    file = await RawFileSource.open(path);
  } catch {
    return null;
  }
  try {
    if (file.size < MAGIC.length + TRAILER) throw new Error('short');
    const trailer = await readZeroPadded(file, file.size - TRAILER, TRAILER);
    if (!trailer.subarray(12).equals(MAGIC)) throw new Error('magic');
    const jsonLength = trailer.readUInt32LE(0);
    const jsonOffset = Number(trailer.readBigUInt64LE(4));
    if (jsonOffset + jsonLength + TRAILER !== file.size) throw new Error('layout');
    const header: unknown = JSON.parse((await readZeroPadded(file, jsonOffset, jsonLength)).toString('utf8'));
    if (!validate(header)) throw new Error('header');
    return { header, blobs: file, path };
  } catch {
    // A stale or damaged cache entry is simply rebuilt.
    await file.close();
    return null;
  }
}

/** Writes an index: blobs are appended while it is built, the header last. */
export class IndexWriter {
  private position = MAGIC.length;
  private constructor(
    private readonly handle: FileHandle,
    private readonly tempPath: string,
    private readonly finalPath: string,
    private readonly persistent: boolean,
  ) {}

  /**
   * Start an index in the cache directory, or, if that cannot be written, in
   * the temp directory as a file that goes away when the image is closed.
   */
  static async create(dir: string, key: string): Promise<IndexWriter> {
    const suffix = `${process.pid}-${randomBytes(6).toString('hex')}`;
    for (const [where, persistent] of [[dir, true], [tmpdir(), false]] as const) {
      try {
        await mkdir(where, { recursive: true });
        const finalPath = join(where, persistent ? `${key}.idx` : `loopless-${key}-${suffix}.idx`);
        const tempPath = `${finalPath}.tmp-${suffix}`;
        const handle = await open(tempPath, 'w');
        await handle.write(MAGIC, 0, MAGIC.length, 0);
        return new IndexWriter(handle, tempPath, finalPath, persistent);
      } catch {
        continue;
      }
    }
    throw new Error('cannot write a seek index in the cache directory or the temp directory');
  }

  /** Append a blob; returns its offset in the index file. */
  async append(data: Uint8Array): Promise<number> {
    const at = this.position;
    await this.handle.write(data, 0, data.length, at);
    this.position += data.length;
    return at;
  }

  /** Write the header, make the file visible, and open it for reading. */
  async finish(header: unknown): Promise<CachedIndex<unknown> & { persistent: boolean }> {
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const trailer = Buffer.alloc(TRAILER);
    trailer.writeUInt32LE(json.length, 0);
    trailer.writeBigUInt64LE(BigInt(this.position), 4);
    MAGIC.copy(trailer, 12);
    await this.handle.write(json, 0, json.length, this.position);
    await this.handle.write(trailer, 0, TRAILER, this.position + json.length);
    await this.handle.close();
    await rename(this.tempPath, this.finalPath);
    const blobs = await RawFileSource.open(this.finalPath);
    // A temp-dir index is unlinked at once: the open handle keeps it readable until close.
    if (!this.persistent) await unlink(this.finalPath).catch(() => {});
    return { header, blobs, path: this.finalPath, persistent: this.persistent };
  }

  async abort(): Promise<void> {
    await this.handle.close().catch(() => {});
    await unlink(this.tempPath).catch(() => {});
  }
}

/**
 * The cached index under `key` when there is a valid one, else one built now
 * by `build` (which writes its blobs through the writer and returns the
 * header) and cached; `how` says which, for the source's description.
 */
export async function loadOrBuildIndex<H>(
  dir: string,
  key: string,
  validate: (header: unknown) => header is H,
  build: (writer: IndexWriter) => Promise<H>,
): Promise<{ cached: CachedIndex<H>; how: string }> {
  const cached = await loadIndex(dir, key, validate);
  if (cached) return { cached, how: 'cached index' };
  const writer = await IndexWriter.create(dir, key);
  try {
    const header = await build(writer);
    const done = await writer.finish(header);
    return { cached: { header, blobs: done.blobs, path: done.path }, how: done.persistent ? 'index built' : 'index built (cache not writable)' };
  } catch (e) {
    await writer.abort();
    throw e;
  }
}
