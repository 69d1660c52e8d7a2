import type { LooplessError } from '../../errors.js';
import type { ByteSource } from '../../source/types.js';
import type { FsNode, Stat } from '../types.js';
import { extentsOf } from './attribute-list.js';
import { entryFileName, I30, type DirectoryIndex, type IndexEntry } from './directory-index.js';
import { NameSpace, ntfsTimeToNs, parseFileName, type FileName } from './file-name.js';
import { AttrType, RecordFlag, type Attribute, type MftRecord } from './record.js';
import { INTERIX_MAX_SIZE, interpretInterix, interpretReparse } from './reparse.js';
import { AttributeStream } from './stream.js';

/** $STANDARD_INFORMATION / $FILE_NAME file attribute bits. */
const FileAttr = {
  readonly: 0x0001,
  hidden: 0x0002,
  system: 0x0004,
  temporary: 0x0100,
  sparse: 0x0200,
  reparsePoint: 0x0400,
  compressed: 0x0800,
  offline: 0x1000,
  encrypted: 0x4000,
} as const;

/** Reparse tags with this bit stand in for another name (links); others decorate real files and directories. */
const NAME_SURROGATE = 0x20000000;
/** Reparse data is at most 16 KiB. */
const MAX_REPARSE = 16 * 1024;

/** A file, directory, link or named stream of an NTFS volume, with its metadata loaded. */
export class NtfsNode implements FsNode {
  /** Directory index, parsed on first use. */
  index: DirectoryIndex | null = null;

  constructor(
    readonly stat: Stat,
    /** MFT record number (also stat.ino). */
    readonly record: number,
    /** Sequence number of the record, to reject stale directory entries. */
    readonly sequence: number,
    /** The bytes read() returns: the unnamed $DATA, or a named stream. */
    readonly data: AttributeStream | null,
    /** Named $DATA streams by name, each as its extents. */
    readonly namedStreams: Map<string, Attribute[]>,
    /** Attributes of the directory index (directories only). */
    readonly indexAttributes: Attribute[],
    readonly target: string | null,
    /** Why the content cannot be read (an unsupported reparse point, a corrupt record ...). */
    readonly unreadable: LooplessError | string | null,
  ) {}
}

export interface NodeContext {
  clusterSize: number;
  totalClusters: number;
  metadata: ByteSource;
  data: ByteSource;
}

function flagsFrom(attrs: number, data: AttributeStream | null): string[] {
  const flags: string[] = [];
  if (attrs & FileAttr.readonly) flags.push('readonly');
  if (attrs & FileAttr.hidden) flags.push('hidden');
  if (attrs & FileAttr.system) flags.push('system');
  if (attrs & FileAttr.temporary) flags.push('temporary');
  if (attrs & FileAttr.sparse || data?.sparse) flags.push('sparse');
  if (attrs & FileAttr.compressed || data?.compressed) flags.push('compressed');
  if (attrs & FileAttr.offline) flags.push('offline');
  if (attrs & FileAttr.encrypted || data?.encrypted) flags.push('encrypted');
  return flags;
}

/** Linux dev_t encoding of major:minor. */
function makedev(major: number, minor: number): number {
  return (minor & 0xff) + (major & 0xfff) * 0x100 + (minor & ~0xff & 0xfffff) * 0x1000 + Math.floor(major / 0x1000) * 2 ** 32;
}

/** Build the node of a file from its base record and all its attributes. */
export async function buildNode(ctx: NodeContext, record: MftRecord, attributes: Attribute[]): Promise<NtfsNode> {
  const stream = (extents: Attribute[], what: string) =>
    extents.length ? new AttributeStream(extents, ctx.clusterSize, ctx.totalClusters, `NTFS ${what} of MFT record ${record.number}`) : null;
  const si = attributes.find((a) => a.type === AttrType.standardInformation && a.resident && a.value.length >= 0x24);
  const names = attributes
    .filter((a) => a.type === AttrType.fileName && a.resident)
    .map((a) => (a.resident ? parseFileName(a.value) : null))
    .filter((n): n is FileName => n !== null);
  const linkNames = names.filter((n) => n.nameSpace !== NameSpace.dos);
  const siValue = si?.resident ? si.value : null;
  const fileAttrs = siValue ? siValue.readUInt32LE(0x20) : (names[0]?.fileAttributes ?? 0);
  const times = siValue
    ? { birth: ntfsTimeToNs(siValue, 0), mtime: ntfsTimeToNs(siValue, 8), ctime: ntfsTimeToNs(siValue, 0x10), atime: ntfsTimeToNs(siValue, 0x18) }
    : names[0]
      ? { birth: names[0].creationNs, mtime: names[0].modificationNs, ctime: names[0].changeNs, atime: names[0].accessNs }
      : { birth: 0n, mtime: 0n, ctime: 0n, atime: 0n };

  const data = stream(extentsOf(attributes, AttrType.data, ''), '$DATA');
  const namedStreams = new Map<string, Attribute[]>();
  for (const a of attributes) {
    if (a.type !== AttrType.data || a.name === '') continue;
    namedStreams.set(a.name, [...(namedStreams.get(a.name) ?? []), a]);
  }
  const streams = [...namedStreams].map(([name, extents]) => ({ name, size: stream(extents, `$DATA:${name}`)!.size }));
  const indexAttributes = attributes.filter((a) => (a.type === AttrType.indexRoot || a.type === AttrType.indexAllocation || a.type === AttrType.bitmap) && a.name === I30);
  const isDir = (record.flags & RecordFlag.directory) !== 0 || indexAttributes.some((a) => a.type === AttrType.indexRoot);

  let type: Stat['type'] = isDir ? 'dir' : 'file';
  let target: string | null = null;
  let otherKind: string | undefined;
  let rdev: number | undefined;
  let unreadable: string | null = null;
  let decoratedDirectory = false;
  const reparse = stream(extentsOf(attributes, AttrType.reparsePoint, ''), '$REPARSE_POINT');
  if (reparse) {
    const meaning = interpretReparse(await reparse.readAll(ctx.metadata, MAX_REPARSE));
    if (meaning.kind === 'symlink') {
      type = 'symlink';
      target = meaning.target;
    } else if (isDir && !(meaning.tag & NAME_SURROGATE)) {
      // A directory decorated by a filter (OneDrive/cloud files, ...) still holds its entries.
      decoratedDirectory = true;
    } else {
      // A reparse point on a file (WOF, dedup, cloud placeholder...) means its
      // $DATA is not its content: show it as what it is rather than wrong bytes.
      type = 'other';
      otherKind = meaning.description;
      unreadable = `${meaning.description} is not supported`;
    }
  } else if (!isDir && fileAttrs & FileAttr.system && data && data.size >= 8 && data.size <= INTERIX_MAX_SIZE) {
    const interix = interpretInterix(await data.readAll(ctx.data, INTERIX_MAX_SIZE));
    if (interix?.kind === 'symlink') {
      type = 'symlink';
      target = interix.target;
    } else if (interix?.kind === 'device') {
      type = 'other';
      otherKind = `${interix.block ? 'block' : 'char'} device ${interix.major},${interix.minor}`;
      rdev = makedev(interix.major, interix.minor);
      unreadable = `${otherKind} has no content to read`;
    }
  }

  const indexAlloc = indexAttributes.find((a) => a.type === AttrType.indexAllocation && !a.resident && a.lowestVcn === 0);
  const indexRoot = indexAttributes.find((a) => a.type === AttrType.indexRoot && a.resident);
  let size: number;
  let allocatedSize: number;
  if (type === 'symlink') {
    size = Buffer.byteLength(target!);
    allocatedSize = data?.allocatedSize ?? 0;
  } else if (type === 'dir') {
    size = indexAlloc && !indexAlloc.resident ? indexAlloc.dataSize : indexRoot?.resident ? indexRoot.value.length : 0;
    allocatedSize = indexAlloc && !indexAlloc.resident ? indexAlloc.allocatedSize : 0;
  } else {
    size = data?.size ?? 0;
    allocatedSize = data?.allocatedSize ?? 0;
  }
  const mode = type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : fileAttrs & FileAttr.readonly ? 0o444 : 0o644;
  const stat: Stat = {
    type,
    size,
    mode,
    uid: 0,
    gid: 0,
    // Count names, not DOS 8.3 aliases: the record's own count includes those.
    nlink: linkNames.length || record.linkCount || 1,
    mtimeNs: times.mtime,
    atimeNs: times.atime,
    ctimeNs: times.ctime,
    birthtimeNs: times.birth,
    allocatedSize,
    ino: record.number,
  };
  if (otherKind) stat.otherKind = otherKind;
  if (rdev !== undefined) stat.rdev = rdev;
  if (streams.length) stat.streams = streams;
  const flags = flagsFrom(fileAttrs, data);
  if (decoratedDirectory) flags.push('reparse');
  if (flags.length) stat.flags = flags;
  return new NtfsNode(stat, record.number, record.sequence, data, namedStreams, type === 'dir' ? indexAttributes : [], target, unreadable);
}

/**
 * A stand-in for a directory entry whose MFT record cannot be used: listed
 * (with what the index knows) so the rest of the directory stays browsable
 * and the damage is visible; reading it reports the error.
 */
export function placeholderNode(entry: IndexEntry, error: LooplessError): NtfsNode {
  const k = entryFileName(entry);
  const stat: Stat = {
    type: 'other',
    size: k.dataSize,
    mode: 0o644,
    uid: 0,
    gid: 0,
    nlink: 1,
    mtimeNs: k.modificationNs,
    atimeNs: k.accessNs,
    ctimeNs: k.changeNs,
    birthtimeNs: k.creationNs,
    allocatedSize: 0,
    ino: entry.file.record,
    otherKind: `unreadable: ${error.message}`,
    flags: ['unreadable'],
  };
  return new NtfsNode(stat, entry.file.record, entry.file.sequence, null, new Map(), [], null, error);
}
