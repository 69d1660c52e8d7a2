import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ManifestEntry as SampleManifestEntry } from '../support/manifests.js';

/**
 * Real images for the server tests, built with real tools (sfdisk, mkfs.ext4 -d)
 * from a known tree, plus a truth manifest written from that tree (never read
 * back from the image). Built once per version of this file into the system
 * temp folder and only ever read afterwards.
 *
 * The served folder:
 *   helpdesk.img            MBR: p1 ext4 "helpdesk" (nested folders, Unicode names,
 *                           symlinks pointing outside, 10,000-entry folder, a fifo,
 *                           a file whose extent points outside the filesystem),
 *                           a gap, p2 carrying an XFS signature (unsupported),
 *                           p3 ext4 with damaged group descriptors (corrupt volume)
 *   helpdesk.manifest.json  truth for p1 (not an image: never listed)
 *   broken.img              a GPT whose headers are both damaged (image-level error)
 *   laptops/ana.img         ext4 without a partition table (volume "fs")
 *   link.img -> helpdesk.img, escape.img -> ../outside/secret.img   (symlinks: refused)
 *   .hidden.img             (hidden: not listed)
 */

/** An entry of the fixture's own truth manifest: the sample images' fields, less owners, links and streams. */
export type ManifestEntry = Pick<SampleManifestEntry, 'path' | 'type' | 'size' | 'sha256' | 'mode' | 'mtime' | 'target'>;

export interface Fixture {
  /** The folder to serve. */
  served: string;
  /** A folder next to it that must never be reachable. */
  outside: string;
  helpdesk: string;
  manifest: ManifestEntry[];
  /** Folder inside helpdesk.img with 10,000 files. */
  manyDir: string;
  manyCount: number;
}

const MIB = 1024 * 1024;
const MANY = 10_000;
const T0 = Date.UTC(2024, 2, 15, 10, 20, 30) / 1000; // 2024-03-15T10:20:30Z, even seconds

/** Deterministic incompressible bytes (sha256 in counter mode). */
export function noise(label: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0, off = 0; off < size; i++, off += 32) createHash('sha256').update(`${label}:${i}`).digest().copy(out, off);
  return out;
}

function png(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows: Buffer[] = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++) row.set([(x * 255) / width, (y * 255) / height, 160], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A one-page PDF with correct xref offsets. */
function pdf(text: string): Buffer {
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    null,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  const stream = `BT /F1 18 Tf 20 70 Td (${text}) Tj ET`;
  objects[3] = `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`;
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

interface TreeFile {
  path: string;
  data?: Buffer;
  symlink?: string;
  dir?: boolean;
  fifo?: boolean;
  /** A sparse file of this size whose only data is `data` at its very end. */
  sparseSize?: number;
  mode?: number;
  mtime?: number;
}

function helpdeskTree(): TreeFile[] {
  const files: TreeFile[] = [
    { path: 'docs', dir: true },
    { path: 'docs/reports', dir: true },
    { path: 'docs/reports/2023', dir: true },
    { path: 'docs/reports/2024', dir: true },
    { path: 'docs/reports/2024/budget-q3.xlsx', data: noise('budget', 300_000), mtime: T0 + 86_400 * 10 },
    { path: 'docs/reports/2024/notes.txt', data: Buffer.from('Budget notes\nQ3 is over by 4%.\n'), mode: 0o600 },
    { path: 'docs/reports/2023/summary.txt', data: Buffer.from('2023 summary\n'.repeat(50)) },
    { path: 'docs/Ünïcødé résumé ✓.txt', data: Buffer.from('Ünïcødé content ✓\n') },
    { path: 'docs/manual.pdf', data: pdf('Loopless manual') },
    { path: 'docs/page.html', data: Buffer.from('<html><body><script>document.title="pwned"</script>hello</body></html>\n') },
    { path: 'photos', dir: true },
    { path: 'photos/cat.png', data: png(64, 48) },
    { path: 'big', dir: true },
    { path: 'big/large.bin', data: noise('large', 3 * MIB + 123) },
    // Big enough that a download cannot vanish into socket buffers, cheap because it is mostly a hole.
    { path: 'big/sparse.bin', sparseSize: 256 * MIB, data: Buffer.from('the end\n') },
    { path: 'empty', dir: true },
    { path: 'empty.txt', data: Buffer.alloc(0) },
    { path: 'links', dir: true },
    { path: 'links/to-notes', symlink: '../docs/reports/2024/notes.txt' },
    { path: 'links/abs-passwd', symlink: '/etc/passwd' },
    { path: 'links/escape', symlink: '../../../../../../../../etc/passwd' },
    { path: 'links/docs', symlink: '../docs' },
    { path: 'damaged', dir: true },
    { path: 'damaged/ok.txt', data: Buffer.from('this one is fine\n') },
    // Its extent is pointed outside the filesystem after mkfs (see build): reading it fails.
    { path: 'damaged/broken.bin', data: noise('broken', 64 * 1024) },
    { path: 'special', dir: true },
    { path: 'special/pipe', fifo: true },
    { path: 'many', dir: true },
  ];
  for (let i = 0; i < MANY; i++) {
    const name = `many/file-${String(i).padStart(5, '0')}.txt`;
    files.push({ path: name, data: Buffer.from(`entry ${i}\n`), mtime: T0 + (i % 1000) * 2 });
  }
  return files;
}

function sparseSha256(size: number, tail: Buffer): string {
  const h = createHash('sha256');
  const zeros = Buffer.alloc(MIB);
  let left = size - tail.length;
  for (; left >= MIB; left -= MIB) h.update(zeros);
  h.update(zeros.subarray(0, left));
  return h.update(tail).digest('hex');
}

function writeTree(root: string, files: TreeFile[]): ManifestEntry[] {
  const manifest: ManifestEntry[] = [];
  for (const f of files) {
    const host = join(root, f.path);
    mkdirSync(dirname(host), { recursive: true });
    if (f.dir) mkdirSync(host, { recursive: true, mode: f.mode ?? 0o755 });
    else if (f.symlink) symlinkSync(f.symlink, host);
    else if (f.fifo) execFileSync('mkfifo', ['-m', '644', host]);
    else if (f.sparseSize) {
      writeFileSync(host, '', { mode: f.mode ?? 0o644 });
      execFileSync('truncate', ['-s', String(f.sparseSize - f.data!.length), host]);
      writeFileSync(host, f.data!, { flag: 'a' });
    } else writeFileSync(host, f.data!, { mode: f.mode ?? 0o644 });
  }
  // Times last, deepest first, so creating children does not touch them again.
  for (const f of [...files].reverse()) {
    const host = join(root, f.path);
    const t = f.mtime ?? T0;
    if (f.symlink) execFileSync('touch', ['-h', '-d', `@${t}`, host]);
    else utimesSync(host, t, t);
    const type = f.dir ? 'dir' : f.symlink ? 'symlink' : f.fifo ? 'other' : 'file';
    manifest.push({
      path: `/p1/${f.path}`,
      type,
      size: f.sparseSize ?? (f.data ? f.data.length : f.symlink ? Buffer.byteLength(f.symlink) : 0),
      ...(f.data ? { sha256: f.sparseSize ? sparseSha256(f.sparseSize, f.data) : createHash('sha256').update(f.data).digest('hex') } : {}),
      mode: f.mode ?? (f.symlink ? 0o777 : f.dir ? 0o755 : 0o644),
      mtime: new Date(t * 1000).toISOString(),
      ...(f.symlink ? { target: f.symlink } : {}),
    });
  }
  utimesSync(root, T0, T0);
  return manifest.reverse();
}

function run(cmd: string, args: string[], input?: string): void {
  execFileSync(cmd, args, { input, stdio: ['pipe', 'ignore', 'pipe'] });
}

function writeAt(file: string, position: number, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, position);
  } finally {
    closeSync(fd);
  }
}

function build(dir: string): void {
  const served = join(dir, 'served');
  const outside = join(dir, 'outside');
  mkdirSync(join(served, 'laptops'), { recursive: true });
  mkdirSync(outside, { recursive: true });

  const tree = join(dir, 'tree');
  const manifest = writeTree(tree, helpdeskTree());

  // helpdesk.img: 1 MiB | p1 ext4 40 MiB | 4 MiB gap | p2 8 MiB "xfs" | p3 4 MiB damaged ext4
  const img = join(served, 'helpdesk.img');
  writeFileSync(img, '');
  execFileSync('truncate', ['-s', `${64 * MIB}`, img]);
  run('sfdisk', ['-q', img], 'label: dos\nstart=2048, size=40M, type=83\nstart=45M, size=8M, type=83\nstart=53M, size=4M, type=83\n');
  // p1 is made as a file of its own so debugfs can damage one file's extent, then copied in at its offset.
  const p1 = join(dir, 'p1.ext4');
  writeFileSync(p1, '');
  execFileSync('truncate', ['-s', '40M', p1]);
  run('mkfs.ext4', ['-q', '-F', '-L', 'helpdesk', '-N', String(MANY + 200), '-d', tree, p1]);
  // i_block[5] is the first extent's physical start (low 32 bits): far beyond the end.
  run('debugfs', ['-w', '-R', 'sif /damaged/broken.bin block[5] 4000000000', p1]);
  execFileSync('dd', [`if=${p1}`, `of=${img}`, 'bs=1M', `seek=1`, 'conv=notrunc', 'status=none']);
  rmSync(p1);
  writeAt(img, 45 * MIB, Buffer.from('XFSB', 'latin1'));
  const small = join(dir, 'small');
  mkdirSync(small);
  writeFileSync(join(small, 'readme.txt'), 'a small volume\n');
  run('mkfs.ext4', ['-q', '-F', '-b', '1024', '-L', 'damaged', '-E', `offset=${53 * MIB}`, '-d', small, img, '4M']);
  // Garbage over the group descriptors (block 2 with 1 KiB blocks): the superblock
  // still says ext4, opening the filesystem fails with a corrupt-structure error.
  writeAt(img, 53 * MIB + 2048, noise('damaged-gdt', 256));
  writeFileSync(join(served, 'helpdesk.manifest.json'), JSON.stringify({ image: 'helpdesk.img', entries: manifest }, null, 1));

  // ana.img: a filesystem image without a partition table.
  const ana = join(served, 'laptops', 'ana.img');
  const anaTree = join(dir, 'ana-tree');
  mkdirSync(join(anaTree, 'Desktop'), { recursive: true });
  writeFileSync(join(anaTree, 'Desktop', 'todo.txt'), 'call the helpdesk\n');
  writeFileSync(ana, '');
  execFileSync('truncate', ['-s', `${4 * MIB}`, ana]);
  run('mkfs.ext4', ['-q', '-F', '-L', 'ana', '-d', anaTree, ana]);

  // broken.img: a protective MBR announcing GPT, and garbage where both GPT headers should be.
  const broken = join(served, 'broken.img');
  writeFileSync(broken, '');
  execFileSync('truncate', ['-s', `${8 * MIB}`, broken]);
  run('sfdisk', ['-q', broken], 'label: gpt\nstart=2048, size=4M\n');
  writeAt(broken, 512, noise('broken-primary', 512));
  writeAt(broken, 8 * MIB - 512, noise('broken-backup', 512));

  writeFileSync(join(outside, 'secret.img'), noise('secret', 64 * 1024));
  writeFileSync(join(outside, 'secret.txt'), 'top secret\n');
  symlinkSync('helpdesk.img', join(served, 'link.img'));
  symlinkSync('../outside/secret.img', join(served, 'escape.img'));
  writeFileSync(join(served, '.hidden.img'), noise('hidden', 4096));
  rmSync(tree, { recursive: true });
  rmSync(anaTree, { recursive: true });
  rmSync(small, { recursive: true });
}

let cached: Fixture | null = null;

/** Build (once per version of this file) and return the fixture. */
export function serverFixture(): Fixture {
  if (cached) return cached;
  const version = createHash('sha256').update(readFileSync(new URL(import.meta.url))).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), `loopless-server-fixture-${version}`);
  if (!existsSync(join(dir, 'served', 'helpdesk.manifest.json'))) {
    const work = mkdtempSync(join(tmpdir(), 'loopless-server-fixture-build-'));
    build(work);
    try {
      renameSync(work, dir);
    } catch {
      rmSync(work, { recursive: true, force: true }); // another test file built it first
    }
  }
  const served = join(dir, 'served');
  const manifest = (JSON.parse(readFileSync(join(served, 'helpdesk.manifest.json'), 'utf8')) as { entries: ManifestEntry[] }).entries;
  cached = { served, outside: join(dir, 'outside'), helpdesk: join(served, 'helpdesk.img'), manifest, manyDir: '/p1/many', manyCount: MANY };
  return cached;
}
