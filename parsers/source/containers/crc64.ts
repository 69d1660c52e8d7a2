/**
 * CRC-64 as xz uses it (ECMA-182 polynomial, reflected; xz-file-format 7.2),
 * slicing by 8 on two 32-bit halves: ~4× the speed of a byte at a time, which
 * mattered in the xz index pass (measured).
 */
const LO: Uint32Array[] = [];
const HI: Uint32Array[] = [];
{
  const poly = 0xc96c5795d7870f42n;
  const base: bigint[] = [];
  for (let i = 0; i < 256; i++) {
    let c = BigInt(i);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ poly : c >> 1n;
    base.push(c);
  }
  let prev = base;
  for (let t = 0; t < 8; t++) {
    LO.push(new Uint32Array(prev.map((c) => Number(c & 0xffffffffn))));
    HI.push(new Uint32Array(prev.map((c) => Number(c >> 32n))));
    prev = prev.map((c) => (c >> 8n) ^ base[Number(c & 0xffn)]);
  }
}
const [L0, L1, L2, L3, L4, L5, L6, L7] = LO;
const [H0, H1, H2, H3, H4, H5, H6, H7] = HI;

export class Crc64 {
  private lo = 0xffffffff;
  private hi = 0xffffffff;

  update(data: Uint8Array): void {
    let lo = this.lo;
    let hi = this.hi;
    let i = 0;
    const n = data.length;
    for (; i + 8 <= n; i += 8) {
      lo ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
      hi ^= data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24);
      const nlo = L7[lo & 0xff] ^ L6[(lo >>> 8) & 0xff] ^ L5[(lo >>> 16) & 0xff] ^ L4[lo >>> 24] ^ L3[hi & 0xff] ^ L2[(hi >>> 8) & 0xff] ^ L1[(hi >>> 16) & 0xff] ^ L0[hi >>> 24];
      hi = H7[lo & 0xff] ^ H6[(lo >>> 8) & 0xff] ^ H5[(lo >>> 16) & 0xff] ^ H4[lo >>> 24] ^ H3[hi & 0xff] ^ H2[(hi >>> 8) & 0xff] ^ H1[(hi >>> 16) & 0xff] ^ H0[hi >>> 24];
      lo = nlo;
    }
    for (; i < n; i++) {
      const t = (lo ^ data[i]) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ L0[t];
      hi = (hi >>> 8) ^ H0[t];
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  /** The check as xz stores it: 8 bytes, little-endian. */
  digest(): Buffer {
    const out = Buffer.alloc(8);
    out.writeUInt32LE(~this.lo >>> 0, 0);
    out.writeUInt32LE(~this.hi >>> 0, 4);
    return out;
  }
}
