import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { isLooplessError, type LooplessError } from '../../parsers/errors.js';
import type { ByteRange, ByteSource } from '../../parsers/source/types.js';
import { rng, seededBytes } from '../support/rng.js';
import { run } from '../support/run.js';

/**
 * A small real disk: GPT, an ext4 partition made by mkfs.ext4 -d from text,
 * compressible and incompressible files, and a second partition of random
 * bytes, with unpartitioned zero space around them (so sparse formats have
 * holes and compressors meet stored blocks).
 */
export function makeRawDisk(dir: string, name = 'disk.img', sizeMiB = 32): string {
  const content = join(dir, `${name}-content`);
  mkdirSync(join(content, 'docs'), { recursive: true });
  const words = 'the quick brown fox jumps over a lazy dog while loopless reads every byte of it'.split(' ');
  const r = rng(7);
  let text = '';
  while (text.length < 600_000) text += words[Math.floor(r() * words.length)] + (r() < 0.1 ? '\n' : ' ');
  writeFileSync(join(content, 'docs', 'words.txt'), text);
  writeFileSync(join(content, 'random.bin'), seededBytes(3 * 1024 * 1024 + 123, 11));
  writeFileSync(join(content, 'small.txt'), 'hello from inside a container\n');
  const fs = join(dir, `${name}-ext4.fs`);
  run('truncate', ['-s', '16M', fs]);
  run('mkfs.ext4', ['-q', '-F', '-d', content, fs]);
  const img = join(dir, name);
  run('truncate', ['-s', `${sizeMiB}M`, img]);
  run('sfdisk', ['-q', img], { input: 'label: gpt\nstart=2048, size=32768, type=linux\nstart=40960, size=8192, type=linux\n' });
  run('dd', [`if=${fs}`, `of=${img}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  writeFileSync(join(dir, `${name}-p2`), seededBytes(4 * 1024 * 1024, 13));
  run('dd', [`if=${join(dir, `${name}-p2`)}`, `of=${img}`, 'bs=1M', 'seek=20', 'conv=notrunc', 'status=none']);
  return img;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function fileSha256(path: string): string {
  return sha256(readFileSync(path));
}

/** Read a whole source with 1 MiB reads. */
export async function readAll(source: ByteSource, limit = source.size): Promise<Buffer> {
  const out = Buffer.alloc(Math.min(limit, source.size));
  for (let pos = 0; pos < out.length; pos += 1 << 20) {
    const n = Math.min(1 << 20, out.length - pos);
    expect(await source.read(out, pos, n, pos)).toBe(n);
  }
  return out;
}

/** Random reads of random lengths (some tiny, some crossing many clusters) compared with the expected bytes. */
export async function checkRandomReads(source: ByteSource, expected: Buffer, count: number, seed: number): Promise<void> {
  const r = rng(seed);
  for (let i = 0; i < count; i++) {
    const len = r() < 0.5 ? 1 + Math.floor(r() * 600) : 1 + Math.floor(r() * 3 * 1024 * 1024);
    const pos = Math.floor(r() * Math.max(1, expected.length - 1));
    const want = Math.min(len, source.size - pos);
    const buf = Buffer.alloc(want + 16, 0x5a);
    const n = await source.read(buf, 8, want, pos);
    expect(n, `read ${want} at ${pos}`).toBe(want);
    const exp = Buffer.alloc(want);
    expected.copy(exp, 0, pos, Math.min(expected.length, pos + want));
    if (!buf.subarray(8, 8 + want).equals(exp)) throw new Error(`seed ${seed}: ${want} bytes at ${pos} differ from the original`);
    // Nothing written outside the requested window.
    expect(buf.subarray(0, 8).equals(Buffer.alloc(8, 0x5a))).toBe(true);
    expect(buf.subarray(8 + want).equals(Buffer.alloc(8, 0x5a))).toBe(true);
  }
}

/** Every non-zero 512-byte sector of `expected` must lie inside the allocated ranges (over-reporting is allowed). */
export function checkAllocatedCovers(ranges: ByteRange[], expected: Buffer): void {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const zero = Buffer.alloc(512);
  let j = 0;
  for (let pos = 0; pos < expected.length; pos += 512) {
    const piece = expected.subarray(pos, pos + 512);
    if (piece.equals(zero.subarray(0, piece.length))) continue;
    while (j < sorted.length && sorted[j].start + sorted[j].length <= pos) j++;
    const r = sorted[j];
    if (!r || r.start > pos || r.start + r.length < pos + piece.length) {
      throw new Error(`data at ${pos} is outside the allocated ranges`);
    }
  }
}

/** Expect a typed, one-line error (not a crash). */
export async function expectTypedError(p: Promise<unknown>, code?: string, match?: RegExp): Promise<LooplessError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected an error').toBeDefined();
  if (!isLooplessError(caught)) throw new Error(`not a typed error: ${(caught as Error)?.stack ?? caught}`);
  if (code) expect(caught.code).toBe(code);
  if (match) expect(caught.message).toMatch(match);
  expect(caught.message).not.toContain('\n');
  return caught;
}
