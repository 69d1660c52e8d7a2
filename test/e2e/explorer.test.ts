import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../server/auth/passwords.js';
import { writeUsers } from '../../server/auth/users-file.js';
import { startServer, type RunningServer } from '../../server/index.js';
import { serverFixture, type Fixture, type ManifestEntry } from '../server/fixture.js';
import { sha256File, unzip } from '../server/helpers.js';

/**
 * The explorer in real headless Chromium, logged in as a helpdesk user: open
 * the sample image mbr.img, find a file three folders down on its logical
 * ext4 volume, download it, download its folder as a zip, and compare both
 * with the image's truth manifest. The server's own fixture (next to the
 * sample images, so IDs carry their folder's name) covers the rest: a
 * 10,000-entry folder, unreadable and damaged volumes.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const SAMPLES = join(ROOT, 'sample-images');
const OUTPUT = join(ROOT, 'test-output');
const PASSWORD = 'helpdesk password 1';

interface SampleManifest {
  size: number;
  volumes: { name: string; start: number; size: number; fs: string | null; label: string | null }[];
  entries: ManifestEntry[];
}

let fx: Fixture;
let mbr: SampleManifest;
let work: string;
let server: RunningServer;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  fx = serverFixture();
  mbr = JSON.parse(readFileSync(join(SAMPLES, 'mbr.manifest.json'), 'utf8')) as SampleManifest;
  work = mkdtempSync(join(tmpdir(), 'loopless-e2e-'));
  mkdirSync(OUTPUT, { recursive: true });
  // The page as `npm run build` makes it, built here so the test does not depend on a stale dist/.
  const web = join(work, 'web');
  execFileSync(process.execPath, [join(ROOT, 'web', 'build.mjs'), web]);
  const usersFile = join(work, 'users.json');
  await writeUsers(usersFile, { version: 1, users: { helpdesk: { hash: await hashPassword(PASSWORD), folders: null } } });
  // An image with one damaged entry (its inode marked free while its name stays), in a folder of its own.
  const damaged = join(work, 'damaged');
  mkdirSync(join(damaged, 'tree'), { recursive: true });
  writeFileSync(join(damaged, 'tree', 'kept.txt'), 'kept\n');
  writeFileSync(join(damaged, 'tree', 'ghost.txt'), 'gone\n');
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', join(damaged, 'tree'), join(damaged, 'ghost.img'), '4M']);
  execFileSync('debugfs', ['-w', '-R', 'sif /ghost.txt mode 0', join(damaged, 'ghost.img')], { stdio: 'ignore' });
  rmSync(join(damaged, 'tree'), { recursive: true });
  server = await startServer({ folders: [SAMPLES, fx.served, damaged], port: 0, requireLogin: true, usersFile, audit: join(work, 'audit.log'), webRoot: web });
  context = await chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 860 },
    acceptDownloads: true,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);
});

afterAll(async () => {
  await context?.close();
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

function sampleEntry(path: string): ManifestEntry {
  const e = mbr.entries.find((m) => m.path === path);
  if (!e) throw new Error(`not in mbr.manifest.json: ${path}`);
  return e;
}

const FIXTURE = 'served%2Fhelpdesk.img';

async function download(trigger: () => Promise<void>): Promise<{ file: string; name: string }> {
  const [dl] = await Promise.all([page.waitForEvent('download'), trigger()]);
  const file = join(work, `dl-${Date.now()}-${dl.suggestedFilename()}`);
  await dl.saveAs(file);
  return { file, name: dl.suggestedFilename() };
}

const errors: string[] = [];

/** expect.poll with room for a loaded machine (the default gives up after one second). */
function poll<T>(fn: () => Promise<T> | T) {
  return expect.poll(fn, { timeout: 15_000 });
}

describe('web explorer in Chromium', () => {
  it('logs in, opens a sample image, walks to a nested file, downloads it and its folder as zip', async () => {
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);

    // Login page (nothing else is reachable before it).
    await page.locator('#login-user').waitFor();
    await page.fill('#login-user', 'helpdesk');
    await page.fill('#login-password', 'wrong password');
    await page.keyboard.press('Enter');
    await poll(() => page.locator('.form-error').textContent()).toContain('Wrong user name or password');
    await page.fill('#login-password', PASSWORD);
    await page.keyboard.press('Enter');

    // Images: name, size, table, and a damaged image explained in words.
    const images = page.locator('table.images');
    await images.waitFor();
    const ids = await images.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id')));
    expect(ids).toEqual(expect.arrayContaining(['sample-images/mbr.img', 'sample-images/gpt.img', 'served/helpdesk.img', 'served/broken.img']));
    expect(await images.locator('tr[data-id="sample-images/mbr.img"]').textContent()).toMatch(/70\.0 MiB.*MBR.*ready/);
    expect(await images.locator('tr[data-id="served/broken.img"] .status').textContent()).toMatch(/Damaged: corrupt GPT/);
    await poll(() => page.locator('#who').textContent()).toContain('Logged in as helpdesk');

    // The partition layout of mbr.img, to scale, by keyboard: ↓ to the row, Enter.
    await images.locator('a.row-link').first().focus();
    const focused = () => page.evaluate<string | null>('document.activeElement && document.activeElement.textContent');
    for (let i = 0; i < 20 && (await focused()) !== 'sample-images/mbr.img'; i++) await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    const bar = page.locator('.layout-bar');
    await bar.waitFor();
    const segments = bar.locator('.segment');
    expect(await segments.count()).toBe(mbr.volumes.length);
    const barBox = (await bar.boundingBox())!;
    for (const [i, v] of mbr.volumes.entries()) {
      const box = (await segments.nth(i).boundingBox())!;
      expect(await segments.nth(i).getAttribute('title')).toContain(`${v.name} · ${v.fs}`);
      expect(await segments.nth(i).locator('.segment-name').textContent()).toBe(v.name);
      expect(Math.abs((box.x - barBox.x) / barBox.width - v.start / mbr.size), v.name).toBeLessThan(0.01);
      expect(Math.abs(box.width / barBox.width - v.size / mbr.size), v.name).toBeLessThan(0.01);
    }
    await page.screenshot({ path: join(OUTPUT, 'e2e-image-layout.png') });

    // Into the logical ext4 volume p5, then three folders down: by mouse, by mouse, by keyboard.
    await bar.locator('.segment', { hasText: 'p5 · ext4' }).click();
    await page.locator('nav.crumbs a[aria-current="page"]', { hasText: 'p5' }).waitFor();
    await page.locator('.vt-row a.entry-name', { hasText: /^home$/ }).click();
    await page.locator('nav.crumbs a[aria-current="page"]', { hasText: 'home' }).waitFor();
    await page.keyboard.press('/');
    await page.keyboard.type('an');
    await poll(() => page.locator('.toolbar .count').textContent()).toMatch(/^1 of \d+ entr/);
    await page.keyboard.press('Enter'); // to the list
    await page.keyboard.press('Enter'); // open the folder under the cursor
    await page.locator('nav.crumbs a[aria-current="page"]', { hasText: 'ana' }).waitFor();

    // Select the file, look at its details and preview, download it.
    const path = '/p5/home/ana/shared.txt';
    const want = sampleEntry(path);
    await page.locator('.vt-row', { hasText: 'shared.txt' }).click();
    const details = page.locator('aside.details');
    await details.locator('dl.meta').waitFor();
    expect(await details.locator('h2').textContent()).toBe('shared.txt');
    expect(await details.locator('dl.meta').textContent()).toContain(`${want.size} bytes`);
    await poll(() => details.locator('pre.text-preview').textContent()).not.toBe('loading…');
    await details.locator('button[data-action="sha256"]').click();
    await poll(() => details.locator('output.hash').textContent()).toBe(want.sha256);
    await page.screenshot({ path: join(OUTPUT, 'e2e-explorer.png') });
    const file = await download(() => details.locator('a[data-action="download"]').click());
    expect(file.name).toBe('shared.txt');
    expect(statSync(file.file).size).toBe(want.size);
    expect(sha256File(file.file)).toBe(want.sha256);
    const preview = await details.locator('pre.text-preview').textContent();
    expect(preview).toBe(readFileSync(file.file, 'utf8'));

    // Up to home by breadcrumb, and the whole folder as a zip.
    await page.locator('nav.crumbs a', { hasText: /^home$/ }).click();
    await page.locator('nav.crumbs a[aria-current="page"]', { hasText: 'home' }).waitFor();
    const zip = await download(() => page.locator('a[data-action="zip-folder"]').click());
    expect(zip.name).toBe('home.zip');
    const out = join(work, 'unzipped');
    unzip(zip.file, out);
    const under = mbr.entries.filter((m) => m.path.startsWith('/p5/home/'));
    expect(under.filter((m) => m.type === 'file').length).toBeGreaterThanOrEqual(2);
    for (const m of under) {
      const host = join(out, m.path.slice('/p5/'.length));
      if (m.type === 'file') {
        expect(sha256File(host), m.path).toBe(m.sha256);
        expect(statSync(host).mtime.toISOString(), m.path).toBe(m.mtime);
        expect(statSync(host).mode & 0o7777, m.path).toBe(m.mode);
      }
    }
    const listed = readdirSync(join(out, 'home'), { recursive: true }).map(String).sort();
    expect(listed).toEqual(under.map((m) => m.path.slice('/p5/home/'.length)).sort());
    expect(errors).toEqual([]);
  }, 180_000);

  it('keeps a 10,000-entry folder small in the page and reachable by keyboard', async () => {
    await page.goto(`${server.url}#/i/${FIXTURE}/p1/many`);
    await poll(() => page.locator('.toolbar .count').textContent()).toBe('10,000 entries');
    const rendered = await page.locator('.vt-row:not([hidden])').count();
    expect(rendered).toBeGreaterThan(10);
    expect(rendered).toBeLessThan(100);
    await page.locator('.vt-body').first().focus();
    await page.keyboard.press('End');
    await poll(() => page.locator('.vt-row.cursor').textContent()).toContain('file-09999.txt');
    // Names are sorted ascending at first; one click on the column title reverses them.
    await page.locator('.vt-header button.sort', { hasText: 'Name' }).click();
    await poll(() => page.locator('#vt-row-0').textContent()).toContain('file-09999.txt');
    expect(await page.locator('.vt-header [aria-sort="descending"]').textContent()).toContain('Name');
    await page.keyboard.press('Backspace');
    await page.locator('nav.crumbs a[aria-current="page"]', { hasText: 'p1' }).waitFor();
  }, 120_000);

  it('searches a volume with streamed results', async () => {
    await page.goto(`${server.url}#/i/${FIXTURE}/p1/docs`);
    await page.locator('nav.crumbs a[aria-current="page"]', { hasText: 'docs' }).waitFor();
    await page.locator('#search').fill('*.pdf');
    await page.keyboard.press('Enter');
    await poll(() => page.locator('.search-status').textContent()).toMatch(/1 match for “\*\.pdf” in \/p1/);
    expect(await page.locator('#vt-row-0').first().textContent()).toContain('/p1/docs/manual.pdf');
    await page.keyboard.press('Escape');
    await poll(() => page.locator('.search-status').count()).toBe(0);
  }, 60_000);

  it('previews images, PDF and text; HTML from an image is shown as text, never run', async () => {
    await page.goto(`${server.url}#/i/${FIXTURE}/p1/photos/cat.png`);
    const img = page.locator('.details .preview img');
    await img.waitFor();
    await poll(() => img.evaluate((el) => (el as unknown as { naturalWidth: number }).naturalWidth)).toBe(64);

    await page.goto(`${server.url}#/i/${FIXTURE}/p1/docs/manual.pdf`);
    const show = page.locator('.details .preview button', { hasText: 'Show PDF' });
    await show.waitFor();
    const [pdf] = await Promise.all([page.waitForResponse((r) => r.url().includes('/cat/p1/docs/manual.pdf')), show.click()]);
    expect(pdf.status()).toBe(200);
    expect(pdf.headers()['content-type']).toBe('application/pdf');
    await page.locator('.details iframe.pdf').waitFor();

    await page.locator('.vt-row', { hasText: 'page.html' }).click();
    await poll(() => page.locator('.details pre.text-preview').textContent()).toContain('<script>document.title="pwned"</script>');
    expect(await page.title()).not.toBe('pwned');
  }, 60_000);

  it('tells, in a folder, that damaged entries were left out, and the image page names them', async () => {
    await page.goto(`${server.url}#/i/damaged%2Fghost.img/fs`);
    const note = page.locator('[data-role="image-warnings"]');
    await poll(() => note.textContent()).toContain('this image has 1 warning (damaged records are left out of listings)');
    // Folders first; ghost.txt is not there.
    expect(await page.locator('.vt-row').allTextContents()).toEqual([expect.stringMatching(/^lost\+found/), expect.stringMatching(/^kept\.txt/)]);
    await note.locator('a').click();
    await poll(() => page.locator('p.warning').allTextContents()).toEqual([expect.stringMatching(/^Warning: fs: directory inode 2: entry "ghost\.txt" left out: corrupt ext inode \d+/)]);
    expect(errors).toEqual([]);
  }, 60_000);

  it('says in words why a volume cannot be read, and logs out', async () => {
    await page.goto(`${server.url}#/i/${FIXTURE}`);
    const segments = page.locator('.layout-bar .segment');
    await poll(() => segments.count()).toBe(3);
    expect(await segments.nth(1).getAttribute('class')).toContain('foreign');
    expect(await segments.nth(2).getAttribute('class')).toContain('damaged');
    expect(await page.locator('table.volumes').textContent()).toContain('Loopless cannot read xfs');
    await page.goto(`${server.url}#/i/${FIXTURE}/p3`);
    await poll(() => page.locator('.error-box strong').textContent()).toBe('This part of the image is damaged and cannot be read.');
    await page.goto(`${server.url}#/i/${FIXTURE}/p2`);
    await poll(() => page.locator('.error-box strong').textContent()).toBe('Loopless cannot read this kind of filesystem.');
    await page.screenshot({ path: join(OUTPUT, 'e2e-unsupported.png') });
    await page.locator('#who button', { hasText: 'Log out' }).click();
    await page.locator('#login-user').waitFor();
    const status = await page.evaluate(async () => (await fetch('/api/images')).status);
    expect(status).toBe(401);
    expect(errors).toEqual([]);
  }, 60_000);
});
