/**
 * Compressed raw images as a one-way stream of their decompressed bytes, for
 * restore, which reads a disk once in ascending order (see input.ts).
 *
 * gzip goes through Node's zlib. xz, zstd and bzip2 go through the Debian
 * tools (`xz`, `zstd`, `bzip2`) in a child process: measured on this machine
 * they decompress 3-5x faster than the JavaScript decoders in package.json
 * (which the containers layer uses for random access), and the pipe bounds
 * memory by backpressure. fzstd's push API cannot apply backpressure (one
 * small input chunk of zero runs can expand to hundreds of MiB at once) and
 * seek-bzip decodes about 3 MB/s.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { CorruptError, UnsupportedError } from '../parsers/errors.js';

export type Compression = 'gzip' | 'xz' | 'zstd' | 'bzip2';

/** Detection by magic bytes, never by file name. */
export function detectCompression(head: Buffer): Compression | null {
  if (head.length >= 3 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 0x08) return 'gzip';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  // "BZh" + block size digit, then the first block's (or end-of-stream) 48-bit magic.
  if (head.length >= 10 && head.toString('latin1', 0, 3) === 'BZh' && head[3] >= 0x31 && head[3] <= 0x39) {
    const magic = head.subarray(4, 10).toString('hex');
    if (magic === '314159265359' || magic === '177245385090') return 'bzip2';
  }
  return null;
}

const TOOLS: Record<Exclude<Compression, 'gzip'>, { command: string; debianPackage: string }> = {
  xz: { command: 'xz', debianPackage: 'xz-utils' },
  zstd: { command: 'zstd', debianPackage: 'zstd' },
  bzip2: { command: 'bzip2', debianPackage: 'bzip2' },
};

/** Whether this machine can stream the format (gzip always; the others need their Debian tool). */
export function streamingAvailable(kind: Compression): boolean {
  if (kind === 'gzip') return true;
  return spawnSync(TOOLS[kind].command, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** A running decompression: its output chunks in order, and a way to abandon it early. */
export interface Decompression {
  chunks: AsyncIterable<Buffer>;
  stop(): void;
}

export function decompress(path: string, kind: Compression): Decompression {
  if (kind === 'gzip') {
    const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
    const gunzip = createGunzip({ chunkSize: 256 * 1024 });
    file.on('error', (e) => gunzip.destroy(e));
    file.pipe(gunzip);
    return {
      chunks: wrapErrors(gunzip, path, kind),
      stop: () => {
        file.destroy();
        gunzip.destroy();
      },
    };
  }
  const tool = TOOLS[kind];
  const child = spawn(tool.command, ['-dc', '--', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stopped = false;
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'ENOENT'
          ? new UnsupportedError(`${path}: ${kind}-compressed image needs the \`${tool.command}\` program (Debian package ${tool.debianPackage})`)
          : e,
      ),
    );
    child.on('close', (code) => resolve(code));
  });
  exited.catch(() => {}); // reported by the iterator below
  async function* chunks(): AsyncGenerator<Buffer> {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    const code = await exited;
    if (code !== 0 && !stopped) {
      const why = stderr.trim().split('\n').pop() ?? `exit status ${code}`;
      throw new CorruptError(`${kind} stream`, 0, `${tool.command} failed: ${why}`);
    }
  }
  return {
    chunks: chunks(),
    stop: () => {
      stopped = true;
      child.stdout.destroy();
      if (child.exitCode === null) child.kill();
    },
  };
}

async function* wrapErrors(stream: AsyncIterable<Buffer>, path: string, kind: Compression): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of stream) yield chunk;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_STREAM_PREMATURE_CLOSE') return;
    throw new CorruptError(`${kind} stream`, 0, `${path}: ${err.message}`);
  }
}

/**
 * The decompressed size when the format records it cheaply: xz keeps an
 * index at its end, zstd frames usually carry their content size. Null when
 * unknown (gzip's ISIZE is only the size mod 2^32; bzip2 records nothing).
 */
export function recordedSize(path: string, kind: Compression): number | null {
  if (kind === 'xz') {
    const r = spawnSync('xz', ['--robot', '--list', '--', path], { encoding: 'utf8' });
    const totals = r.status === 0 ? r.stdout.split('\n').find((l) => l.startsWith('totals\t')) : undefined;
    const size = totals ? Number(totals.split('\t')[4]) : NaN;
    return Number.isSafeInteger(size) ? size : null;
  }
  if (kind === 'zstd') {
    const r = spawnSync('zstd', ['-lv', '--', path], { encoding: 'utf8' });
    const m = r.status === 0 ? /Decompressed Size:.*\((\d+) B\)/.exec(r.stdout) : null;
    return m ? Number(m[1]) : null;
  }
  return null;
}
