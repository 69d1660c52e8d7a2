/**
 * NTFS compares file names case-insensitively through the volume's own
 * $UpCase table (65536 UTF-16 code units, written at format time), so lookups
 * must use that table, not the host's idea of upper case.
 */
export class UpCase {
  private constructor(private readonly table: Uint16Array) {}

  /** From $UpCase's bytes; null when they are not a plausible table. */
  static fromBytes(b: Buffer): UpCase | null {
    if (b.length !== 65536 * 2) return null;
    const table = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) table[i] = b.readUInt16LE(i * 2);
    // A real table maps 'a' to 'A' and leaves 'A' alone.
    if (table[0x61] !== 0x41 || table[0x41] !== 0x41) return null;
    return new UpCase(table);
  }

  /** Fallback when $UpCase is unreadable: simple (one-to-one) Unicode upper-casing. */
  static builtin(): UpCase {
    const table = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) {
      const up = String.fromCharCode(i).toUpperCase();
      table[i] = up.length === 1 && !(i >= 0xd800 && i <= 0xdfff) ? up.charCodeAt(0) : i;
    }
    return new UpCase(table);
  }

  /** Order two names the way NTFS collates $FILE_NAME keys, ignoring case. */
  compare(a: string, b: string): number {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const x = this.table[a.charCodeAt(i)];
      const y = this.table[b.charCodeAt(i)];
      if (x !== y) return x < y ? -1 : 1;
    }
    return a.length - b.length;
  }

  equal(a: string, b: string): boolean {
    return a.length === b.length && this.compare(a, b) === 0;
  }
}
