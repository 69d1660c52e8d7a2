/** CRC-64 as xz uses it (ECMA-182 polynomial, reflected; xz-file-format 7.2), table-driven on two 32-bit halves. */
const TABLE_LO = new Uint32Array(256);
const TABLE_HI = new Uint32Array(256);
{
  const poly = 0xc96c5795d7870f42n;
  for (let i = 0; i < 256; i++) {
    let c = BigInt(i);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ poly : c >> 1n;
    TABLE_LO[i] = Number(c & 0xffffffffn);
    TABLE_HI[i] = Number(c >> 32n);
  }
}

export class Crc64 {
  private lo = 0xffffffff;
  private hi = 0xffffffff;

  update(data: Uint8Array): void {
    let lo = this.lo;
    let hi = this.hi;
    for (let i = 0; i < data.length; i++) {
      const t = (lo ^ data[i]) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[t];
      hi = (hi >>> 8) ^ TABLE_HI[t];
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  /** The check as xz stores it: 8 bytes, little-endian. */
  digest(): Buffer {
    const out = Buffer.alloc(8);
    out.writeUInt32LE((~this.lo) >>> 0, 0);
    out.writeUInt32LE((~this.hi) >>> 0, 4);
    return out;
  }
}
