import { CorruptError } from '../../errors.js';

/**
 * An LZMA2 decoder (xz-file-format 5.3.1, logic after xz-embedded's
 * xz_dec_lzma2.c) whose whole state can be saved between two LZMA2 chunks and
 * restored later: that is what lets a single-block .xz be read at random
 * through checkpoints (see xz-checkpoints.ts). xz-decompress (xz-embedded in
 * WebAssembly) cannot give its state out, so it cannot do this.
 *
 * Every LZMA chunk starts a new range coder, so at a chunk boundary the state
 * is: the probabilities, the LZMA state and the four repeated distances, the
 * literal/position bits, and the dictionary (the last dictSize bytes of output).
 *
 * Hostile input: a chunk's output is bounded by its header, every symbol
 * produces output, so decoding always ends; a chunk that reads past its
 * compressed size, leaves the range coder unfinished, or refers to bytes before
 * the start is a CorruptError naming the chunk's offset.
 */

const STATES = 12;
const POS_STATES_MAX = 16;
const DIST_STATES = 4;
const END_POS_MODEL_INDEX = 14;
const FULL_DISTANCES = 128;
const MATCH_LEN_MIN = 2;
const LEN_LOW = 8;
const LEN_MID = 8;
const LEN_HIGH = 256;

// Offsets of the probability groups in one Uint16Array (saved as one piece).
const IS_MATCH = 0;
const IS_REP = IS_MATCH + STATES * POS_STATES_MAX;
const IS_REP0 = IS_REP + STATES;
const IS_REP1 = IS_REP0 + STATES;
const IS_REP2 = IS_REP1 + STATES;
const IS_REP0_LONG = IS_REP2 + STATES;
const DIST_SLOT = IS_REP0_LONG + STATES * POS_STATES_MAX;
const DIST_SPECIAL = DIST_SLOT + DIST_STATES * 64;
const DIST_ALIGN = DIST_SPECIAL + FULL_DISTANCES - END_POS_MODEL_INDEX + 1;
// A length coder: choice, choice2, low[16][8], mid[16][8], high[256].
const LEN_CHOICE = 0;
const LEN_CHOICE2 = 1;
const LEN_LOW_AT = 2;
const LEN_MID_AT = LEN_LOW_AT + POS_STATES_MAX * LEN_LOW;
const LEN_HIGH_AT = LEN_MID_AT + POS_STATES_MAX * LEN_MID;
const LEN_SIZE = LEN_HIGH_AT + LEN_HIGH;
const MATCH_LEN = DIST_ALIGN + 16;
const REP_LEN = MATCH_LEN + LEN_SIZE;
const LITERAL = REP_LEN + LEN_SIZE;
/** LZMA2 allows lc + lp <= 4: at most 16 literal coders of 0x300 probabilities. */
export const PROBS_SIZE = LITERAL + 0x300 * 16;
const PROB_INIT = 1024;
const INITIAL_RING = 4 * 1024 * 1024;

/** Dictionary size from the LZMA2 filter's property byte (xz-file-format 5.3.1). */
export function lzma2DictSize(props: number): number {
  const bits = props & 0x3f;
  if (props & 0xc0 || bits > 40) throw new CorruptError('xz LZMA2 filter properties', 0, `invalid dictionary size byte 0x${props.toString(16)}`);
  if (bits === 40) return 0xffffffff;
  return (2 | (bits & 1)) * 2 ** (Math.floor(bits / 2) + 11);
}

/** The state saved at a chunk boundary. The dictionary bytes are saved apart (see ring()). */
export interface Lzma2State {
  state: number;
  reps: [number, number, number, number];
  lc: number;
  lp: number;
  pb: number;
  needDictReset: boolean;
  needProps: boolean;
  /** Write position in the dictionary ring and how much of it holds data. */
  pos: number;
  full: number;
}

/** A parsed LZMA2 chunk header. */
export interface ChunkHeader {
  /** 0 for the end marker. */
  control: number;
  headerLength: number;
  uncompressed: number;
  compressed: number;
  props: number;
}

/** Parse the chunk header at buf[at..]; returns null if more bytes are needed. */
export function parseChunkHeader(buf: Uint8Array, at: number, end: number, fileOffset: number): ChunkHeader | null {
  if (at >= end) return null;
  const control = buf[at];
  if (control === 0) return { control, headerLength: 1, uncompressed: 0, compressed: 0, props: -1 };
  if (control === 1 || control === 2) {
    if (end - at < 3) return null;
    return { control, headerLength: 3, uncompressed: ((buf[at + 1] << 8) | buf[at + 2]) + 1, compressed: 0, props: -1 };
  }
  if (control < 0x80) throw new CorruptError('xz LZMA2 chunk', fileOffset, `invalid control byte 0x${control.toString(16)}`);
  const withProps = control >= 0xc0;
  const length = withProps ? 6 : 5;
  if (end - at < length) return null;
  return {
    control,
    headerLength: length,
    uncompressed: (control & 0x1f) * 65536 + ((buf[at + 1] << 8) | buf[at + 2]) + 1,
    compressed: ((buf[at + 3] << 8) | buf[at + 4]) + 1,
    props: withProps ? buf[at + 5] : -1,
  };
}

export class Lzma2Decoder {
  /**
   * The dictionary, a ring of ringSize bytes. It starts small and grows as
   * output fills it (it only wraps once full size), so memory follows what was
   * really decoded, not what a header claims.
   */
  dict: Uint8Array;
  pos = 0;
  full = 0;
  private readonly probs = new Uint16Array(PROBS_SIZE);
  private state = 0;
  private rep0 = 0;
  private rep1 = 0;
  private rep2 = 0;
  private rep3 = 0;
  private lc = 0;
  private lp = 0;
  private pb = 0;
  private needDictReset = true;
  private needProps = true;

  // The chunk being decoded.
  private chunkLeft = 0;
  private uncompressedChunk = false;
  private input: Uint8Array = new Uint8Array(0);
  private inPos = 0;
  private inEnd = 0;
  private range = 0;
  private code = 0;
  /** Bytes of a match still to copy when the last step stopped at its output limit. */
  private pendingLen = 0;
  private chunkOffset = 0;

  /**
   * @param ringSize dictionary bytes to hold: the filter's dictionary size, or
   * less when the whole output is smaller (a match can never reach further back
   * than the output goes). Rounded up to 16 so ring positions keep the low bits
   * LZMA uses for its position state.
   */
  constructor(readonly ringSize: number) {
    this.dict = new Uint8Array(Math.min(ringSize, INITIAL_RING));
  }

  private grow(need: number): void {
    const bigger = new Uint8Array(Math.min(this.ringSize, Math.max(need, this.dict.length * 2)));
    bigger.set(this.dict);
    this.dict = bigger;
  }

  static ringSizeFor(dictSize: number, outputSize: number): number {
    return Math.max(4096, Math.min(dictSize, Math.ceil(outputSize / 16) * 16));
  }

  get inChunk(): boolean {
    return this.chunkLeft > 0;
  }

  /** Start a chunk whose header was parsed and whose compressed data is input[at .. at+compressed). */
  startChunk(h: ChunkHeader, input: Uint8Array, at: number, fileOffset: number): void {
    this.chunkOffset = fileOffset;
    const c = h.control;
    const bad = (detail: string) => new CorruptError('xz LZMA2 chunk', fileOffset, detail);
    if (c === 1 || c >= 0xe0) {
      this.needProps = true;
      this.needDictReset = false;
      this.pos = 0;
      this.full = 0;
    } else if (this.needDictReset) {
      throw bad('the first chunk does not reset the dictionary');
    }
    if (c >= 0x80) {
      if (c >= 0xc0) {
        this.setProps(h.props, fileOffset);
        this.needProps = false;
        this.reset();
      } else if (this.needProps) {
        throw bad('LZMA chunk without properties after a dictionary reset');
      } else if (c >= 0xa0) {
        this.reset();
      }
      this.uncompressedChunk = false;
      if (h.compressed < 5) throw bad('LZMA chunk shorter than its range coder header');
      if (input[at] !== 0) throw bad('range coder does not start with a zero byte');
      this.code = ((input[at + 1] << 24) | (input[at + 2] << 16) | (input[at + 3] << 8) | input[at + 4]) >>> 0;
      this.range = 0xffffffff;
      this.inPos = at + 5;
      this.inEnd = at + h.compressed;
    } else {
      this.uncompressedChunk = true;
      this.inPos = at;
      this.inEnd = at + h.uncompressed;
    }
    this.input = input;
    this.chunkLeft = h.uncompressed;
    this.pendingLen = 0;
  }

  private setProps(props: number, fileOffset: number): void {
    if (props > 224) throw new CorruptError('xz LZMA2 chunk', fileOffset, `invalid LZMA properties byte ${props}`);
    this.lc = props % 9;
    props = Math.floor(props / 9);
    this.lp = props % 5;
    this.pb = Math.floor(props / 5);
    if (this.lc + this.lp > 4) throw new CorruptError('xz LZMA2 chunk', fileOffset, 'lc + lp is more than 4');
  }

  private reset(): void {
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
    this.probs.fill(PROB_INIT);
  }

  /**
   * Decode the current chunk until it ends, the ring's end is reached, or `max` bytes are out.
   * Returns how many bytes were written at dict[pos - n .. pos) (before any wrap;
   * the caller takes them, then calls wrap()).
   */
  step(max = Infinity): number {
    if (this.pos === this.dict.length && this.dict.length < this.ringSize) this.grow(this.pos + 1);
    const start = this.pos;
    const limit = Math.min(this.dict.length, start + this.chunkLeft, start + max);
    if (this.uncompressedChunk) {
      const n = limit - start;
      if (this.inPos + n > this.input.length) throw new CorruptError('xz LZMA2 chunk', this.chunkOffset, 'truncated uncompressed chunk');
      this.dict.set(this.input.subarray(this.inPos, this.inPos + n), start);
      this.inPos += n;
      this.pos = limit;
    } else {
      this.decodeLzma(limit);
    }
    const n = this.pos - start;
    this.full = Math.max(this.full, Math.min(this.ringSize, this.full + n));
    this.chunkLeft -= n;
    if (this.chunkLeft === 0 && !this.uncompressedChunk) {
      if (this.pendingLen > 0 || this.inPos !== this.inEnd || this.code !== 0) {
        throw new CorruptError('xz LZMA2 chunk', this.chunkOffset, 'compressed data does not end where the chunk header says (damaged data)');
      }
    }
    return n;
  }

  /** Go back to the ring's start once its end is reached. */
  wrap(): void {
    if (this.pos === this.ringSize) this.pos = 0;
  }

  /**
   * The LZMA decoder proper, up to `limit` in the ring. The range decoder's
   * bit (the block starting `p = probs[i]`) is written out at every use, so
   * that range and code stay int32 locals in registers: as helper closures
   * they lived in the heap and decoding ran at about half the speed (measured).
   */
  private decodeLzma(limit: number): void {
    const probs = this.probs;
    const dict = this.dict;
    const input = this.input;
    const ringSize = this.ringSize;
    const pbMask = (1 << this.pb) - 1;
    const lpMask = (1 << this.lp) - 1;
    const lc = this.lc;
    const inEnd = this.inEnd;
    const start = this.pos;
    // History available before this step (the whole ring once it has filled).
    const fullBefore = this.full;
    // Range and code as int32 (compared unsigned by flipping the sign bit): they stay small integers for V8.
    let range = this.range | 0;
    let code = this.code | 0;
    let inPos = this.inPos;
    let pos = start;
    let state = this.state;
    let rep0 = this.rep0;
    let rep1 = this.rep1;
    let rep2 = this.rep2;
    let rep3 = this.rep3;
    let len = this.pendingLen;
    let p = 0;
    let bound = 0;
    let b = 0;
    let i = 0;
    let m = 0;
    let error = '';

    for (;;) {
      if (len > 0) {
        // Copy (the rest of) a match.
        let from = pos - rep0 - 1;
        if (from < 0) from += ringSize;
        const n = len < limit - pos ? len : limit - pos;
        if (rep0 === 0) {
          dict.fill(dict[from], pos, pos + n);
          pos += n;
        } else if (from < pos && from + n <= pos) {
          dict.copyWithin(pos, from, from + n);
          pos += n;
        } else {
          for (let k = 0; k < n; k++) {
            dict[pos++] = dict[from++];
            if (from === ringSize) from = 0;
          }
        }
        len -= n;
      }
      if (pos >= limit) break;
      if (inPos > inEnd) {
        error = 'compressed data runs past the chunk';
        break;
      }
      const posState = pos & pbMask;
      i = IS_MATCH + ((state << 4) | posState);
      p = probs[i];
      bound = Math.imul(range >>> 11, p);
      if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        b = 0;
      } else {
        range = (range - bound) | 0;
        code = (code - bound) | 0;
        probs[i] = p - (p >>> 5);
        b = 1;
      }
      if ((range >>> 24) === 0) {
        range <<= 8;
        code = (code << 8) | input[inPos++];
      }
      if (b === 0) {
        // A literal, coded against the byte at rep0 after a match.
        const prev = pos > 0 ? dict[pos - 1] : fullBefore > 0 ? dict[ringSize - 1] : 0;
        const base = LITERAL + 0x300 * (((pos & lpMask) << lc) + (prev >>> (8 - lc)));
        let sym = 1;
        if (state < 7) {
          do {
            i = base + sym;
            p = probs[i];
            bound = Math.imul(range >>> 11, p);
            if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
              range = bound;
              probs[i] = p + ((2048 - p) >>> 5);
              b = 0;
            } else {
              range = (range - bound) | 0;
              code = (code - bound) | 0;
              probs[i] = p - (p >>> 5);
              b = 1;
            }
            if ((range >>> 24) === 0) {
              range <<= 8;
              code = (code << 8) | input[inPos++];
            }
            sym = (sym << 1) | b;
          } while (sym < 0x100);
        } else {
          let from = pos - rep0 - 1;
          if (from < 0) from += ringSize;
          let matchByte = dict[from];
          let offset = 0x100;
          do {
            matchByte <<= 1;
            const matchBit = matchByte & offset;
            i = base + offset + matchBit + sym;
            p = probs[i];
            bound = Math.imul(range >>> 11, p);
            if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
              range = bound;
              probs[i] = p + ((2048 - p) >>> 5);
              b = 0;
            } else {
              range = (range - bound) | 0;
              code = (code - bound) | 0;
              probs[i] = p - (p >>> 5);
              b = 1;
            }
            if ((range >>> 24) === 0) {
              range <<= 8;
              code = (code << 8) | input[inPos++];
            }
            sym = (sym << 1) | b;
            offset = b ? matchBit : offset ^ matchBit;
          } while (sym < 0x100);
        }
        dict[pos++] = sym;
        state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      let lenBase: number;
      i = IS_REP + state;
      p = probs[i];
      bound = Math.imul(range >>> 11, p);
      if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        b = 0;
      } else {
        range = (range - bound) | 0;
        code = (code - bound) | 0;
        probs[i] = p - (p >>> 5);
        b = 1;
      }
      if ((range >>> 24) === 0) {
        range <<= 8;
        code = (code << 8) | input[inPos++];
      }
      if (b === 0) {
        // A match with a new distance (decoded after its length).
        rep3 = rep2;
        rep2 = rep1;
        rep1 = rep0;
        lenBase = MATCH_LEN;
        state = state < 7 ? 7 : 10;
      } else {
        if (fullBefore === 0 && pos === start) {
          error = 'repeated match with no data before it';
          break;
        }
        i = IS_REP0 + state;
        p = probs[i];
        bound = Math.imul(range >>> 11, p);
        if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          b = 0;
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[i] = p - (p >>> 5);
          b = 1;
        }
        if ((range >>> 24) === 0) {
          range <<= 8;
          code = (code << 8) | input[inPos++];
        }
        if (b === 0) {
          i = IS_REP0_LONG + ((state << 4) | posState);
          p = probs[i];
          bound = Math.imul(range >>> 11, p);
          if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            b = 0;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[i] = p - (p >>> 5);
            b = 1;
          }
          if ((range >>> 24) === 0) {
            range <<= 8;
            code = (code << 8) | input[inPos++];
          }
          if (b === 0) {
            // Short rep: one byte from rep0.
            state = state < 7 ? 9 : 11;
            let from = pos - rep0 - 1;
            if (from < 0) from += ringSize;
            dict[pos] = dict[from];
            pos++;
            continue;
          }
        } else {
          let dist: number;
          i = IS_REP1 + state;
          p = probs[i];
          bound = Math.imul(range >>> 11, p);
          if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            b = 0;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[i] = p - (p >>> 5);
            b = 1;
          }
          if ((range >>> 24) === 0) {
            range <<= 8;
            code = (code << 8) | input[inPos++];
          }
          if (b === 0) {
            dist = rep1;
          } else {
            i = IS_REP2 + state;
            p = probs[i];
            bound = Math.imul(range >>> 11, p);
            if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
              range = bound;
              probs[i] = p + ((2048 - p) >>> 5);
              b = 0;
            } else {
              range = (range - bound) | 0;
              code = (code - bound) | 0;
              probs[i] = p - (p >>> 5);
              b = 1;
            }
            if ((range >>> 24) === 0) {
              range <<= 8;
              code = (code << 8) | input[inPos++];
            }
            if (b === 0) {
              dist = rep2;
            } else {
              dist = rep3;
              rep3 = rep2;
            }
            rep2 = rep1;
          }
          rep1 = rep0;
          rep0 = dist;
        }
        lenBase = REP_LEN;
        state = state < 7 ? 8 : 11;
      }
      // The length: 2-9, 10-17 or 18-273.
      let treeBase: number;
      let treeBits: number;
      let lenAdd: number;
      i = lenBase + LEN_CHOICE;
      p = probs[i];
      bound = Math.imul(range >>> 11, p);
      if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        b = 0;
      } else {
        range = (range - bound) | 0;
        code = (code - bound) | 0;
        probs[i] = p - (p >>> 5);
        b = 1;
      }
      if ((range >>> 24) === 0) {
        range <<= 8;
        code = (code << 8) | input[inPos++];
      }
      if (b === 0) {
        treeBase = lenBase + LEN_LOW_AT + posState * LEN_LOW;
        treeBits = 3;
        lenAdd = MATCH_LEN_MIN;
      } else {
        i = lenBase + LEN_CHOICE2;
        p = probs[i];
        bound = Math.imul(range >>> 11, p);
        if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          b = 0;
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[i] = p - (p >>> 5);
          b = 1;
        }
        if ((range >>> 24) === 0) {
          range <<= 8;
          code = (code << 8) | input[inPos++];
        }
        if (b === 0) {
          treeBase = lenBase + LEN_MID_AT + posState * LEN_MID;
          treeBits = 3;
          lenAdd = MATCH_LEN_MIN + LEN_LOW;
        } else {
          treeBase = lenBase + LEN_HIGH_AT;
          treeBits = 8;
          lenAdd = MATCH_LEN_MIN + LEN_LOW + LEN_MID;
        }
      }
      m = 1;
      for (let k = 0; k < treeBits; k++) {
        i = treeBase + m;
        p = probs[i];
        bound = Math.imul(range >>> 11, p);
        if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          b = 0;
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[i] = p - (p >>> 5);
          b = 1;
        }
        if ((range >>> 24) === 0) {
          range <<= 8;
          code = (code << 8) | input[inPos++];
        }
        m = (m << 1) | b;
      }
      len = lenAdd + m - (1 << treeBits);
      if (lenBase === MATCH_LEN) {
        // The distance: a 6-bit slot, then reverse-coded, direct and aligned bits.
        const lenState = len - MATCH_LEN_MIN < DIST_STATES - 1 ? len - MATCH_LEN_MIN : DIST_STATES - 1;
        const slotBase = DIST_SLOT + lenState * 64;
        m = 1;
        for (let k = 0; k < 6; k++) {
          i = slotBase + m;
          p = probs[i];
          bound = Math.imul(range >>> 11, p);
          if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            b = 0;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[i] = p - (p >>> 5);
            b = 1;
          }
          if ((range >>> 24) === 0) {
            range <<= 8;
            code = (code << 8) | input[inPos++];
          }
          m = (m << 1) | b;
        }
        const slot = m - 64;
        if (slot < 4) {
          rep0 = slot;
        } else {
          const directBits = (slot >>> 1) - 1;
          let dist = (2 | (slot & 1)) * 2 ** directBits;
          let revBase: number;
          let revBits: number;
          if (slot < END_POS_MODEL_INDEX) {
            revBase = DIST_SPECIAL + dist - slot;
            revBits = directBits;
          } else {
            let direct = 0;
            for (let k = directBits - 4; k > 0; k--) {
              range >>>= 1;
              if ((code >>> 0) >= range) {
                code = (code - range) | 0;
                direct = direct * 2 + 1;
              } else {
                direct *= 2;
              }
              range |= 0;
              if ((range >>> 24) === 0) {
                range <<= 8;
                code = (code << 8) | input[inPos++];
              }
            }
            dist += direct * 16;
            revBase = DIST_ALIGN;
            revBits = 4;
          }
          m = 1;
          let sym = 0;
          for (let k = 0; k < revBits; k++) {
            i = revBase + m;
            p = probs[i];
            bound = Math.imul(range >>> 11, p);
            if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
              range = bound;
              probs[i] = p + ((2048 - p) >>> 5);
              b = 0;
            } else {
              range = (range - bound) | 0;
              code = (code - bound) | 0;
              probs[i] = p - (p >>> 5);
              b = 1;
            }
            if ((range >>> 24) === 0) {
              range <<= 8;
              code = (code << 8) | input[inPos++];
            }
            m = (m << 1) | b;
            sym |= b << k;
          }
          rep0 = dist + sym;
        }
      }
      const history = fullBefore + (pos - start);
      if (rep0 >= (history < ringSize ? history : ringSize)) {
        error = rep0 === 0xffffffff ? 'end-of-payload marker inside an LZMA2 chunk' : 'match distance reaches before the start of the data';
        break;
      }
    }
    this.range = range >>> 0;
    this.code = code >>> 0;
    this.inPos = inPos;
    this.pos = pos;
    this.state = state;
    this.rep0 = rep0;
    this.rep1 = rep1;
    this.rep2 = rep2;
    this.rep3 = rep3;
    this.pendingLen = len;
    if (!error && inPos > inEnd) error = 'compressed data runs past the chunk';
    if (error) throw new CorruptError('xz LZMA2 chunk', this.chunkOffset, error);
  }

  /** The state at a chunk boundary (between chunks only). */
  save(): { state: Lzma2State; probs: Uint8Array } {
    if (this.chunkLeft !== 0) throw new Error('Lzma2Decoder.save inside a chunk');
    return {
      state: {
        state: this.state,
        reps: [this.rep0, this.rep1, this.rep2, this.rep3],
        lc: this.lc,
        lp: this.lp,
        pb: this.pb,
        needDictReset: this.needDictReset,
        needProps: this.needProps,
        pos: this.pos,
        full: this.full,
      },
      probs: new Uint8Array(this.probs.buffer.slice(0)),
    };
  }

  /** The bytes of the ring that hold data: the whole ring once full, else its start up to pos. */
  ring(): Uint8Array {
    return this.full === this.ringSize ? this.dict : this.dict.subarray(0, this.pos);
  }

  restore(s: Lzma2State, probs: Uint8Array, ring: Uint8Array): void {
    const bad = (detail: string) => new CorruptError('xz checkpoint', 0, detail);
    if (probs.length !== PROBS_SIZE * 2) throw bad('probabilities have the wrong size');
    if (s.full > this.ringSize || s.pos > this.ringSize || ring.length !== (s.full === this.ringSize ? this.ringSize : s.pos)) throw bad('dictionary has the wrong size');
    if (s.lc + s.lp > 4 || s.pb > 4 || !(s.state >= 0 && s.state < STATES) || s.reps.some((r) => !(r >= 0 && r < this.ringSize))) {
      throw bad('invalid LZMA state (damaged index file?)');
    }
    new Uint8Array(this.probs.buffer).set(probs);
    if (ring.length > this.dict.length) this.grow(ring.length);
    this.dict.set(ring);
    this.state = s.state;
    [this.rep0, this.rep1, this.rep2, this.rep3] = s.reps;
    this.lc = s.lc;
    this.lp = s.lp;
    this.pb = s.pb;
    this.needDictReset = s.needDictReset;
    this.needProps = s.needProps;
    this.pos = s.pos === this.ringSize ? 0 : s.pos;
    this.full = s.full;
    this.chunkLeft = 0;
    this.pendingLen = 0;
  }
}
