/**
 * Block maps: `loopless bmap` writes a bmaptool 2.0 file from the
 * filesystems' allocation that Debian's bmaptool accepts and copies with;
 * `loopless restore --bmap` takes bmaptool's own files (2.0 from
 * `bmaptool create`, and the older 1.2/1.3 forms), checks their checksums
 * while writing, and refuses maps that do not belong to the image.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { hasTool, run, tempDir } from '../support/run.js';
import { allocatedBytes, buildJunkDisk, bytesOf, expectSameDisk, jsonLines, loopless, type JunkDisk } from './helpers.js';

const tmp = tempDir('loopless-bmap-');
afterAll(() => tmp.cleanup());

let junk: JunkDisk;
/** The same disk with every byte written out (no holes), as `dd` of a real disk is. */
let dense: string;
let ours: string;

beforeAll(() => {
  junk = buildJunkDisk(tmp.dir, 'disk.img');
  dense = tmp.path('dense.img');
  run('cp', ['--sparse=never', junk.path, dense]);
  ours = tmp.path('ours.bmap');
  const r = loopless(['bmap', dense, '-o', ours]);
  expect(r.status, r.stderr).toBe(0);
});

const field = (xml: string, name: string) => new RegExp(`<${name}>\\s*([^<]*?)\\s*</${name}>`).exec(xml)?.[1];
const ranges = (xml: string) =>
  [...xml.matchAll(/<Range(?: (\w+)="([0-9a-f]+)")?>\s*(\d+)(?:-(\d+))?\s*<\/Range>/g)].map((m) => ({
    attr: m[1],
    sum: m[2],
    first: Number(m[3]),
    last: Number(m[4] ?? m[3]),
  }));
const hex = (algorithm: string, data: Buffer | string) => createHash(algorithm).update(data).digest('hex');

describe('loopless bmap', () => {
  it('writes the bmaptool 2.0 fields from the allocation, with valid file and range checksums', () => {
    const xml = readFileSync(ours, 'utf8');
    const size = statSync(dense).size;
    expect(xml).toMatch(/<bmap version="2.0">/);
    expect(Number(field(xml, 'ImageSize'))).toBe(size);
    expect(Number(field(xml, 'BlockSize'))).toBe(4096);
    expect(Number(field(xml, 'BlocksCount'))).toBe(Math.ceil(size / 4096));
    expect(field(xml, 'ChecksumType')).toBe('sha256');
    const list = ranges(xml);
    const mapped = list.reduce((n, r) => n + r.last - r.first + 1, 0);
    expect(Number(field(xml, 'MappedBlocksCount'))).toBe(mapped);
    // From allocation, not from holes: the dense image has none, yet p1's free space (the
    // deleted 8 MiB file among it) is unmapped. Outside p1 everything is mapped, as restore copies it.
    expect(mapped * 4096).toBeLessThan(size - 12 * 1024 * 1024);
    for (const b of junk.junkBlocks) expect(list.some((r) => b.start / 4096 >= r.first && b.start / 4096 <= r.last)).toBe(false);
    // The file checksum is over the file with that checksum's digits zeroed.
    const stored = field(xml, 'BmapFileChecksum')!;
    expect(hex('sha256', xml.replace(stored, '0'.repeat(64)))).toBe(stored);
    for (const r of [list[0], list[Math.floor(list.length / 2)], list.at(-1)!]) {
      const start = r.first * 4096;
      const end = Math.min((r.last + 1) * 4096, size);
      expect(r.attr).toBe('chksum');
      expect(r.sum).toBe(hex('sha256', bytesOf(dense, start, end - start)));
    }
  });

  it.skipIf(!hasTool('bmaptool'))('bmaptool copy accepts it and writes a disk with the same files', async () => {
    const target = tmp.path('bmaptool-copy.img');
    run('bmaptool', ['copy', '--bmap', ours, dense, target]);
    await expectSameDisk(dense, target);
    expect(allocatedBytes(target)).toBeLessThan(statSync(dense).size - 12 * 1024 * 1024);
  });

  it('refuses to overwrite an existing output without --force, and writes to stdout without -o', () => {
    const again = loopless(['bmap', dense, '-o', ours]);
    expect(again.status).toBe(6);
    const stdout = loopless(['bmap', dense]);
    expect(stdout.status).toBe(0);
    expect(stdout.stdout).toBe(readFileSync(ours, 'utf8'));
  });
});

describe('restore --bmap', () => {
  it.skipIf(!hasTool('bmaptool'))('accepts a map made by bmaptool create', async () => {
    const theirs = tmp.path('theirs.bmap');
    run('bmaptool', ['create', '-o', theirs, junk.path]);
    const target = tmp.path('from-bmaptool-map.img');
    const r = loopless(['restore', '--bmap', theirs, junk.path, target, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(jsonLines(r.stdout).at(-1)).toMatchObject({ basis: 'bmap', status: 'ok' });
    await expectSameDisk(junk.path, target);
  });

  /** Our 2.0 map rewritten in an older form, with sha1 range checksums. */
  function olderMap(version: '1.2' | '1.3'): string {
    const xml = readFileSync(ours, 'utf8');
    const size = statSync(dense).size;
    const body = ranges(xml)
      .map((r) => {
        const start = r.first * 4096;
        const end = Math.min((r.last + 1) * 4096, size);
        return `    <Range sha1="${hex('sha1', bytesOf(dense, start, end - start))}"> ${r.first}-${r.last} </Range>\n`;
      })
      .join('');
    const head = `<?xml version="1.0" ?>\n<bmap version="${version}">\n  <ImageSize> ${size} </ImageSize>\n  <BlockSize> 4096 </BlockSize>\n  <BlocksCount> ${field(xml, 'BlocksCount')} </BlocksCount>\n  <MappedBlocksCount> ${field(xml, 'MappedBlocksCount')} </MappedBlocksCount>\n`;
    const fileSum = version === '1.3' ? `  <BmapFileSHA1> ${'0'.repeat(40)} </BmapFileSHA1>\n` : '';
    const text = `${head}${fileSum}  <BlockMap>\n${body}  </BlockMap>\n</bmap>\n`;
    return version === '1.3' ? text.replace('0'.repeat(40), hex('sha1', text)) : text;
  }

  for (const version of ['1.2', '1.3'] as const) {
    it(`accepts bmap format ${version} (sha1 range checksums)`, async () => {
      const map = tmp.path(`v${version}.bmap`);
      writeFileSync(map, olderMap(version));
      const target = tmp.path(`v${version}.img`);
      const r = loopless(['restore', '--bmap', map, dense, target]);
      expect(r.status, r.stderr).toBe(0);
      await expectSameDisk(dense, target);
    });
  }

  it('stops with exit 8 naming the range when the image does not match a range checksum', () => {
    const xml = readFileSync(ours, 'utf8');
    const victim = ranges(xml)[1];
    const bad = xml.replace(victim.sum!, '0'.repeat(63) + '1');
    const stored = field(bad, 'BmapFileChecksum')!;
    const fixed = bad.replace(stored, hex('sha256', bad.replace(stored, '0'.repeat(64))));
    const map = tmp.path('bad-range.bmap');
    writeFileSync(map, fixed);
    const r = loopless(['restore', '--bmap', map, dense, tmp.path('bad-range.img')]);
    expect(r.status).toBe(8);
    expect(r.stderr).toContain(`image bytes ${victim.first * 4096}..`);
    expect(r.stderr).toMatch(/do not match the block map's sha256/);
  });

  it('refuses a map whose own checksum is wrong (exit 4) and a map of another image (exit 1)', () => {
    const xml = readFileSync(ours, 'utf8');
    const edited = tmp.path('edited.bmap');
    writeFileSync(edited, xml.replace('<BlockMap>', '<BlockMap>\n'));
    const r = loopless(['restore', '--bmap', edited, dense, tmp.path('edited.img')]);
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/BmapFileChecksum mismatch/);

    const other = tmp.path('other.img');
    run('truncate', ['-s', String(statSync(dense).size + 4096), other]);
    const wrong = loopless(['restore', '--bmap', ours, other, tmp.path('other-out.img')]);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/belongs to another image/);
  });
});
