import { CorruptError } from '../../errors.js';

/** One run of a non-resident attribute: `length` clusters from `vcn`, at `lcn` or sparse (null). */
export interface Run {
  vcn: number;
  length: number;
  lcn: number | null;
}

/** Read a little-endian integer of 1..8 bytes; null when it does not fit a safe JS number. */
function readInt(b: Buffer, at: number, size: number, signed: boolean): number | null {
  if (size <= 6) return signed ? b.readIntLE(at, size) : b.readUIntLE(at, size);
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i]);
  if (signed && b[at + size - 1] & 0x80) v -= 1n << BigInt(size * 8);
  return v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(v);
}

/**
 * Decode mapping pairs (a runlist) starting at `start` and ending before
 * `end`. Each pair is a header byte (low nibble: size of the length, high
 * nibble: size of the LCN delta, 0 for a sparse run), the length, then the
 * LCN as a signed delta from the previous run's LCN. Every run must lie inside
 * the volume (`totalClusters`) and the runs must not map more than the
 * attribute extent claims (`lowestVcn`..`highestVcn`).
 */
export function decodeRunlist(
  b: Buffer,
  start: number,
  end: number,
  lowestVcn: number,
  highestVcn: number,
  totalClusters: number,
  structure: string,
  offset: number,
): Run[] {
  const runs: Run[] = [];
  let at = start;
  let vcn = lowestVcn;
  let lcn = 0;
  const fail = (detail: string): never => {
    throw new CorruptError(structure, offset + at, detail);
  };
  while (at < end && b[at] !== 0) {
    const lengthSize = b[at] & 0x0f;
    const lcnSize = b[at] >> 4;
    if (lengthSize === 0 || lengthSize > 8 || lcnSize > 8) fail(`invalid runlist header byte 0x${b[at].toString(16)}`);
    if (at + 1 + lengthSize + lcnSize > end) fail('runlist runs past the end of its attribute');
    const length = readInt(b, at + 1, lengthSize, true);
    if (length === null || length <= 0) fail(`invalid run length ${length}`);
    let runLcn: number | null = null;
    if (lcnSize > 0) {
      const delta = readInt(b, at + 1 + lengthSize, lcnSize, true);
      if (delta === null) fail('run LCN out of range');
      lcn += delta!;
      if (lcn < 0 || lcn + length! > totalClusters) {
        fail(`run of ${length} clusters at LCN ${lcn} lies outside the volume (${totalClusters} clusters)`);
      }
      runLcn = lcn;
    }
    if (vcn + length! - 1 > highestVcn) fail(`runs map VCN ${vcn + length! - 1}, beyond the extent's last VCN ${highestVcn}`);
    const prev = runs[runs.length - 1];
    // Merge adjacent runs that continue each other, so reads stay large.
    if (prev && ((prev.lcn === null && runLcn === null) || (prev.lcn !== null && runLcn !== null && prev.lcn + prev.length === runLcn))) {
      prev.length += length!;
    } else {
      runs.push({ vcn, length: length!, lcn: runLcn });
    }
    vcn += length!;
    at += 1 + lengthSize + lcnSize;
  }
  return runs;
}

/** Index of the run containing `vcn` in a sorted runlist, or -1. */
export function findRun(runs: Run[], vcn: number): number {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = runs[mid];
    if (vcn < r.vcn) hi = mid - 1;
    else if (vcn >= r.vcn + r.length) lo = mid + 1;
    else return mid;
  }
  return -1;
}
