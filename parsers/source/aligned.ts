/**
 * Page-aligned buffers for bulk reads.
 *
 * Measured on this machine's AMD EPYC (Linux 6.x, Node 20): a 1 GiB pread
 * loop into a 1 MiB Buffer.allocUnsafe() costs ~0.8 s of kernel time, into
 * the same size at a page-aligned address ~0.3 s. Node takes buffers of
 * 128 KiB+ from malloc, which returns mmap'ed memory 16 bytes past a page
 * boundary, and the kernel's copy_to_user (rep movsb) is about 2.5x slower
 * into a destination that is not 64-byte aligned. perf showed the difference
 * entirely in _copy_to_iter. JavaScript cannot see a buffer's address, but a
 * WebAssembly.Memory is always mapped at a page boundary, so buffers carved
 * from one at multiples of 4 KiB are aligned.
 */
const WASM_PAGE = 64 * 1024;

/** The part of WebAssembly used here (the project's lib has no WebAssembly typings). */
interface WasmMemoryConstructor {
  new (descriptor: { initial: number }): { readonly buffer: ArrayBuffer };
}
const WasmMemory = (globalThis as { WebAssembly?: { Memory: WasmMemoryConstructor } }).WebAssembly?.Memory;
const ALIGN = 4096;
/** The wasm memories buffers were carved from (a Buffer.allocUnsafe fallback is not among them). */
const pageAlignedMemories = new WeakSet<ArrayBuffer>();

/**
 * A buffer of `size` bytes starting on a page boundary (contents undefined).
 * Falls back to Buffer.allocUnsafe where WebAssembly is unavailable (--jitless).
 * Each call maps a new memory: allocate once and reuse, not per read.
 */
export function alignedBuffer(size: number): Buffer {
  return alignedBuffers(size, 1)[0];
}

/** `count` page-aligned buffers of `size` bytes from one allocation. */
export function alignedBuffers(size: number, count: number): Buffer[] {
  const stride = Math.ceil(Math.max(size, 1) / ALIGN) * ALIGN;
  const out: Buffer[] = [];
  if (!WasmMemory) {
    for (let i = 0; i < count; i++) out.push(Buffer.allocUnsafe(size));
    return out;
  }
  let memory: { readonly buffer: ArrayBuffer };
  try {
    memory = new WasmMemory({ initial: Math.ceil((stride * count) / WASM_PAGE) });
  } catch {
    // Address space for wasm memories exhausted: unaligned is slower, not wrong.
    for (let i = 0; i < count; i++) out.push(Buffer.allocUnsafe(size));
    return out;
  }
  pageAlignedMemories.add(memory.buffer);
  for (let i = 0; i < count; i++) out.push(Buffer.from(memory.buffer, i * stride, size));
  return out;
}

/**
 * True when `buffer` starts on a page boundary: a view at a multiple of 4 KiB
 * into memory from alignedBuffers(). O_DIRECT needs that (or EINVAL).
 */
export function isPageAligned(buffer: Uint8Array): boolean {
  return buffer.byteOffset % ALIGN === 0 && pageAlignedMemories.has(buffer.buffer as ArrayBuffer);
}

/**
 * Recycled page-aligned buffers of one size, for streams whose consumer says
 * when it is done with a chunk (an HTTP response's write callback). Buffers
 * come from slabs of SLAB_BUFFERS; at most `maxFree` wait for reuse, the rest
 * are left to the garbage collector, so an idle pool holds maxFree * size.
 */
export class AlignedPool {
  private readonly free: Buffer[] = [];
  /** Buffers handed out and not yet given back: a second give() of one is ignored. */
  private readonly lent = new WeakSet<Buffer>();

  constructor(
    readonly size: number,
    private readonly maxFree = 64,
  ) {}

  take(): Buffer {
    let buffer = this.free.pop();
    if (!buffer) {
      const SLAB_BUFFERS = 8;
      const slab = alignedBuffers(this.size, SLAB_BUFFERS);
      for (let i = 1; i < slab.length && this.free.length < this.maxFree; i++) this.free.push(slab[i]);
      buffer = slab[0];
    }
    this.lent.add(buffer);
    return buffer;
  }

  /** Hand back a buffer from take() that nothing uses any more (anything else is ignored). */
  give(buffer: Buffer): void {
    if (!this.lent.has(buffer)) return;
    this.lent.delete(buffer);
    if (this.free.length < this.maxFree) this.free.push(buffer);
  }
}
