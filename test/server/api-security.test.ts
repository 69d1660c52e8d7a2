import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../server/auth/passwords.js';
import { writeUsers } from '../../server/auth/users-file.js';
import { ServeConfigError, startServer, type RunningServer } from '../../server/index.js';
import { serverFixture, type Fixture } from './fixture.js';
import { eventually, rawGet, type RawResponse } from './helpers.js';

let fx: Fixture;
let work: string;
let usersFile: string;
let auditFile: string;
let open: RunningServer;
let locked: RunningServer;
const PASSWORD = 'correct horse battery';

beforeAll(async () => {
  fx = serverFixture();
  work = mkdtempSync(join(tmpdir(), 'loopless-api-security-'));
  usersFile = join(work, 'users.json');
  auditFile = join(work, 'audit.log');
  await writeUsers(usersFile, {
    version: 1,
    users: {
      helpdesk: { hash: await hashPassword(PASSWORD), folders: null },
      ana: { hash: await hashPassword(PASSWORD), folders: [join(fx.served, 'laptops')] },
      guesser: { hash: await hashPassword(PASSWORD), folders: null },
    },
  });
  open = await startServer({ folders: [fx.served], port: 0, audit: join(work, 'open-audit.log'), usersFile });
  // Behind a trusted proxy on loopback, as a TLS-terminating nginx would be.
  locked = await startServer({ folders: [fx.served], port: 0, requireLogin: true, usersFile, audit: auditFile, trustProxy: 'loopback' });
});

afterAll(async () => {
  await open?.close();
  await locked?.close();
  rmSync(work, { recursive: true, force: true });
});

/** Nothing from outside the served folder may ever come back. */
function expectNothingLeaked(r: RawResponse): void {
  expect(r.text).not.toContain('root:x:0:0');
  expect(r.text).not.toContain('top secret');
  expect(r.body.includes(readFileSync(join(fx.outside, 'secret.img')).subarray(0, 64))).toBe(false);
}

describe('traversal', () => {
  const attempts: [string, number[]][] = [
    ['/api/images/..%2Foutside%2Fsecret.img', [400]],
    ['/api/images/%2e%2e%2Foutside%2Fsecret.img/cat/fs/x', [400]],
    ['/api/images/%252e%252e%252Foutside%252Fsecret.img', [404]],
    ['/api/images/..', [400]],
    ['/api/images/../../../etc/passwd', [400]],
    ['/api/images/%2Fetc%2Fpasswd', [400]],
    ['/api/images/%2F..%2F..%2Fetc%2Fpasswd/cat/p1', [400]],
    ['/api/images/C%3A%5Cwindows', [400]],
    ['/api/images/helpdesk.img%00.txt', [400]],
    ['/api/images/helpdesk.img/cat/p1/docs%00/x', [400]],
    ['/api/images/helpdesk.img/cat/p1/../../../../etc/passwd', [400]],
    ['/api/images/helpdesk.img/cat/p1/%2e%2e/%2e%2e/%2e%2e/etc/passwd', [400]],
    ['/api/images/helpdesk.img/cat/p1/%252e%252e/%252e%252e/etc/passwd', [404]],
    ['/api/images/helpdesk.img/cat/p1/..%2F..%2Fetc%2Fpasswd', [400]],
    ['/api/images/helpdesk.img/cat/p1/..%5C..%5Cetc%5Cpasswd', [404]],
    ['/api/images/helpdesk.img/cat/%2Fetc%2Fpasswd', [400]],
    ['/api/images/helpdesk.img/cat/etc/passwd', [404]],
    ['/api/images/helpdesk.img/cat/p1/links/escape', [404]],
    ['/api/images/helpdesk.img/cat/p1/links/abs-passwd', [404]],
    ['/api/images/helpdesk.img/zip/p1/links/escape', [404]],
    ['/api/images/helpdesk.img/ls/p1/links/escape/', [200]], // lists the link itself, as `ls` does
    ['/api/images/helpdesk.img/search?q=passwd&in=/p1/../../../etc', [400]],
    ['/api/images/helpdesk.img/search?q=x&in=%00', [400]],
    ['/api/images/helpdesk.img/cat/p1/%E0%A4%A', [400]],
    ['/api/images/escape.img', [404]],
    ['/api/images/escape.img/cat/fs/x', [404]],
    ['/api/images/link.img', [404]],
    ['/api/images/.hidden.img', [404]],
    ['/api/images/helpdesk.manifest.json', [404]],
    ['/api/images/outside%2Fsecret.img', [404]],
    ['/..%2F..%2F..%2Fetc%2Fpasswd', [404]],
    ['/%2e%2e/%2e%2e/%2e%2e/etc/passwd', [404]],
    ['/../../../../etc/passwd', [404]],
    ['/api/../../etc/passwd', [404]],
    ['/app.js/..%2F..%2F..%2Fpackage.json', [404]],
  ];

  it.each(attempts)('%s is refused', async (path, statuses) => {
    const r = await rawGet(open.url, path);
    expect(statuses, `${path} → ${r.status} ${r.text.slice(0, 200)}`).toContain(r.status);
    expectNothingLeaked(r);
    if (path.startsWith('/api/') && r.status >= 400) expect(JSON.parse(r.text)).toHaveProperty('error');
  });

  it('a symlink inside the image that points outside is shown, never followed to the host', async () => {
    const r = await rawGet(open.url, '/api/images/helpdesk.img/stat/p1/links/abs-passwd');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toMatchObject({ type: 'symlink', target: '/etc/passwd', targetPath: '/p1/etc/passwd', targetType: null });
  });

  it('the API is read-only', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const r = await rawGet(open.url, '/api/images/helpdesk.img/cat/p1/empty.txt', {}, method);
      expect(r.status).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
    }
    const unknown = await rawGet(open.url, '/api/images/helpdesk.img/rm/p1/empty.txt');
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.text).error).toMatch(/unknown action "rm"/);
    expect((await rawGet(open.url, '/api/nothing')).status).toBe(404);
  });

  it('without logins, only loopback host names are answered (DNS rebinding)', async () => {
    expect((await rawGet(open.url, '/api/images', { Host: 'evil.example:8080' })).status).toBe(403);
    expect((await rawGet(open.url, '/', { Host: 'attacker.test' })).status).toBe(403);
    expect((await rawGet(open.url, '/api/images', { Host: `localhost:${open.port}` })).status).toBe(200);
    expect((await rawGet(open.url, '/api/images', { Host: `127.0.0.1:${open.port}` })).status).toBe(200);
  });

  it('sends protective headers with the page', async () => {
    const r = await rawGet(open.url, '/api/images');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(r.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(r.headers['x-powered-by']).toBeUndefined();
  });
});

async function login(user: string, password: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawGet(locked.url, '/api/login', { 'Content-Type': 'application/json', ...headers }, 'POST', JSON.stringify({ user, password }));
}

function cookieOf(r: RawResponse): string {
  const set = r.headers['set-cookie']?.[0];
  if (!set) throw new Error('no cookie set');
  return set.split(';')[0];
}

describe('logins', () => {
  it('a public address refuses to start without users, and says how to add one', async () => {
    const empty = join(work, 'empty-users.json');
    await expect(startServer({ folders: [fx.served], host: '0.0.0.0', port: 0, usersFile: empty, audit: join(work, 'x.log') })).rejects.toThrow(ServeConfigError);
    await expect(startServer({ folders: [fx.served], host: '0.0.0.0', port: 0, usersFile: empty, audit: join(work, 'x.log') })).rejects.toThrow(/loopless user add NAME/);
    await expect(startServer({ folders: [fx.served], port: 0, requireLogin: true, usersFile: empty, audit: join(work, 'x.log') })).rejects.toThrow(/--require-login needs at least one user/);
  });

  it('a public address with users requires a login', async () => {
    const pub = await startServer({ folders: [fx.served], host: '0.0.0.0', port: 0, usersFile, audit: join(work, 'pub.log') });
    try {
      expect(pub.loginRequired).toBe(true);
      expect((await rawGet(pub.url, '/api/images')).status).toBe(401);
      const session = JSON.parse((await rawGet(pub.url, '/api/session')).text);
      expect(session).toEqual({ loginRequired: true, user: null });
    } finally {
      await pub.close();
    }
  });

  it('every API route answers 401 before login; the page itself loads', async () => {
    for (const path of ['/api/images', '/api/images/helpdesk.img', '/api/images/helpdesk.img/ls/p1', '/api/images/helpdesk.img/cat/p1/empty.txt', '/api/images/helpdesk.img/zip/p1/docs', '/api/images/helpdesk.img/search?q=a', '/api/images/helpdesk.img/stat/p1', '/api/images/helpdesk.img/sha256/p1/empty.txt', '/api/images/..%2F']) {
      const r = await rawGet(locked.url, path);
      expect(r.status, path).toBe(401);
      expect(JSON.parse(r.text)).toEqual({ error: 'log in first' });
    }
    expect(JSON.parse((await rawGet(locked.url, '/api/session')).text)).toEqual({ loginRequired: true, user: null });
  });

  it('logs in with a session cookie that is HttpOnly and SameSite=Strict, and logs out', async () => {
    const bad = await login('helpdesk', 'wrong password');
    expect(bad.status).toBe(401);
    expect(JSON.parse(bad.text)).toEqual({ error: 'wrong user name or password' });
    expect(bad.headers['set-cookie']).toBeUndefined();
    expect((await login('nobody', PASSWORD)).status).toBe(401);

    const ok = await login('helpdesk', PASSWORD);
    expect(ok.status).toBe(200);
    const set = ok.headers['set-cookie']![0];
    expect(set).toMatch(/^loopless_session=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict$/); // plain HTTP: no Secure
    const cookie = cookieOf(ok);
    expect(JSON.parse((await rawGet(locked.url, '/api/session', { Cookie: cookie })).text)).toEqual({ loginRequired: true, user: 'helpdesk' });
    const list = await rawGet(locked.url, '/api/images', { Cookie: cookie });
    expect(list.status).toBe(200);
    expect(JSON.parse(list.text).map((i: { id: string }) => i.id)).toEqual(['broken.img', 'helpdesk.img', 'laptops/ana.img']);

    const out = await rawGet(locked.url, '/api/logout', { Cookie: cookie }, 'POST');
    expect(out.status).toBe(204);
    expect(out.headers['set-cookie']![0]).toMatch(/^loopless_session=; .*Max-Age=0/);
    expect((await rawGet(locked.url, '/api/images', { Cookie: cookie })).status).toBe(401);
    expect((await rawGet(locked.url, '/api/images', { Cookie: 'loopless_session=forged' })).status).toBe(401);
  });

  it('marks the cookie Secure behind TLS (X-Forwarded-Proto from the trusted proxy)', async () => {
    const ok = await login('helpdesk', PASSWORD, { 'X-Forwarded-Proto': 'https' });
    expect(ok.headers['set-cookie']![0]).toMatch(/; Secure$/);
  });

  it('serves HTTPS itself with --tls-cert/--tls-key, and the cookie is Secure', async () => {
    const cert = join(work, 'cert.pem');
    const key = join(work, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    const tls = await startServer({ folders: [fx.served], host: '0.0.0.0', port: 0, usersFile, audit: join(work, 'tls.log'), tls: { cert, key } });
    try {
      expect(tls.url).toMatch(/^https:\/\/localhost:\d+\/$/);
      const r = await new Promise<{ status: number; cookie: string }>((resolve, reject) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port: tls.port, path: '/api/login', method: 'POST', rejectUnauthorized: false, headers: { 'Content-Type': 'application/json' } },
          (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, cookie: res.headers['set-cookie']?.[0] ?? '' }));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ user: 'helpdesk', password: PASSWORD }));
      });
      expect(r.status).toBe(200);
      expect(r.cookie).toMatch(/; HttpOnly; SameSite=Strict; Secure$/);
    } finally {
      await tls.close();
    }
  });

  it('ignores X-Forwarded-Proto when no proxy is trusted', async () => {
    const plain = await startServer({ folders: [fx.served], port: 0, requireLogin: true, usersFile, audit: join(work, 'plain.log') });
    try {
      const r = await rawGet(plain.url, '/api/login', { 'Content-Type': 'application/json', 'X-Forwarded-Proto': 'https' }, 'POST', JSON.stringify({ user: 'helpdesk', password: PASSWORD }));
      expect(r.status).toBe(200);
      expect(r.headers['set-cookie']![0]).not.toMatch(/Secure/);
    } finally {
      await plain.close();
    }
  });

  it('refuses logins that are not JSON or come from another site', async () => {
    const form = await rawGet(locked.url, '/api/login', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'POST', `user=helpdesk&password=${PASSWORD}`);
    expect(form.status).toBe(400);
    expect((await login('helpdesk', PASSWORD, { Origin: 'https://evil.example' })).status).toBe(403);
    const broken = await rawGet(locked.url, '/api/login', { 'Content-Type': 'application/json' }, 'POST', '{"user": ');
    expect(broken.status).toBe(400);
    expect(JSON.parse(broken.text)).toHaveProperty('error');
  });

  it('limits failed logins per user name (429 with Retry-After), even for the right password afterwards', async () => {
    for (let i = 0; i < 5; i++) expect((await login('guesser', `wrong-${i}`)).status).toBe(401);
    const blocked = await login('guesser', PASSWORD);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect(JSON.parse(blocked.text).error).toMatch(/too many failed logins/);
    // Another user from the same address is not locked out by this.
    expect((await login('helpdesk', PASSWORD)).status).toBe(200);
  });

  it('limits a user to their image folders: others are neither listed nor opened (403)', async () => {
    const cookie = cookieOf(await login('ana', PASSWORD));
    const list = JSON.parse((await rawGet(locked.url, '/api/images', { Cookie: cookie })).text) as { id: string }[];
    expect(list.map((i) => i.id)).toEqual(['laptops/ana.img']);
    expect((await rawGet(locked.url, '/api/images/laptops%2Fana.img/cat/fs/Desktop/todo.txt', { Cookie: cookie })).text).toBe('call the helpdesk\n');
    for (const path of ['/api/images/helpdesk.img', '/api/images/helpdesk.img/cat/p1/docs/reports/2024/notes.txt', '/api/images/helpdesk.img/zip/p1/docs', '/api/images/broken.img/ls/']) {
      const r = await rawGet(locked.url, path, { Cookie: cookie });
      expect(r.status, path).toBe(403);
      expect(JSON.parse(r.text).error).toMatch(/ana may not open/);
    }
  });

  it('audits downloads and zips with the user, and logins', async () => {
    const cookie = cookieOf(await login('helpdesk', PASSWORD));
    await rawGet(locked.url, '/api/images/helpdesk.img/cat/p1/docs/reports/2024/notes.txt?download=1', { Cookie: cookie });
    await rawGet(locked.url, '/api/images/helpdesk.img/zip/p1/docs/reports', { Cookie: cookie });
    let lines: Record<string, unknown>[] = [];
    await eventually(() => {
      lines = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      return lines.some((l) => l.event === 'zip');
    });
    expect(lines.find((l) => l.event === 'download' && l.path === '/p1/docs/reports/2024/notes.txt')).toMatchObject({ user: 'helpdesk', image: 'helpdesk.img', bytes: 31, complete: true });
    expect(lines.find((l) => l.event === 'zip')).toMatchObject({ user: 'helpdesk', image: 'helpdesk.img', path: '/p1/docs/reports', files: 3, complete: true });
    expect(lines.some((l) => l.event === 'login-failed' && l.user === 'guesser')).toBe(true);
    expect(lines.some((l) => l.event === 'login' && l.user === 'ana')).toBe(true);
    for (const l of lines) expect(typeof l.time).toBe('string');
  });

  it('a user removed from the users file loses access at the next request', async () => {
    const cookie = cookieOf(await login('helpdesk', PASSWORD));
    expect((await rawGet(locked.url, '/api/images', { Cookie: cookie })).status).toBe(200);
    const data = JSON.parse(readFileSync(usersFile, 'utf8'));
    delete data.users.helpdesk;
    await writeUsers(usersFile, data);
    await new Promise((r) => setTimeout(r, 1100)); // the users file is re-checked at most once a second
    expect((await rawGet(locked.url, '/api/images', { Cookie: cookie })).status).toBe(401);
  });
});
