/** CRC-32C (Castagnoli), used by VHDX for its headers, region table and log, and by ext4's metadata_csum. Node's zlib only has CRC-32. */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array, crc = 0): number {
  return ~crc32cRaw(~crc >>> 0, data) >>> 0;
}

/**
 * The CRC register after `data`, from `state`, with no inversion in or out:
 * Linux's crc32c(crc, p, len), which ext4 chains (seed, inode number,
 * generation, bytes) and stores as is.
 */
export function crc32cRaw(state: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = state >>> 0;
  for (let i = start; i < end; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}
