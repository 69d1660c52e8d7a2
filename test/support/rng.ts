/**
 * mulberry32: a small seeded generator, so that every fuzz round and every
 * generated image can be replayed from its seed. Numbers in [0, 1).
 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Reproducible incompressible bytes: the generator's 32-bit outputs, little-endian. */
export function seededBytes(length: number, seed: number): Buffer {
  const next = rng(seed);
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += 4) {
    const v = (next() * 2 ** 32) >>> 0;
    for (let j = 0; j < 4 && i + j < length; j++) out[i + j] = (v >>> (j * 8)) & 0xff;
  }
  return out;
}
