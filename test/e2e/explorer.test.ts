import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../server/auth/passwords.js';
import { writeUsers } from '../../server/auth/users-file.js';
import { startServer, type RunningServer } from '../../server/index.js';
import { serverFixture, type Fixture } from '../server/fixture.js';
import { sha256File, unzip } from '../server/helpers.js';

/**
 * The explorer in real headless Chromium, logged in as a helpdesk user: find a
 * file three folders down, download it, download its folder as a zip, and
 * compare both with the truth manifest of the image.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const OUTPUT = join(ROOT, 'test-output');
const PASSWORD = 'helpdesk password 1';

let fx: Fixture;
let work: string;
let server: RunningServer;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  fx = serverFixture();
  work = mkdtempSync(join(tmpdir(), 'loopless-e2e-'));
  mkdirSync(OUTPUT, { recursive: true });
  // The page as `npm run build` makes it, built here so the test does not depend on a stale dist/.
  const web = join(work, 'web');
  execFileSync(process.execPath, [join(ROOT, 'web', 'build.mjs'), web]);
  const usersFile = join(work, 'users.json');
  await writeUsers(usersFile, { version: 1, users: { helpdesk: { hash: await hashPassword(PASSWORD), folders: null } } });
  server = await startServer({ folders: [fx.served], port: 0, requireLogin: true, usersFile, audit: join(work, 'audit.log'), webRoot: web });
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

function manifestEntry(path: string) {
  const e = fx.manifest.find((m) => m.path === path);
  if (!e) throw new Error(`not in the manifest: ${path}`);
  return e;
}

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
  it('logs in, opens an image, walks to a nested file, downloads it and its folder as zip', async () => {
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
    expect(await images.locator('tbody tr').count()).toBe(3);
    expect(await images.locator('tr[data-id="helpdesk.img"]').textContent()).toMatch(/64\.0 MiB.*MBR.*ready/);
    expect(await images.locator('tr[data-id="broken.img"] .status').textContent()).toMatch(/Damaged: corrupt GPT/);
    await poll(() => page.locator('#who').textContent()).toContain('Logged in as helpdesk');

    // The partition layout, to scale.
    await images.getByRole('link', { name: 'helpdesk.img' }).click();
    const bar = page.locator('.layout-bar');
    await bar.waitFor();
    const segments = bar.locator('.segment');
    expect(await segments.count()).toBe(3);
    expect(await segments.nth(0).textContent()).toBe('p1 · ext4 · “helpdesk” · 40.0 MiB');
    expect(await segments.nth(1).getAttribute('class')).toContain('foreign');
    expect(await segments.nth(2).getAttribute('class')).toContain('damaged');
    const barBox = (await bar.boundingBox())!;
    const p1Box = (await segments.nth(0).boundingBox())!;
    expect(Math.abs(p1Box.width / barBox.width - 40 / 64)).toBeLessThan(0.01);
    expect(Math.abs((p1Box.x - barBox.x) / barBox.width - 1 / 64)).toBeLessThan(0.01);
    await page.screenshot({ path: join(OUTPUT, 'e2e-image-layout.png') });

    // Into p1, then down three folders: by mouse, by mouse, by keyboard (filter + Enter).
    await segments.nth(0).click();
    const table = page.locator('.vt').first();
    await table.locator('.vt-row a.entry-name', { hasText: /^docs$/ }).click();
    await page.locator('nav.crumbs a[aria-current="page"]', { hasText: 'docs' }).waitFor();
    await page.locator('.vt-row a.entry-name', { hasText: /^reports$/ }).click();
    await page.locator('nav.crumbs a[aria-current="page"]', { hasText: 'reports' }).waitFor();
    await page.keyboard.press('/');
    await page.keyboard.type('2024');
    await poll(() => page.locator('.toolbar .count').textContent()).toBe('1 of 2 entries');
    await page.keyboard.press('Enter'); // to the list
    await page.keyboard.press('Enter'); // open the folder under the cursor
    await page.locator('nav.crumbs a[aria-current="page"]', { hasText: '2024' }).waitFor();

    // Select the spreadsheet, look at its details, download it.
    await page.locator('.vt-row', { hasText: 'budget-q3.xlsx' }).click();
    const details = page.locator('aside.details');
    await details.locator('dl.meta').waitFor();
    expect(await details.locator('h2').textContent()).toBe('budget-q3.xlsx');
    expect(await details.locator('dl.meta').textContent()).toContain('300,000 bytes');
    await details.locator('button[data-action="sha256"]').click();
    const want = manifestEntry('/p1/docs/reports/2024/budget-q3.xlsx');
    await poll(() => details.locator('output.hash').textContent()).toBe(want.sha256);
    await page.screenshot({ path: join(OUTPUT, 'e2e-explorer.png') });
    const file = await download(() => details.locator('a[data-action="download"]').click());
    expect(file.name).toBe('budget-q3.xlsx');
    expect(statSync(file.file).size).toBe(want.size);
    expect(sha256File(file.file)).toBe(want.sha256);

    // Up to docs by breadcrumb, and the whole folder as a zip.
    await page.locator('nav.crumbs a', { hasText: /^docs$/ }).click();
    await page.locator('nav.crumbs a[aria-current="page"]', { hasText: 'docs' }).waitFor();
    const zip = await download(() => page.locator('a[data-action="zip-folder"]').click());
    expect(zip.name).toBe('docs.zip');
    const out = join(work, 'unzipped');
    unzip(zip.file, out);
    const inManifest = fx.manifest.filter((m) => m.path.startsWith('/p1/docs/') && m.type === 'file');
    expect(inManifest.length).toBe(6);
    for (const m of inManifest) {
      const host = join(out, m.path.slice('/p1/'.length));
      expect(sha256File(host), m.path).toBe(m.sha256);
      expect(statSync(host).mtime.toISOString(), m.path).toBe(m.mtime);
    }
    const listed = readdirSync(join(out, 'docs'), { recursive: true }).map(String).sort();
    const expected = fx.manifest.filter((m) => m.path.startsWith('/p1/docs/')).map((m) => m.path.slice('/p1/docs/'.length)).sort();
    expect(listed).toEqual(expected);
    expect(errors).toEqual([]);
  }, 180_000);

  it('keeps a 10,000-entry folder small in the page and reachable by keyboard', async () => {
    await page.goto(`${server.url}#/i/helpdesk.img/p1/many`);
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
    await page.goto(`${server.url}#/i/helpdesk.img/p1/docs`);
    await page.locator('nav.crumbs a[aria-current="page"]', { hasText: 'docs' }).waitFor();
    await page.locator('#search').fill('*.pdf');
    await page.keyboard.press('Enter');
    await poll(() => page.locator('.search-status').textContent()).toMatch(/1 match for “\*\.pdf” in \/p1/);
    expect(await page.locator('#vt-row-0').first().textContent()).toContain('/p1/docs/manual.pdf');
    await page.keyboard.press('Escape');
    await poll(() => page.locator('.search-status').count()).toBe(0);
  }, 60_000);

  it('says in words why a volume cannot be read, and logs out', async () => {
    await page.goto(`${server.url}#/i/helpdesk.img/p3`);
    await poll(() => page.locator('.error-box strong').textContent()).toBe('This part of the image is damaged and cannot be read.');
    await page.goto(`${server.url}#/i/helpdesk.img/p2`);
    await poll(() => page.locator('.error-box strong').textContent()).toBe('Loopless cannot read this kind of filesystem.');
    await page.screenshot({ path: join(OUTPUT, 'e2e-unsupported.png') });
    await page.locator('#who button', { hasText: 'Log out' }).click();
    await page.locator('#login-user').waitFor();
    const status = await page.evaluate(async () => (await fetch('/api/images')).status);
    expect(status).toBe(401);
    expect(errors).toEqual([]);
  }, 60_000);
});
