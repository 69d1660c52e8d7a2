import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../server/index.js';
import { Disk } from '../../parsers/vfs/index.js';
import { serverFixture, type Fixture } from './fixture.js';
import { eventually, rawGet } from './helpers.js';
import { run } from '../support/run.js';

let fx: Fixture;
let work: string;
let served: string;
let auditFile: string;
let server: RunningServer;

beforeAll(async () => {
  fx = serverFixture();
  work = mkdtempSync(join(tmpdir(), 'loopless-api-robust-'));
  served = join(work, 'served');
  // A folder of our own whose images the tests may replace (never modify) while serving.
  mkdirSync(served);
  copyFileSync(fx.helpdesk, join(served, 'helpdesk.img'));
  copyFileSync(join(fx.served, 'laptops', 'ana.img'), join(served, 'swap.img'));
  // Files that live next to images but are none.
  writeFileSync(join(served, 'SHA256SUMS'), 'x  helpdesk.img\n');
  writeFileSync(join(served, 'README.md'), '# images\n');
  writeFileSync(join(served, 'helpdesk.manifest.json'), '{}');
  auditFile = join(work, 'audit.log');
  server = await startServer({ folders: [served], port: 0, audit: auditFile, openImages: 1 });
});

afterAll(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

function auditLines(): Record<string, unknown>[] {
  return readFileSync(auditFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * Start a download, take the first chunk, stop reading (so the server blocks
 * on backpressure), then hang up.
 */
function hangUpAfterFirstChunk(path: string): Promise<number> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path }, (res) => {
      res.once('data', (chunk: Buffer) => {
        res.pause();
        setTimeout(() => {
          req.destroy();
          resolve(chunk.length);
        }, 200);
      });
    });
    req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
    req.end();
  });
}

describe('robustness', () => {
  it('lists only images, not the checksum lists and notes beside them', async () => {
    const list = JSON.parse((await rawGet(server.url, '/api/images')).text) as { id: string }[];
    expect(list.map((i) => i.id)).toEqual(['helpdesk.img', 'swap.img']);
    expect((await rawGet(server.url, '/api/images/SHA256SUMS')).status).toBe(404);
  });

  it('a client hanging up mid-download frees the image and is audited as incomplete', async () => {
    await hangUpAfterFirstChunk('/api/images/helpdesk.img/cat/p1/big/sparse.bin');
    await eventually(() => server.pool.leaseCount === 0);
    await eventually(() => auditLines().some((l) => l.path === '/p1/big/sparse.bin'));
    const line = auditLines().find((l) => l.path === '/p1/big/sparse.bin')!;
    expect(line).toMatchObject({ event: 'download', complete: false, error: 'client disconnected' });
    expect(line.bytes as number).toBeLessThan(256 * 1024 * 1024);
    expect((await rawGet(server.url, '/api/images/helpdesk.img/cat/p1/docs/reports/2024/notes.txt')).status).toBe(200);
  });

  it('a client hanging up mid-zip stops the zip and frees the image', async () => {
    await hangUpAfterFirstChunk('/api/images/helpdesk.img/zip/p1/big');
    await eventually(() => server.pool.leaseCount === 0);
    await eventually(() => auditLines().some((l) => l.event === 'zip' && l.path === '/p1/big'));
    expect(auditLines().find((l) => l.event === 'zip' && l.path === '/p1/big')).toMatchObject({ complete: false, error: 'client disconnected' });
  });

  it('a client hanging up mid-search stops the walk and frees the image', async () => {
    await hangUpAfterFirstChunk('/api/images/helpdesk.img/search?q=file-&in=/p1&limit=100000');
    await eventually(() => server.pool.leaseCount === 0);
    expect((await rawGet(server.url, '/api/images/helpdesk.img/ls/p1')).status).toBe(200);
  });

  it('keeps at most --open-images Disks open', async () => {
    for (const id of ['helpdesk.img', 'swap.img', 'helpdesk.img', 'swap.img']) expect((await rawGet(server.url, `/api/images/${id}`)).status).toBe(200);
    await eventually(() => server.pool.leaseCount === 0);
    expect(server.pool.openCount).toBeLessThanOrEqual(1);
  });

  it('reopens an image whose file was replaced, and reports a corrupt one without stopping the service', async () => {
    const before = JSON.parse((await rawGet(server.url, '/api/images/swap.img')).text);
    expect(before.table).toBe('none');
    // Replace (write elsewhere, rename over): the served file is never written in place.
    copyFileSync(join(fx.served, 'broken.img'), join(work, 'next.img'));
    renameSync(join(work, 'next.img'), join(served, 'swap.img'));
    const broken = await rawGet(server.url, '/api/images/swap.img');
    expect(broken.status).toBe(422);
    expect(JSON.parse(broken.text).code).toBe('CORRUPT');
    await new Promise((r) => setTimeout(r, 2100)); // the folder is rescanned every 2 s
    const list = JSON.parse((await rawGet(server.url, '/api/images')).text) as { id: string; error: string | null }[];
    expect(list.find((i) => i.id === 'swap.img')!.error).toMatch(/GPT/);
    expect(list.find((i) => i.id === 'helpdesk.img')!.error).toBeNull();
    expect((await rawGet(server.url, '/api/images/helpdesk.img/ls/p1/docs')).status).toBe(200);

    copyFileSync(join(fx.served, 'laptops', 'ana.img'), join(work, 'next.img'));
    renameSync(join(work, 'next.img'), join(served, 'swap.img'));
    const again = await rawGet(server.url, '/api/images/swap.img/ls/fs/Desktop');
    expect(again.status).toBe(200);
  });

  it('an image deleted since the last scan is simply not found', async () => {
    copyFileSync(join(fx.served, 'laptops', 'ana.img'), join(served, 'gone.img'));
    await new Promise((r) => setTimeout(r, 2100)); // next scan sees it
    expect((await rawGet(server.url, '/api/images/gone.img')).status).toBe(200);
    rmSync(join(served, 'gone.img'));
    const r = await rawGet(server.url, '/api/images/gone.img/ls/fs');
    expect(r.status).toBe(404);
    expect(JSON.parse(r.text)).toEqual({ error: 'no such image: gone.img' });
  });

  it('an image swapped for a symlink to a file outside the folder after the scan is not served (404, as links are)', async () => {
    copyFileSync(join(fx.served, 'laptops', 'ana.img'), join(served, 'lure.img'));
    await new Promise((r) => setTimeout(r, 2100)); // next scan lists it
    expect((await rawGet(server.url, '/api/images/lure.img')).status).toBe(200);
    // Outside the served folder: an MBR image (lure.img has no partition table).
    copyFileSync(fx.helpdesk, join(work, 'outside.img'));
    symlinkSync(join(work, 'outside.img'), join(work, 'lure-link'));
    renameSync(join(work, 'lure-link'), join(served, 'lure.img'));
    // Still in the catalog (scanned < 2 s ago), but the file is now a link: refused, never followed.
    for (const path of ['/api/images/lure.img', '/api/images/lure.img/ls/p1', '/api/images/lure.img/cat/p1/docs/reports/2024/notes.txt']) {
      const r = await rawGet(server.url, path);
      expect(r.status, path).toBe(404);
      expect(r.text).not.toContain('mbr');
      expect(r.text).not.toContain(work);
    }
    await new Promise((r) => setTimeout(r, 2100)); // the next scan drops it from the list
    const list = JSON.parse((await rawGet(server.url, '/api/images')).text) as { id: string }[];
    expect(list.map((i) => i.id)).not.toContain('lure.img');
    rmSync(join(served, 'lure.img'));
  });

  it('opens with O_NOFOLLOW when asked: a symlinked image is refused (ENOENT), and followed otherwise', async () => {
    symlinkSync(join(served, 'helpdesk.img'), join(work, 'via-link.img'));
    await expect(Disk.open(join(work, 'via-link.img'), { noFollow: true })).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringMatching(/symbolic link/) });
    const disk = await Disk.open(join(work, 'via-link.img'));
    expect(disk.table.table).toBe('mbr');
    await disk.close();
    expect(server.pool.openCount).toBeLessThanOrEqual(1);
  });

  it('a backing file outside the served folder is not opened (422 in words); one inside is followed', async () => {
    copyFileSync(fx.helpdesk, join(work, 'secret-disk.img'));
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(work, 'secret-disk.img'), join(served, 'escape.qcow2')]);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', 'helpdesk.img', join(served, 'overlay.qcow2')]);
    await new Promise((r) => setTimeout(r, 300)); // an unknown ID rescans at most every 250 ms
    const escape = await rawGet(server.url, '/api/images/escape.qcow2/ls/p1');
    expect(escape.status).toBe(422);
    expect(JSON.parse(escape.text).error).toMatch(/backing file .* lies outside the folder images may be read from/);
    const overlay = await rawGet(server.url, '/api/images/overlay.qcow2/ls/p1');
    expect(overlay.status).toBe(200);
    rmSync(join(served, 'escape.qcow2'));
    rmSync(join(served, 'overlay.qcow2'));
  });

  it('an image whose subfolder was swapped for a symlink to a folder outside after the scan is not served', async () => {
    mkdirSync(join(served, 'sub'));
    copyFileSync(join(fx.served, 'laptops', 'ana.img'), join(served, 'sub', 'x.img'));
    await new Promise((r) => setTimeout(r, 300));
    expect((await rawGet(server.url, '/api/images/sub%2Fx.img')).status).toBe(200);
    // O_NOFOLLOW guards only the last component: here the folder above it becomes the link.
    mkdirSync(join(work, 'elsewhere'));
    copyFileSync(fx.helpdesk, join(work, 'elsewhere', 'x.img'));
    symlinkSync(join(work, 'elsewhere'), join(work, 'sub-link'));
    rmSync(join(served, 'sub'), { recursive: true });
    renameSync(join(work, 'sub-link'), join(served, 'sub'));
    const r = await rawGet(server.url, '/api/images/sub%2Fx.img/ls/p1');
    expect(r.status).toBe(404);
    expect(r.text).not.toContain(work);
    rmSync(join(served, 'sub'));
  });

  it('a listing that leaves out a damaged entry says the image has warnings, and the image lists them', async () => {
    const tree = join(work, 'ghost-tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'kept.txt'), 'kept\n');
    writeFileSync(join(tree, 'ghost.txt'), 'its inode is marked free below\n');
    const image = join(served, 'ghost.img');
    run('mkfs.ext4', ['-q', '-F', '-d', tree, image, '4M']);
    run('debugfs', ['-w', '-R', 'sif /ghost.txt mode 0', image]);
    // A new image is found by the next rescan (a miss rescans once the last scan is 250 ms old).
    for (let tries = 0; tries < 30 && (await rawGet(server.url, '/api/images/ghost.img')).status === 404; tries++) await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 2; i++) {
      // The second answer comes from the listing cache and still carries the count.
      const ls = await rawGet(server.url, '/api/images/ghost.img/ls/fs');
      expect(ls.status).toBe(200);
      expect((JSON.parse(ls.body.toString()) as { path: string }[]).map((e) => e.path).sort()).toEqual(['/fs/kept.txt', '/fs/lost+found']);
      expect(Number(ls.headers['loopless-image-warnings'])).toBe(1);
    }
    const info = JSON.parse((await rawGet(server.url, '/api/images/ghost.img')).body.toString()) as { warnings: string[] };
    expect(info.warnings).toEqual([expect.stringMatching(/^fs: directory inode 2: entry "ghost\.txt" left out: corrupt ext inode \d+ at byte \d+: inode is not in use \(mode 0\)$/)]);
    // An image without warnings sends no such header.
    expect((await rawGet(server.url, '/api/images/swap.img/ls/fs')).headers['loopless-image-warnings']).toBeUndefined();
  });

  it('answers a missing page bundle with words, not a blank page', async () => {
    const bare = await startServer({ folders: [served], port: 0, audit: join(work, 'bare.log'), webRoot: join(work, 'no-such-web') });
    try {
      const r = await rawGet(bare.url, '/');
      expect(r.status).toBe(503);
      expect(r.text).toMatch(/npm run build/);
    } finally {
      await bare.close();
    }
  });
});
