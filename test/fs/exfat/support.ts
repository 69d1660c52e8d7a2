/** exFAT-only helpers: patching entry sets the way other writers leave them, and exfatprogs' own figures. */
import type { ExfatNode } from '../../../parsers/fs/exfat/index.js';
import { closeImage, openImage, patch, peek, run } from '../fat/support.js';

/** SetChecksum, written independently of the driver's so a shared mistake cannot hide. */
export function setChecksum(set: Buffer): number {
  let sum = 0;
  for (let i = 0; i < set.length; i++) {
    if (i === 2 || i === 3) continue;
    sum = ((sum & 1 ? 0x8000 : 0) + (sum >> 1) + set[i]) & 0xffff;
  }
  return sum;
}

/** Where a root-directory file's entry set is, and how many entries it has. */
export async function entrySetOf(image: string, name: string): Promise<{ offset: number; entries: number }> {
  const o = await openImage(image);
  try {
    const node = (await o.fs.lookup(await o.fs.root(), name)) as ExfatNode | null;
    if (!node) throw new Error(`${name} not in the root of ${image}`);
    const file = peek(image, node.entryOffset, 32);
    return { offset: node.entryOffset, entries: 1 + file[1] };
  } finally {
    await closeImage(o);
  }
}

/** Rewrite one byte range inside a root file's entry set and fix the checksum (set in one cluster). */
export async function patchEntrySet(image: string, name: string, edit: (set: Buffer) => void): Promise<number> {
  const { offset, entries } = await entrySetOf(image, name);
  const set = peek(image, offset, entries * 32);
  edit(set);
  set.writeUInt16LE(setChecksum(set), 2);
  patch(image, offset, set);
  return offset;
}

/** Lower ValidDataLength of a root file, as Windows leaves a file extended with SetEndOfFile. */
export async function patchValidDataLength(image: string, name: string, validDataLength: number): Promise<void> {
  await patchEntrySet(image, name, (set) => set.writeBigUInt64LE(BigInt(validDataLength), 32 + 8));
}

/** dump.exfat's "Free Clusters" line: exfatprogs' count from the allocation bitmap. */
export function dumpExfatFreeClusters(image: string): number {
  const m = /Free Clusters:\s*(\d+)/.exec(run('dump.exfat', [image]));
  if (!m) throw new Error('dump.exfat printed no free cluster count');
  return Number(m[1]);
}
