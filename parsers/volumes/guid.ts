/** GUIDs on disk store their first three fields little-endian ("mixed endian"). */
export function formatGuid(buf: Buffer, offset: number): string {
  const hex = (start: number, end: number, reverse: boolean) => {
    const bytes = [...buf.subarray(offset + start, offset + end)];
    if (reverse) bytes.reverse();
    return bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  };
  return `${hex(0, 4, true)}-${hex(4, 6, true)}-${hex(6, 8, true)}-${hex(8, 10, false)}-${hex(10, 16, false)}`;
}

export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';
