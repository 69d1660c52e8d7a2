/**
 * Page-aligned buffers for O_DIRECT reads. Node offers no way to ask for an
 * aligned Buffer, and Buffer.alloc's memory comes from malloc (16-byte
 * aligned: O_DIRECT refuses it with EINVAL). A WebAssembly.Memory is mapped
 * by V8 straight from the OS page allocator, so its first byte sits on a page
 * boundary, and any 4096-multiple offset inside it is aligned for any
 * logical block size a disk uses (512 or 4096).
 */

// The project compiles without the DOM/WebAssembly lib typings; this is the one API used.
declare const WebAssembly: { Memory: new (descriptor: { initial: number; maximum?: number }) => { buffer: ArrayBuffer } };

export const DIRECT_ALIGN = 4096;
const WASM_PAGE = 64 * 1024;

export function alignedBuffer(size: number): Buffer {
  const pages = Math.ceil(size / WASM_PAGE);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  return Buffer.from(memory.buffer, 0, size);
}

export function alignDown(n: number, align = DIRECT_ALIGN): number {
  return Math.floor(n / align) * align;
}

export function alignUp(n: number, align = DIRECT_ALIGN): number {
  return Math.ceil(n / align) * align;
}
