import { ZipArchiveEntry, ZipArchiveOutputStream } from 'compress-commons';
import { create as contentDisposition } from 'content-disposition';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { basename, extname } from 'node:path';
import { oneLine } from '../../parsers/errors.js';
import { nsToDate, walk, type Entry } from '../../parsers/vfs/index.js';
import { HttpError } from '../http-errors.js';
import { clientGone, type ImageRoute } from './context.js';

/** Already-compressed formats are stored: deflating them again only burns CPU. */
const STORED = new Set(['.zip', '.gz', '.tgz', '.xz', '.bz2', '.zst', '.7z', '.rar', '.jpg', '.jpeg', '.png', '.gif', '.webp', '.mp3', '.mp4', '.mkv', '.mov', '.avi', '.docx', '.xlsx', '.pptx', '.odt', '.ods', '.odp', '.jar', '.apk', '.qcow2', '.vhdx']);

const EXTENDED_TIMESTAMP = 0x5455;

/**
 * The zip "UT" extra field with the exact modification time in UTC: the DOS
 * time every zip entry carries has 2-second steps and no time zone.
 */
function utcTimeExtra(date: Date): Buffer {
  const seconds = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.floor(date.getTime() / 1000)));
  const b = Buffer.alloc(9);
  b.writeUInt16LE(EXTENDED_TIMESTAMP, 0);
  b.writeUInt16LE(5, 2);
  b.writeUInt8(1, 4); // flags: modification time present
  b.writeInt32LE(seconds, 5);
  return b;
}

/** Zip names separate with "/" only; a "\" inside a name would turn into a folder on Windows. */
function zipName(parts: string[]): string {
  return parts.map((p) => p.replace(/\\/g, '_')).join('/');
}

function zipEntry(name: string, e: Entry, mode: number): ZipArchiveEntry {
  const ze = new ZipArchiveEntry(name);
  const date = nsToDate(e.stat.mtimeNs);
  ze.setTime(date, true); // DOS times are local time by the zip spec; UT below carries UTC
  ze.setExtra(utcTimeExtra(date));
  ze.setUnixMode(mode);
  return ze;
}

/**
 * A file's bytes for the zip that end early instead of failing: one unreadable
 * file must not break the whole download. The failure is listed in
 * LOOPLESS-ERRORS.txt at the end of the archive.
 */
function tolerant(stream: Readable, onError: (e: unknown) => void): Readable {
  return Readable.from(
    (async function* () {
      try {
        for await (const chunk of stream) yield chunk as Buffer;
      } catch (e) {
        onError(e);
      }
    })(),
    { objectMode: false },
  );
}

/** Add one entry and wait until its bytes are in the archive (that wait is the backpressure). */
function append(out: ZipArchiveOutputStream, entry: ZipArchiveEntry, source: Readable | Buffer, gone: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      if (source instanceof Readable) source.destroy();
      reject(new Error('client disconnected'));
    };
    if (gone.aborted) return onAbort();
    gone.addEventListener('abort', onAbort, { once: true });
    out.entry(entry, source, (err) => {
      gone.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    });
  });
}

/**
 * GET /api/images/ID/zip/PATH: the folder as a zip, produced while it is sent
 * (no temporary file, memory bounded by one file's buffers). Entries keep
 * their modification times and Unix modes; symlinks are stored as symlinks
 * (never followed); special files (fifos, devices) are left out and listed in
 * LOOPLESS-ERRORS.txt together with anything that could not be read.
 */
export async function zip(route: ImageRoute): Promise<void> {
  const { req, res, disk, image, who, audit } = route;
  const start = await disk.stat(route.path);
  if (start.kind === 'volume' && !start.fs) await disk.filesystem(start.volume!); // says why it cannot be read
  if (start.stat.type !== 'dir') throw new HttpError(400, `${start.path}: not a folder (download a file with /cat)`);
  const top = start.name || basename(image.id, extname(image.id)) || 'image';

  res.setHeader('Content-Type', 'application/zip');
  res.setHeader('Content-Disposition', contentDisposition(`${top}.zip`));
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  if (req.method === 'HEAD') {
    res.end();
    return;
  }

  const gone = clientGone(res);
  const out = new ZipArchiveOutputStream({ zlib: { level: 1 }, forceLocalTime: true });
  let sent = 0;
  let files = 0;
  const problems: string[] = [];
  const sending = pipeline(
    out,
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        sent += chunk.length;
        yield chunk;
      }
    },
    res,
  );
  sending.catch(() => {}); // awaited below; the client leaving is handled through `gone`

  const prefix = start.path === '/' ? '/' : `${start.path}/`;
  let error: string | undefined;
  try {
    await append(out, zipEntry(`${zipName([top])}/`, start, start.stat.mode & 0o7777), Buffer.alloc(0), gone);
    for await (const e of walk(disk, start, { onError: (p, err) => problems.push(`${p}: ${oneLine(err)}`) })) {
      if (gone.aborted) break;
      const name = zipName([top, ...e.path.slice(prefix.length).split('/')]);
      const mode = e.stat.mode & 0o7777;
      if (e.stat.type === 'dir') {
        await append(out, zipEntry(`${name}/`, e, mode), Buffer.alloc(0), gone);
      } else if (e.stat.type === 'symlink') {
        let target: string;
        try {
          target = await disk.readlink(e);
        } catch (err) {
          problems.push(`${e.path}: ${oneLine(err)}`);
          continue;
        }
        await append(out, zipEntry(name, e, 0o120000 | mode), Buffer.from(target), gone);
      } else if (e.stat.type === 'file') {
        const ze = zipEntry(name, e, mode);
        if (STORED.has(extname(e.name).toLowerCase()) || e.stat.size === 0) ze.setMethod(0);
        const source = tolerant(disk.createReadStream(e), (err) => problems.push(`${e.path}: incomplete in this zip: ${oneLine(err)}`));
        await append(out, ze, e.stat.size === 0 ? Buffer.alloc(0) : source, gone);
        files++;
      } else {
        problems.push(`${e.path}: left out (${e.stat.otherKind ?? 'special file'})`);
      }
    }
    if (!gone.aborted) {
      if (problems.length) {
        const text = `Loopless could not put everything from ${image.id}:${start.path} into this zip:\n${problems.join('\n')}\n`;
        const note = new ZipArchiveEntry(zipName([top, 'LOOPLESS-ERRORS.txt']));
        note.setTime(new Date(), true);
        await append(out, note, Buffer.from(text), gone);
      }
      out.finish();
      await sending;
    }
  } catch (e) {
    error = gone.aborted ? 'client disconnected' : oneLine(e);
  } finally {
    if (gone.aborted || error) {
      out.destroy();
      res.destroy();
    }
    audit.record({
      event: 'zip',
      user: who.user,
      ip: req.ip ?? null,
      image: image.id,
      path: start.path,
      bytes: sent,
      files,
      complete: !error && !gone.aborted,
      status: res.statusCode,
      ...(error ? { error } : gone.aborted ? { error: 'client disconnected' } : {}),
      ...(problems.length ? { problems: problems.length } : {}),
    });
  }
}
