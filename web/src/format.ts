const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function humanSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${UNITS[u]}`;
}

export function groupDigits(n: number): string {
  return n.toLocaleString('en-US');
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Local time, sortable and unambiguous: 2024-03-15 11:20. */
export function shortDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '-';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function longDate(iso: string | null | undefined): string {
  if (!iso) return '-';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '-';
  return `${shortDate(iso)}:${pad(d.getSeconds())} (${iso})`;
}

const TYPE_CHAR: Record<string, string> = { dir: 'd', symlink: 'l', file: '-', other: '?' };

/** ls -l style: drwxr-xr-x. */
export function modeString(type: string, mode: number): string {
  const rwx = (bits: number, special: number, ch: string) =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-');
  return (
    (TYPE_CHAR[type] ?? '?') +
    rwx((mode >> 6) & 7, mode & 0o4000, 's') +
    rwx((mode >> 3) & 7, mode & 0o2000, 's') +
    rwx(mode & 7, mode & 0o1000, 't')
  );
}

export function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

export function baseName(path: string): string {
  const parts = path.split('/').filter(Boolean);
  return parts.length ? parts[parts.length - 1] : '/';
}

export function parentPath(path: string): string {
  const parts = path.split('/').filter(Boolean);
  return '/' + parts.slice(0, -1).join('/');
}
