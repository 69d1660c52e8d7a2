import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, tempDir } from '../support/run.js';
import { rng } from '../support/rng.js';
import { makeRawDisk } from './support.js';

/**
 * Source-level mutation fuzz of every container: seeded byte changes in the
 * headers and tables of small real container files, then open and read them
 * in a worker. A round fails on any error that is not a typed LooplessError,
 * on a hang (no answer within the time bound), or on the worker running out
 * of its bounded heap.
 */
const tmp = tempDir('loopless-cfuzz-');
let small: string;
beforeAll(() => {
  const raw = makeRawDisk(tmp.dir);
  small = join(tmp.dir, 'small.img');
  // The first 2 MiB hold the GPT and the start of the ext4 partition: enough structure, small files.
  run('sh', ['-c', 'head -c 2M "$1" > "$2"', 'sh', raw, small]);
});
afterAll(() => tmp.cleanup());

// LOOPLESS_FUZZ_ROUNDS raises the count for a longer local run.
const ROUNDS = Number(process.env.LOOPLESS_FUZZ_ROUNDS) || 40;
const ROUND_TIMEOUT_MS = 10_000;

function startWorker(): Promise<Worker> {
  const w = new Worker(new URL('./fuzz-worker.mjs', import.meta.url), {
    workerData: { cacheDir: join(tmp.dir, 'cache') },
    resourceLimits: { maxOldGenerationSizeMb: 768 },
  });
  return new Promise((resolve, reject) => {
    w.once('message', () => resolve(w));
    w.once('error', reject);
  });
}

function vhdxRanges(f: Buffer): [number, number][] {
  const out: [number, number][] = [[0, 4096], [64 * 1024, 4096], [128 * 1024, 4096], [192 * 1024, 512], [256 * 1024, 512]];
  const count = Math.min(8, f.readUInt32LE(192 * 1024 + 8));
  for (let i = 0; i < count; i++) {
    const e = 192 * 1024 + 16 + i * 32;
    const offset = Number(f.readBigUInt64LE(e + 16));
    if (offset < f.length) out.push([offset, Math.min(4096, f.length - offset)]);
  }
  return out;
}

interface Target {
  name: string;
  make: (out: string) => void;
  ranges: (f: Buffer) => [number, number][];
  /** gzip and a single xz block are CRC-checked end to end: no mutated copy is expected to open. */
  mayNeverOpen?: boolean;
}

const head = (n: number) => (f: Buffer): [number, number][] => [[0, Math.min(n, f.length)], [Math.max(0, f.length - 4096), Math.min(4096, f.length)]];
const whole = (f: Buffer): [number, number][] => [[0, f.length]];
const qemu = (format: string, ...opts: string[]) => (out: string) => run('qemu-img', ['convert', ...opts, '-O', format, small, out]);
const sh = (cmd: string) => (out: string) => run('sh', ['-c', `${cmd} < "$1" > "$2"`, 'sh', small, out]);

const targets: Target[] = [
  { name: 'qcow2', make: qemu('qcow2'), ranges: head(5 * 65536) },
  { name: 'qcow2 compressed zstd, extended L2', make: qemu('qcow2', '-c', '-o', 'compression_type=zstd,extended_l2=on'), ranges: head(5 * 65536) },
  { name: 'vhd', make: qemu('vpc'), ranges: head(4096) },
  { name: 'vhd fixed', make: qemu('vpc', '-o', 'subformat=fixed'), ranges: (f) => [[f.length - 512, 512]] },
  { name: 'vhdx', make: qemu('vhdx'), ranges: vhdxRanges },
  { name: 'vmdk sparse', make: qemu('vmdk'), ranges: head(128 * 1024) },
  { name: 'vmdk streamOptimized', make: qemu('vmdk', '-o', 'subformat=streamOptimized'), ranges: whole },
  { name: 'vdi', make: qemu('vdi'), ranges: head(8192) },
  { name: 'gzip', make: sh('gzip -c'), ranges: whole, mayNeverOpen: true },
  { name: 'xz blocks', make: sh('xz -1 -c --block-size=256KiB'), ranges: whole },
  { name: 'xz one block', make: sh('xz -1 -c'), ranges: whole, mayNeverOpen: true },
  // No check: mutated LZMA2 data that still decodes opens, and reads go through the checkpoints.
  { name: 'xz one block, no check', make: sh('xz -1 -c --check=none --lzma2=preset=1,dict=256KiB'), ranges: whole, mayNeverOpen: true },
  {
    name: 'zstd frames',
    make: (out) => run('sh', ['-c', 'for o in 0 1 2 3 4 5 6 7; do dd if="$1" bs=256k skip=$o count=1 status=none | zstd -q -1 -c; done > "$2"', 'sh', small, out]),
    ranges: whole,
  },
  { name: 'bzip2', make: sh('bzip2 -1 -c'), ranges: whole },
];

const INTERESTING = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe];

describe('container fuzz: only typed errors, no hangs, bounded memory', () => {
  it.each(targets.map((t, i) => ({ ...t, seed: 1000 + i })))('$name', { timeout: ROUNDS * ROUND_TIMEOUT_MS }, async ({ name, make, ranges, seed, mayNeverOpen }) => {
    const path = join(tmp.dir, `fuzz-${seed}`);
    make(path);
    const original = readFileSync(path);
    const where = ranges(original).filter(([, len]) => len > 0);
    const total = where.reduce((s, [, len]) => s + len, 0);
    const random = rng(seed);
    const failures: string[] = [];
    let opened = 0;
    let worker = await startWorker();
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const bytes = Buffer.alloc(original.length);
        original.copy(bytes);
        const count = 1 + Math.floor(random() * 8);
        for (let i = 0; i < count; i++) {
          let pick = Math.floor(random() * total);
          const [start] = where.find(([, len]) => (pick < len ? true : ((pick -= len), false)))!;
          const pos = start + pick;
          const how = random();
          if (how < 0.4) bytes[pos] = Math.floor(random() * 256);
          else if (how < 0.8) bytes[pos] = INTERESTING[Math.floor(random() * INTERESTING.length)];
          else bytes[pos] ^= 1 << Math.floor(random() * 8);
        }
        const outcome = await new Promise<{ crashes: string[]; opened: boolean } | string>((resolve) => {
          const timer = setTimeout(() => resolve(`hang: no answer within ${ROUND_TIMEOUT_MS} ms`), ROUND_TIMEOUT_MS);
          const done = (v: { crashes: string[]; opened: boolean } | string) => {
            clearTimeout(timer);
            worker.removeAllListeners('message').removeAllListeners('error').removeAllListeners('exit');
            resolve(v);
          };
          worker.on('message', (m) => done(m));
          worker.on('error', (e) => done(`worker died: ${e.message}`));
          worker.on('exit', (c) => done(`worker exited with ${c} (out of memory?)`));
          worker.postMessage({ bytes, seed: seed * 1000 + round }, [bytes.buffer]);
        });
        if (typeof outcome === 'string') {
          failures.push(`${name} seed ${seed} round ${round}: ${outcome}`);
          await worker.terminate();
          worker = await startWorker();
          continue;
        }
        if (outcome.opened) opened++;
        for (const c of outcome.crashes) failures.push(`${name} seed ${seed} round ${round}: ${c}`);
      }
    } finally {
      await worker.terminate();
    }
    expect(failures).toEqual([]);
    // Some mutations must leave the container openable, or the fuzzer only tests the first check.
    if (!mayNeverOpen) expect(opened).toBeGreaterThan(0);
  });
});
