import { readFileReference, type FileReference } from './record.js';

/** Name spaces of $FILE_NAME: a file has a POSIX or Win32 name, maybe plus a separate DOS 8.3 alias. */
export const NameSpace = { posix: 0, win32: 1, dos: 2, win32AndDos: 3 } as const;

/** 100 ns intervals between 1601-01-01 (NTFS epoch) and 1970-01-01. */
const EPOCH_DIFFERENCE = 116444736000000000n;

/** An NTFS time (100 ns units since 1601) as nanoseconds since the Unix epoch, exactly. */
export function ntfsTimeToNs(b: Buffer, at: number): bigint {
  return (b.readBigUInt64LE(at) - EPOCH_DIFFERENCE) * 100n;
}

/** A $FILE_NAME value: in an MFT record, and as the key of every directory index entry. */
export interface FileName {
  parent: FileReference;
  creationNs: bigint;
  modificationNs: bigint;
  changeNs: bigint;
  accessNs: bigint;
  allocatedSize: number;
  dataSize: number;
  fileAttributes: number;
  nameSpace: number;
  name: string;
}

/** Parse a $FILE_NAME value; null when it is too short for the name it claims. */
export function parseFileName(b: Buffer, at = 0, length = b.length - at): FileName | null {
  if (length < 0x42 || at + length > b.length) return null;
  const nameLength = b[at + 0x40];
  if (0x42 + nameLength * 2 > length) return null;
  const size = (o: number) => {
    const v = b.readBigUInt64LE(at + o);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  };
  return {
    parent: readFileReference(b, at),
    creationNs: ntfsTimeToNs(b, at + 0x08),
    modificationNs: ntfsTimeToNs(b, at + 0x10),
    changeNs: ntfsTimeToNs(b, at + 0x18),
    accessNs: ntfsTimeToNs(b, at + 0x20),
    allocatedSize: size(0x28),
    dataSize: size(0x30),
    fileAttributes: b.readUInt32LE(at + 0x38),
    nameSpace: b[at + 0x41],
    name: b.toString('utf16le', at + 0x42, at + 0x42 + nameLength * 2),
  };
}
