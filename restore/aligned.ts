/**
 * Alignment for O_DIRECT on the restore target: offsets, lengths and buffer
 * addresses must be multiples of the logical block size (512 or 4096 on the
 * disks in use; 4096 suits both). The buffers themselves come from
 * parsers/source/aligned.ts (wasm memory, mapped on a page boundary).
 */
export { alignedBuffer, isPageAligned } from '../parsers/source/aligned.js';

export const DIRECT_ALIGN = 4096;

export function alignDown(n: number, align = DIRECT_ALIGN): number {
  return Math.floor(n / align) * align;
}

export function alignUp(n: number, align = DIRECT_ALIGN): number {
  return Math.ceil(n / align) * align;
}
