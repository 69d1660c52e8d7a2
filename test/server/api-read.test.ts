import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Disk } from '../../parsers/vfs/index.js';
import { startServer, type RunningServer } from '../../server/index.js';
import { serverFixture, type Fixture, type ManifestEntry } from './fixture.js';
import { encodePath, eventually, rawGet, sha256, sha256File, unzip, zipListing } from './helpers.js';

let fx: Fixture;
let server: RunningServer;
let work: string;
let auditFile: string;
let imageSums: Map<string, string>;
const IMG = '/api/images/helpdesk.img';

function entry(path: string): ManifestEntry {
  const e = fx.manifest.find((m) => m.path === path);
  if (!e) throw new Error(`not in the manifest: ${path}`);
  return e;
}

/** Audit lines are written when a response has ended, a moment after the client saw its last byte. */
async function auditLine(match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  let hit: Record<string, unknown> | undefined;
  await eventually(() => {
    const text = readFileSync(auditFile, 'utf8');
    hit = text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find(match);
    return hit !== undefined;
  });
  return hit!;
}

async function get(path: string, headers: Record<string, string> = {}) {
  return rawGet(server.url, path, headers);
}

async function json<T = unknown>(path: string): Promise<T> {
  const r = await get(path);
  expect(r.status, `${path}: ${r.text}`).toBe(200);
  return JSON.parse(r.text) as T;
}

beforeAll(async () => {
  fx = serverFixture();
  imageSums = new Map(['helpdesk.img', 'broken.img', 'laptops/ana.img'].map((n) => [n, sha256File(join(fx.served, n))]));
  work = mkdtempSync(join(tmpdir(), 'loopless-api-read-'));
  auditFile = join(work, 'audit.log');
  server = await startServer({ folders: [fx.served], port: 0, audit: auditFile });
});

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
  // Served images are only ever read.
  for (const [name, sum] of imageSums ?? []) expect(sha256File(join(fx.served, name)), name).toBe(sum);
});

describe('GET /api/images', () => {
  it('lists the images with size and table, errors in words, and nothing that is not an image', async () => {
    const list = await json<{ id: string; size: number; table: string | null; error: string | null; code: string | null }[]>('/api/images');
    expect(list.map((i) => i.id)).toEqual(['broken.img', 'helpdesk.img', 'laptops/ana.img']);
    const byId = Object.fromEntries(list.map((i) => [i.id, i]));
    expect(byId['helpdesk.img']).toMatchObject({ size: 64 * 1024 * 1024, table: 'mbr', error: null });
    expect(byId['laptops/ana.img']).toMatchObject({ size: 4 * 1024 * 1024, table: 'none', error: null });
    expect(byId['broken.img'].table).toBeNull();
    expect(byId['broken.img'].code).toBe('CORRUPT');
    expect(byId['broken.img'].error).toMatch(/GPT/);
    expect(byId['broken.img'].error).not.toContain(fx.served); // no host paths in messages
  });

  it('GET /api/images/ID is the `info --json` object', async () => {
    const disk = await Disk.open(fx.helpdesk);
    const expected = await disk.info();
    await disk.close();
    const info = await json<typeof expected>(IMG);
    expect(info).toEqual(expected);
    expect(info.volumes.map((v) => [v.name, v.fs, v.supported])).toEqual([
      ['p1', 'ext4', true],
      ['p2', 'xfs', false],
      ['p3', 'ext4', false],
    ]);
    expect(info.volumes[2].error).toMatch(/corrupt ext group descriptor/);
  });

  it('an image that cannot be opened answers 422 with the reason; the others keep working', async () => {
    const r = await get('/api/images/broken.img');
    expect(r.status).toBe(422);
    expect(JSON.parse(r.text)).toMatchObject({ code: 'CORRUPT', error: expect.stringMatching(/GPT header/) });
    expect((await get(`${IMG}/ls/p1`)).status).toBe(200);
  });

  it('an ID with an encoded slash reaches an image in a subfolder', async () => {
    const list = await json<{ path: string }[]>('/api/images/laptops%2Fana.img/ls/fs/Desktop');
    expect(list.map((e) => e.path)).toEqual(['/fs/Desktop/todo.txt']);
  });
});

describe('ls', () => {
  it('lists a folder as `ls --json` does, matching the manifest', async () => {
    const list = await json<{ path: string; type: string; size: number; mode: number; mtime: string; target?: string }[]>(`${IMG}/ls/p1/docs/reports/2024`);
    expect(list.map((e) => e.path)).toEqual(['/p1/docs/reports/2024/budget-q3.xlsx', '/p1/docs/reports/2024/notes.txt']);
    for (const e of list) {
      const m = entry(e.path);
      expect(e).toMatchObject({ type: m.type, size: m.size, mode: m.mode, mtime: m.mtime });
      expect(Object.keys(e).sort()).toEqual(['gid', 'mode', 'mtime', 'nlink', 'path', 'size', 'type', 'uid']);
    }
  });

  it('gives symlink targets exactly as stored, including ones pointing outside the image', async () => {
    const list = await json<{ path: string; target?: string }[]>(`${IMG}/ls/p1/links`);
    expect(Object.fromEntries(list.map((e) => [e.path, e.target]))).toEqual({
      '/p1/links/abs-passwd': '/etc/passwd',
      '/p1/links/docs': '../docs',
      '/p1/links/escape': '../../../../../../../../etc/passwd',
      '/p1/links/to-notes': '../docs/reports/2024/notes.txt',
    });
  });

  it('"/" lists the volumes; a file lists as itself; a Unicode name round-trips', async () => {
    const root = await json<{ path: string }[]>(`${IMG}/ls/`);
    expect(root.map((e) => e.path)).toEqual(['/p1', '/p2', '/p3']);
    const file = await json<{ path: string; size: number }[]>(`${IMG}/ls/p1/docs/reports/2024/notes.txt`);
    expect(file).toEqual([expect.objectContaining({ path: '/p1/docs/reports/2024/notes.txt', size: 31 })]);
    const uni = '/p1/docs/Ünïcødé résumé ✓.txt';
    const one = await json<{ path: string }[]>(`${IMG}/ls${encodePath(uni)}`);
    expect(one[0].path).toBe(uni);
  });

  it('lists a 10,000-entry folder completely, and the same again from the cache', async () => {
    const first = await get(`${IMG}/ls${fx.manyDir}`);
    const list = JSON.parse(first.text) as { path: string }[];
    expect(list.length).toBe(fx.manyCount);
    expect(list[0].path).toBe('/p1/many/file-00000.txt');
    expect(list[9999].path).toBe('/p1/many/file-09999.txt');
    const again = await get(`${IMG}/ls${fx.manyDir}`);
    expect(again.body.equals(first.body)).toBe(true);
  });

  it('recursive=1 walks the tree, capped by limit with a header saying so', async () => {
    const all = await json<{ path: string }[]>(`${IMG}/ls/p1/docs?recursive=1`);
    const expected = fx.manifest.filter((m) => m.path.startsWith('/p1/docs/')).map((m) => m.path).sort();
    expect(all.map((e) => e.path).sort()).toEqual(expected);
    const capped = await get(`${IMG}/ls/p1?recursive=1&limit=50`);
    expect(capped.status).toBe(200);
    expect(JSON.parse(capped.text)).toHaveLength(50);
    expect(capped.headers['loopless-truncated']).toBe('true');
    expect((await get(`${IMG}/ls/p1?recursive=1&limit=0`)).status).toBe(400);
    expect((await get(`${IMG}/ls/p1?recursive=1&limit=abc`)).status).toBe(400);
  });

  it('says in words why a volume cannot be listed, and 404s what is not there', async () => {
    const p2 = await get(`${IMG}/ls/p2`);
    expect(p2.status).toBe(422);
    expect(JSON.parse(p2.text)).toMatchObject({ code: 'UNSUPPORTED', error: expect.stringMatching(/unsupported filesystem xfs/) });
    const p3 = await get(`${IMG}/ls/p3`);
    expect(p3.status).toBe(422);
    expect(JSON.parse(p3.text)).toMatchObject({ code: 'CORRUPT', error: expect.stringMatching(/corrupt ext group descriptor/) });
    const missing = await get(`${IMG}/ls/p1/nope`);
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text).error).toMatch(/no such file or directory/);
    expect((await get(`${IMG}/ls/p9`)).status).toBe(404);
    expect((await get('/api/images/nope.img/ls/p1')).status).toBe(404);
  });
});

describe('stat and sha256', () => {
  it('stat gives all metadata, the MIME type, and where a symlink leads', async () => {
    const s = await json<Record<string, unknown>>(`${IMG}/stat/p1/docs/reports/2024/notes.txt`);
    expect(s).toMatchObject({ path: '/p1/docs/reports/2024/notes.txt', type: 'file', size: 31, mode: 0o600, mime: 'text/plain', name: 'notes.txt' });
    for (const k of ['ino', 'atime', 'ctime', 'mtimeNs', 'allocatedSize', 'uid', 'gid', 'nlink']) expect(s).toHaveProperty(k);
    const good = await json<Record<string, unknown>>(`${IMG}/stat/p1/links/to-notes`);
    expect(good).toMatchObject({ type: 'symlink', target: '../docs/reports/2024/notes.txt', targetPath: '/p1/docs/reports/2024/notes.txt', targetType: 'file', targetError: null });
    const out = await json<Record<string, unknown>>(`${IMG}/stat/p1/links/escape`);
    expect(out).toMatchObject({ type: 'symlink', targetPath: '/p1/etc/passwd', targetType: null });
    expect(out.targetError).toMatch(/no such file/);
    const followed = await json<Record<string, unknown>>(`${IMG}/stat/p1/links/to-notes?follow=1`);
    expect(followed).toMatchObject({ type: 'file', size: 31 });
  });

  it('sha256 reads the file through and matches the manifest', async () => {
    const r = await json<{ sha256: string; size: number }>(`${IMG}/sha256/p1/big/large.bin`);
    expect(r).toMatchObject({ sha256: entry('/p1/big/large.bin').sha256, size: entry('/p1/big/large.bin').size });
    expect((await get(`${IMG}/sha256/p1/big`)).status).toBe(400);
  });
});

describe('cat', () => {
  const large = '/p1/big/large.bin';

  it('returns the exact bytes with the MIME type, ETag and an inline or attachment disposition', async () => {
    for (const path of ['/p1/docs/reports/2024/budget-q3.xlsx', '/p1/photos/cat.png', '/p1/docs/manual.pdf', large]) {
      const r = await get(`${IMG}/cat${path}`);
      expect(r.status).toBe(200);
      expect(sha256(r.body), path).toBe(entry(path).sha256);
      expect(r.headers['content-length']).toBe(String(entry(path).size));
      expect(r.headers['accept-ranges']).toBe('bytes');
      expect(r.headers.etag).toMatch(/^"[\w-]+"$/);
    }
    expect((await get(`${IMG}/cat/p1/docs/manual.pdf`)).headers['content-type']).toBe('application/pdf');
    expect((await get(`${IMG}/cat/p1/photos/cat.png`)).headers['content-type']).toBe('image/png');
    expect((await get(`${IMG}/cat/p1/docs/reports/2024/budget-q3.xlsx`)).headers['content-type']).toBe('application/vnd.openxmlformats-officedocument.spreadsheetml.sheet');
    expect((await get(`${IMG}/cat/p1/docs/reports/2024/notes.txt`)).headers['content-type']).toBe('text/plain; charset=utf-8');
    expect((await get(`${IMG}/cat/p1/docs/reports/2024/notes.txt`)).headers['content-disposition']).toBe('inline; filename=notes.txt');
    expect((await get(`${IMG}/cat/p1/docs/reports/2024/notes.txt?download=1`)).headers['content-disposition']).toBe('attachment; filename=notes.txt');
  });

  it('names a Unicode file with RFC 5987 filename*', async () => {
    const path = '/p1/docs/Ünïcødé résumé ✓.txt';
    const r = await get(`${IMG}/cat${encodePath(path)}?download=1`);
    expect(r.status).toBe(200);
    expect(r.text).toBe('Ünïcødé content ✓\n');
    const cd = r.headers['content-disposition']!;
    expect(cd).toMatch(/^attachment; filename="[ -~]+"; filename\*=UTF-8''/);
    expect(decodeURIComponent(cd.split("UTF-8''")[1])).toBe('Ünïcødé résumé ✓.txt');
  });

  it('serves single byte ranges with 206 and Content-Range', async () => {
    const whole = readRange(0, entry(large).size - 1);
    const mid = await get(`${IMG}/cat${large}`, { Range: 'bytes=1000000-1000099' });
    expect(mid.status).toBe(206);
    expect(mid.headers['content-range']).toBe(`bytes 1000000-1000099/${entry(large).size}`);
    expect(mid.headers['content-length']).toBe('100');
    expect(mid.body.equals((await whole).subarray(1000000, 1000100))).toBe(true);
    const suffix = await get(`${IMG}/cat${large}`, { Range: 'bytes=-10' });
    expect(suffix.status).toBe(206);
    expect(suffix.body.equals((await whole).subarray(-10))).toBe(true);
    const open = await get(`${IMG}/cat${large}`, { Range: `bytes=${entry(large).size - 5}-` });
    expect(open.status).toBe(206);
    expect(open.body.length).toBe(5);
    // A range running past the end is cut at the end.
    const past = await get(`${IMG}/cat${large}`, { Range: `bytes=${entry(large).size - 3}-99999999` });
    expect(past.status).toBe(206);
    expect(past.headers['content-range']).toBe(`bytes ${entry(large).size - 3}-${entry(large).size - 1}/${entry(large).size}`);
  });

  async function readRange(start: number, end: number): Promise<Buffer> {
    const r = await get(`${IMG}/cat${large}`, { Range: `bytes=${start}-${end}` });
    return r.body;
  }

  it('answers 416 for a range outside the file, 200 (whole file) for several ranges or a malformed one', async () => {
    const size = entry(large).size;
    const bad = await get(`${IMG}/cat${large}`, { Range: `bytes=${size}-` });
    expect(bad.status).toBe(416);
    expect(bad.headers['content-range']).toBe(`bytes */${size}`);
    expect(JSON.parse(bad.text).error).toMatch(/outside the file/);
    const multi = await get(`${IMG}/cat${large}`, { Range: 'bytes=0-9,100-109' });
    expect(multi.status).toBe(200);
    expect(multi.body.length).toBe(size);
    const malformed = await get(`${IMG}/cat${large}`, { Range: 'bytes=abc' });
    expect(malformed.status).toBe(200);
    expect((await get(`${IMG}/cat/p1/empty.txt`, { Range: 'bytes=0-' })).status).toBe(416);
  });

  it('honours If-None-Match and If-Range', async () => {
    const first = await get(`${IMG}/cat/p1/docs/reports/2024/notes.txt`);
    const etag = first.headers.etag!;
    expect((await get(`${IMG}/cat/p1/docs/reports/2024/notes.txt`, { 'If-None-Match': etag })).status).toBe(304);
    const other = await get(`${IMG}/cat/p1/docs/reports/2023/summary.txt`);
    expect(other.headers.etag).not.toBe(etag);
    expect((await get(`${IMG}/cat/p1/docs/reports/2024/notes.txt`, { Range: 'bytes=0-3', 'If-Range': etag })).status).toBe(206);
    const stale = await get(`${IMG}/cat/p1/docs/reports/2024/notes.txt`, { Range: 'bytes=0-3', 'If-Range': '"stale"' });
    expect(stale.status).toBe(200);
    expect(stale.body.length).toBe(31);
  });

  it('HEAD gives the headers without the body; empty files work', async () => {
    const head = await rawGet(server.url, `${IMG}/cat${large}`, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(entry(large).size));
    expect(head.body.length).toBe(0);
    const empty = await get(`${IMG}/cat/p1/empty.txt`);
    expect(empty.status).toBe(200);
    expect(empty.body.length).toBe(0);
  });

  it('follows symlinks inside the image only, and refuses folders and special files', async () => {
    expect((await get(`${IMG}/cat/p1/links/to-notes`)).text).toBe('Budget notes\nQ3 is over by 4%.\n');
    for (const link of ['escape', 'abs-passwd']) {
      const r = await get(`${IMG}/cat/p1/links/${link}`);
      expect(r.status).toBe(404);
      expect(r.text).not.toContain('root:');
    }
    const dir = await get(`${IMG}/cat/p1/docs`);
    expect(dir.status).toBe(400);
    expect(JSON.parse(dir.text)).toMatchObject({ code: 'EISDIR' });
    const fifo = await get(`${IMG}/cat/p1/special/pipe`);
    expect(fifo.status).toBe(400);
    expect(JSON.parse(fifo.text).error).toMatch(/not a regular file/);
  });

  it('a file that cannot be read says why (422 CORRUPT), with nothing of the file in the headers', async () => {
    const r = await get(`${IMG}/cat/p1/damaged/broken.bin?download=1`);
    expect(r.status).toBe(422);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.headers['content-disposition']).toBeUndefined();
    expect(r.headers['content-range']).toBeUndefined();
    expect(JSON.parse(r.text)).toMatchObject({ code: 'CORRUPT', error: expect.stringMatching(/broken\.bin: corrupt ext extent/) });
    expect((await get(`${IMG}/sha256/p1/damaged/broken.bin`)).status).toBe(422);
    expect(await auditLine((l) => l.path === '/p1/damaged/broken.bin')).toMatchObject({ event: 'download', complete: false, bytes: 0, error: expect.stringMatching(/corrupt/) });
    expect((await get(`${IMG}/cat/p1/damaged/ok.txt`)).text).toBe('this one is fine\n');
  });

  it('keeps active content from the image from running in our origin', async () => {
    const html = await get(`${IMG}/cat/p1/docs/page.html`);
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.headers['content-security-policy']).toMatch(/^sandbox;/);
    expect(html.headers['x-content-type-options']).toBe('nosniff');
  });

  it('writes an audit line per download with who, image, path and bytes', async () => {
    await get(`${IMG}/cat/p1/docs/reports/2023/summary.txt`, { Range: 'bytes=0-9' });
    const hit = await auditLine((l) => l.path === '/p1/docs/reports/2023/summary.txt' && l.status === 206);
    expect(hit).toMatchObject({ event: 'download', user: null, image: 'helpdesk.img', bytes: 10, complete: true, range: '0-9', ip: '127.0.0.1' });
    expect(Date.parse(hit!.time as string)).toBeGreaterThan(Date.now() - 60_000);
  });
});

describe('zip', () => {
  it('streams a folder as a zip whose files, modes and times match the manifest', async () => {
    const r = await get(`${IMG}/zip/p1/docs`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/zip');
    expect(r.headers['content-disposition']).toBe('attachment; filename=docs.zip');
    expect(r.headers['content-length']).toBeUndefined(); // produced while sent
    const zipFile = join(work, 'docs.zip');
    writeFileSync(zipFile, r.body);
    const dest = join(work, 'docs-out');
    unzip(zipFile, dest);
    const files = fx.manifest.filter((m) => m.path.startsWith('/p1/docs/'));
    expect(files.length).toBeGreaterThan(5);
    for (const m of files) {
      const host = join(dest, m.path.replace('/p1/', ''));
      const st = statSync(host);
      if (m.type === 'file') {
        expect(sha256File(host), m.path).toBe(m.sha256);
        expect(st.mode & 0o7777, m.path).toBe(m.mode);
      }
      if (m.type === 'file') expect(st.mtime.toISOString(), m.path).toBe(m.mtime); // exact, from the UT extra field
    }
    expect(await auditLine((l) => l.event === 'zip' && l.path === '/p1/docs')).toMatchObject({ image: 'helpdesk.img', complete: true, bytes: r.body.length, files: 6 });
  });

  it('stores symlinks as symlinks, leaves special files out and says so inside the zip', async () => {
    const links = await get(`${IMG}/zip/p1/links`);
    const linksZip = join(work, 'links.zip');
    writeFileSync(linksZip, links.body);
    const listing = zipListing(linksZip).filter((l) => l.includes('links/'));
    expect(listing.filter((l) => l.startsWith('l')).length).toBe(4);
    const dest = join(work, 'links-out');
    unzip(linksZip, dest);
    expect(readlinkSync(join(dest, 'links', 'to-notes'))).toBe('../docs/reports/2024/notes.txt');
    const special = await get(`${IMG}/zip/p1/special`);
    const specialZip = join(work, 'special.zip');
    writeFileSync(specialZip, special.body);
    const out = join(work, 'special-out');
    unzip(specialZip, out);
    expect(readFileSync(join(out, 'special', 'LOOPLESS-ERRORS.txt'), 'utf8')).toMatch(/\/p1\/special\/pipe: left out \(fifo\)/);
  });

  it('a damaged file does not break the zip: the rest is there and LOOPLESS-ERRORS.txt says what is missing', async () => {
    const r = await get(`${IMG}/zip/p1/damaged`);
    expect(r.status).toBe(200);
    const f = join(work, 'damaged.zip');
    writeFileSync(f, r.body);
    const out = join(work, 'damaged-out');
    unzip(f, out);
    expect(readFileSync(join(out, 'damaged', 'ok.txt'), 'utf8')).toBe('this one is fine\n');
    expect(readFileSync(join(out, 'damaged', 'LOOPLESS-ERRORS.txt'), 'utf8')).toMatch(/\/p1\/damaged\/broken\.bin: incomplete in this zip: .*corrupt ext extent/);
    expect(statSync(join(out, 'damaged', 'broken.bin')).size).toBe(0);
  });

  it('zips a volume root under its volume name and refuses a file', async () => {
    const r = await rawGet(server.url, `${IMG}/zip/p1/empty`, {});
    const f = join(work, 'empty.zip');
    writeFileSync(f, r.body);
    expect(zipListing(f).some((l) => l.endsWith(' empty/'))).toBe(true);
    const file = await get(`${IMG}/zip/p1/empty.txt`);
    expect(file.status).toBe(400);
    expect(JSON.parse(file.text).error).toMatch(/not a folder/);
    expect((await get(`${IMG}/zip/p2`)).status).toBe(422);
  });
});

describe('search', () => {
  function lines(text: string): Record<string, unknown>[] {
    return text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  it('streams matching entries as NDJSON, then a closing summary', async () => {
    const r = await get(`${IMG}/search?q=BUDGET&in=/p1`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    const out = lines(r.text).filter((l) => !('progress' in l));
    expect(out).toEqual([
      expect.objectContaining({ path: '/p1/docs/reports/2024/budget-q3.xlsx', type: 'file', size: 300_000 }),
      expect.objectContaining({ done: true, matches: 1, truncated: false }),
    ]);
    expect((out[1].scanned as number) >= fx.manyCount).toBe(true);
  });

  it('takes globs, a starting folder and a limit', async () => {
    const pdf = lines((await get(`${IMG}/search?q=*.PDF&in=/p1/docs`)).text).filter((l) => 'path' in l);
    expect(pdf.map((l) => l.path)).toEqual(['/p1/docs/manual.pdf']);
    const capped = lines((await get(`${IMG}/search?q=file-&in=/p1/many&limit=5`)).text);
    expect(capped.filter((l) => 'path' in l)).toHaveLength(5);
    expect(capped.at(-1)).toMatchObject({ done: true, matches: 5, truncated: true });
    const uni = lines((await get(`${IMG}/search?q=${encodeURIComponent('résumé')}&in=/p1`)).text).filter((l) => 'path' in l);
    expect(uni.map((l) => l.path)).toEqual(['/p1/docs/Ünïcødé résumé ✓.txt']);
  });

  it('refuses bad requests in words', async () => {
    expect((await get(`${IMG}/search?in=/p1`)).status).toBe(400);
    expect((await get(`${IMG}/search?q=x&in=/p1/../..`)).status).toBe(400);
    const p2 = await get(`${IMG}/search?q=x&in=/p2`);
    expect(p2.status).toBe(422);
  });
});
