import type { Stat } from '../parsers/fs/types.js';

/** 1536 → "1.5K"; the units ls -h uses. */
export function humanSize(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${bytes}B`;
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

/** "drwxr-xr-x" from type and permission bits, setuid/setgid/sticky included. */
export function modeString(stat: Stat): string {
  const t = stat.type === 'dir' ? 'd' : stat.type === 'symlink' ? 'l' : stat.type === 'file' ? '-' : otherLetter(stat);
  const m = stat.mode;
  const trip = (shift: number, special: boolean, specialChar: string) => {
    const r = m & (4 << shift) ? 'r' : '-';
    const w = m & (2 << shift) ? 'w' : '-';
    const xBit = m & (1 << shift);
    const x = special ? (xBit ? specialChar : specialChar.toUpperCase()) : xBit ? 'x' : '-';
    return r + w + x;
  };
  return t + trip(6, (m & 0o4000) !== 0, 's') + trip(3, (m & 0o2000) !== 0, 's') + trip(0, (m & 0o1000) !== 0, 't');
}

function otherLetter(stat: Stat): string {
  const k = stat.otherKind ?? '';
  if (k.startsWith('fifo')) return 'p';
  if (k.startsWith('char')) return 'c';
  if (k.startsWith('block')) return 'b';
  if (k.startsWith('socket')) return 's';
  return '?';
}

/** "2021-03-04 05:06" in UTC, as a listing column. */
export function shortTime(ns: bigint): string {
  const d = new Date(Number(ns / 1_000_000n));
  if (Number.isNaN(d.getTime())) return '????-??-?? ??:??';
  return d.toISOString().slice(0, 16).replace('T', ' ');
}

/** Left-aligned text table with right-aligned numeric columns. */
export function table(rows: string[][], rightAlign: boolean[] = []): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => {
          const pad = ' '.repeat(widths[i] - [...c].length);
          if (i === r.length - 1) return rightAlign[i] ? pad + c : c;
          return rightAlign[i] ? pad + c : c + pad;
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Make control characters in names visible, as ls does on a terminal. */
export function safeName(name: string): string {
  return name.replace(/[\x00-\x1f\x7f]/g, '?');
}
