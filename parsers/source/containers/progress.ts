import type { OpenContext } from '../open.js';
import type { ByteRange } from '../types.js';
import { RangeCollector } from './ranges.js';

/** Throttled progress reports for a full pass over a compressed image (about 200 per pass). */
export class Progress {
  private next = 0;
  constructor(
    private readonly context: OpenContext,
    private readonly phase: string,
    private readonly total: number,
  ) {}
  update(done: number): void {
    if (!this.context.onProgress || (done < this.next && done < this.total)) return;
    this.next = done + Math.max(1 << 20, this.total / 200);
    this.context.onProgress({ phase: this.phase, done, total: this.total });
  }
}

const GRANULE = 64 * 1024;
const SCAN_PIECE = 256 * 1024;

/** Marks which granules of the output hold non-zero bytes, as the output streams by. */
export class ZeroMap {
  private readonly ranges = new RangeCollector();
  private granuleNonZero = false;
  private position = 0;
  private static readonly zeros = Buffer.alloc(SCAN_PIECE);

  feed(data: Uint8Array): void {
    let at = 0;
    while (at < data.length) {
      const granuleEnd = (Math.floor(this.position / GRANULE) + 1) * GRANULE;
      const n = Math.min(data.length - at, granuleEnd - this.position, SCAN_PIECE);
      if (!this.granuleNonZero && Buffer.compare(data.subarray(at, at + n), ZeroMap.zeros.subarray(0, n)) !== 0) {
        this.granuleNonZero = true;
      }
      at += n;
      this.position += n;
      if (this.position === granuleEnd) this.flush();
    }
  }

  private flush(): void {
    if (this.granuleNonZero) {
      const start = Math.floor((this.position - 1) / GRANULE) * GRANULE;
      this.ranges.add(start, this.position - start);
    }
    this.granuleNonZero = false;
  }

  result(): ByteRange[] {
    if (this.position % GRANULE !== 0) this.flush();
    return this.ranges.result();
  }
}

