import { copyFileSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImage } from '../../parsers/source/open.js';
import { ChunkedSource } from '../../parsers/source/containers/chunked.js';
import { XzCheckpointChunks } from '../../parsers/source/containers/xz-checkpoints.js';
import type { ByteSource } from '../../parsers/source/types.js';
import { samples } from '../support/manifests.js';
import { run, tempDir } from '../support/run.js';
import { checkAllocatedCovers, checkRandomReads, expectTypedError, readAll, sha256 } from './support.js';

/**
 * A single-block .xz (plain `xz`, what most people make) is read at random
 * through checkpoints that our own LZMA2 decoder records on the first open:
 * made here by the real xz from a copy of the GPT sample image.
 */
const tmp = tempDir('loopless-xzcp-');
const cacheDir = join(tmp.dir, 'cache');
let raw: string;
let rawBytes: Buffer;
const p = (name: string) => join(tmp.dir, name);

function xz(out: string, ...args: string[]): string {
  run('sh', ['-c', `xz -c -T1 ${args.join(' ')} < "$1" > "$2"`, 'sh', raw, out]);
  return out;
}

/** xz of the disk's first `bytes` (xz -9e takes ~0.5 s a MiB on this mostly empty disk). */
function xzHead(out: string, bytes: number, ...args: string[]): string {
  run('sh', ['-c', `head -c ${bytes} "$1" | xz -c -T1 ${args.join(' ')} > "$2"`, 'sh', raw, out]);
  return out;
}

function checkpointsOf(source: ByteSource): XzCheckpointChunks {
  expect(source).toBeInstanceOf(ChunkedSource);
  const index = (source as ChunkedSource).index;
  expect(index).toBeInstanceOf(XzCheckpointChunks);
  return index as XzCheckpointChunks;
}

beforeAll(() => {
  raw = p('gpt.img');
  copyFileSync(join(samples, 'gpt.img'), raw);
  rawBytes = readFileSync(raw);
});
afterAll(() => tmp.cleanup());

describe('xz, one block: checkpoints from our own LZMA2 decoder', () => {
  const variants: [string, string[], number?][] = [
    ['xz -6', ['-6']],
    ['xz -9', ['-9']],
    ['xz -9e, the first 8 MiB', ['-9e'], 8 << 20],
    ['xz -1, 1 MiB dictionary', ['--lzma2=preset=1,dict=1MiB']],
    ['xz -0, SHA-256 check', ['-0', '--check=sha256']],
    ['xz -3, CRC32 check', ['-3', '--check=crc32']],
    ['xz, no check', ['-1', '--check=none']],
  ];
  it.each(variants)('%s reads back byte for byte at random', { timeout: 120_000 }, async (name, args, head) => {
    const file = p(`${name.replace(/\W+/g, '-')}.img.xz`);
    const path = head ? xzHead(file, head, ...args) : xz(file, ...args);
    const expected = head ? rawBytes.subarray(0, head) : rawBytes;
    const img = await openImage(path, { cacheDir });
    try {
      expect(img.chain).toEqual(['xz']);
      expect(img.source.size).toBe(expected.length);
      expect(img.source.description).toMatch(/one block, \d+ checkpoints, index built/);
      await checkRandomReads(img.source, expected, 60, 7);
      expect(sha256(await readAll(img.source))).toBe(sha256(expected));
      checkAllocatedCovers(await img.source.allocatedRanges!(), expected);
    } finally {
      await img.source.close();
    }
  });

  it('reads backwards from the nearest checkpoint, not from the start', { timeout: 120_000 }, async () => {
    const path = xz(p('small-dict.img.xz'), '--lzma2=preset=1,dict=1MiB');
    const img = await openImage(path, { cacheDir });
    try {
      const chunks = checkpointsOf(img.source);
      // A 1 MiB dictionary: a checkpoint every 4 MiB of the 71 MiB disk.
      expect(chunks.checkpoints).toBeGreaterThan(10);
      const span = chunks.span;
      expect(span).toBeLessThan(8 << 20);
      // Forward to near the end, then back to the middle and to the start.
      // (Not the first or last 2 MiB: opening read the head and the tail, so those pieces are cached.)
      for (const at of [rawBytes.length - (3 << 20), rawBytes.length / 2, (3 << 20) + 12345]) {
        const restoresBefore = chunks.restores;
        const decodedBefore = chunks.decodedBytes;
        const buf = Buffer.alloc(4096);
        await img.source.read(buf, 0, buf.length, at);
        expect(buf.equals(rawBytes.subarray(at, at + 4096))).toBe(true);
        expect(chunks.restores - restoresBefore).toBe(1);
        // Decoded from the checkpoint before it: at most a span and a read piece, never the whole disk.
        expect(chunks.decodedBytes - decodedBefore).toBeLessThanOrEqual(span + (2 << 20));
      }
      // Forward reads go on from where the decoder stopped: one restore, for the first.
      const restores = chunks.restores;
      const buf = Buffer.alloc(1 << 20);
      for (let at = 20 << 20; at < 36 << 20; at += 1 << 20) {
        await img.source.read(buf, 0, buf.length, at);
        expect(buf.equals(rawBytes.subarray(at, at + buf.length))).toBe(true);
      }
      expect(chunks.restores).toBe(restores + 1);
    } finally {
      await img.source.close();
    }
  });

  it('builds its index once with progress, then reuses it from the cache', { timeout: 120_000 }, async () => {
    const path = xz(p('cached.img.xz'), '-6');
    const dir = p('cache-xz');
    const progress: { done: number; total: number }[] = [];
    const first = await openImage(path, { cacheDir: dir, onProgress: (x) => progress.push(x) });
    expect(first.source.description).toMatch(/index built/);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toMatchObject({ done: statSync(path).size, total: statSync(path).size });
    await first.source.close();
    const files = readdirSync(dir);
    expect(files).toHaveLength(1);
    // The index holds the checkpoints' dictionaries, deflated: well under the disk's size.
    expect(statSync(join(dir, files[0])).size).toBeLessThan(rawBytes.length / 4);

    const again: unknown[] = [];
    const second = await openImage(path, { cacheDir: dir, onProgress: (x) => again.push(x) });
    try {
      expect(again).toEqual([]);
      expect(second.source.description).toMatch(/cached index/);
      await checkRandomReads(second.source, rawBytes, 30, 99);
    } finally {
      await second.source.close();
    }
  });

  it('a damaged byte in the compressed data is a CorruptError naming the xz structure', { timeout: 120_000 }, async () => {
    const path = xz(p('damaged.img.xz'), '-6');
    const bytes = readFileSync(path);
    // Flip bits at several places inside the block's compressed data (after the 12-byte stream header and the block header).
    for (const where of [0.2, 0.5, 0.8]) {
      const copy = Buffer.from(bytes);
      const at = Math.floor(bytes.length * where);
      copy[at] ^= 0x10;
      const bad = p(`damaged-${where}.img.xz`);
      writeFileSync(bad, copy);
      const e = await expectTypedError(
        openImage(bad, { cacheDir: p('cache-damaged') }).then(async (img) => {
          try {
            await readAll(img.source);
          } finally {
            await img.source.close();
          }
        }),
        'CORRUPT',
        /corrupt xz (block|LZMA2 chunk) at byte \d+/,
      );
      expect(e.message).not.toMatch(/undefined|NaN/);
    }
    // A damaged stored check (the CRC64 right before the stream index) is caught by the index pass.
    const copy = Buffer.from(bytes);
    const indexSize = (copy.readUInt32LE(copy.length - 8) + 1) * 4;
    copy[copy.length - 12 - indexSize - 8] ^= 1;
    writeFileSync(p('damaged-check.img.xz'), copy);
    await expectTypedError(openImage(p('damaged-check.img.xz'), { cacheDir: p('cache-damaged') }), 'CORRUPT', /corrupt xz block at byte \d+: CRC64 check mismatch/);
    // No index is left behind for a file that failed its pass.
    expect(() => readdirSync(p('cache-damaged')).filter((f) => f.endsWith('.idx'))).not.toThrow();
    expect(readdirSync(p('cache-damaged')).filter((f) => f.endsWith('.idx'))).toEqual([]);
  });

  it('a filter chain other than a lone LZMA2 (x86 BCJ, delta) is refused clearly', { timeout: 120_000 }, async () => {
    for (const [name, args, match] of [
      ['bcj', ['--x86', '--lzma2=preset=1'], /xz filter chain x86 BCJ \+ LZMA2 is not supported/],
      ['delta', ['--delta=dist=4', '--lzma2=preset=1'], /xz filter chain delta \+ LZMA2 is not supported/],
    ] as const) {
      const path = xz(p(`${name}.img.xz`), ...args);
      await expectTypedError(openImage(path, { cacheDir }), 'UNSUPPORTED', match);
    }
  });
});
