import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverFixture, type Fixture } from './fixture.js';
import { eventually, rawGet } from './helpers.js';

/** `loopless serve` and `loopless user` as installed: the compiled CLI (npm test builds it first). */
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'loopless.js');

let fx: Fixture;
let work: string;
let users: string;

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { input, encoding: 'utf8', env: { ...process.env, LOOPLESS_USERS: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  if (!existsSync(join(import.meta.dirname, '..', '..', 'dist', 'cli', 'commands', 'serve.js'))) throw new Error('dist/ is not built: run `npm run build` first');
  fx = serverFixture();
  work = mkdtempSync(join(tmpdir(), 'loopless-cli-serve-'));
  users = join(work, 'conf', 'users.json');
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('loopless user', () => {
  it('adds users with a scrypt hash in a 0600 file, refuses duplicates and short passwords, lists and removes', () => {
    const add = cli(['user', 'add', 'ana', '--users', users], 'a long enough password\n');
    expect(add.code, add.stderr).toBe(0);
    expect(add.stderr).toContain(`user ana saved in ${users}`);
    expect(statSync(users).mode & 0o777).toBe(0o600);
    const data = JSON.parse(readFileSync(users, 'utf8'));
    expect(data.users.ana.hash).toMatch(/^scrypt\$ln=15,r=8,p=1\$/);
    expect(readFileSync(users, 'utf8')).not.toContain('a long enough password');

    expect(cli(['user', 'add', 'ana', '--users', users], 'another password\n').code).toBe(6);
    const short = cli(['user', 'add', 'bob', '--users', users], 'short\n');
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(/at least 8 characters/);
    expect(cli(['user', 'add', '../evil', '--users', users], 'a long enough password\n').code).toBe(1);
    expect(cli(['user', 'add', 'bob', '--folder', join(work, 'nope'), '--users', users], 'a long enough password\n').stderr).toMatch(/no such folder/);

    expect(cli(['user', 'add', 'bob', '--folder', join(fx.served, 'laptops'), '--users', users], 'bob password 123\n').code).toBe(0);
    const list = JSON.parse(cli(['user', 'list', '--json', '--users', users]).stdout);
    expect(list).toEqual([
      { name: 'ana', folders: null },
      { name: 'bob', folders: [join(fx.served, 'laptops')] },
    ]);
    const passwd = cli(['user', 'passwd', 'bob', '--users', users], 'new bob password\n');
    expect(passwd.code, passwd.stderr).toBe(0);
    expect(cli(['user', 'remove', 'nobody', '--users', users]).code).toBe(3);
    expect(cli(['user', 'remove', 'bob', '--users', users]).code).toBe(0);
    expect(JSON.parse(cli(['user', 'list', '--json', '--users', users]).stdout)).toEqual([{ name: 'ana', folders: null }]);
  });
});

function serve(args: string[]): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not print its URL: ${out}`)), 30_000);
    child.stdout!.on('data', () => {
      const m = /(https?:\/\/[^\s]+\/)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1], output: () => out });
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}`)));
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.on('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}

describe('loopless serve', () => {
  it('serves on 127.0.0.1 without login by default, prints the URL, stops cleanly on SIGTERM', async () => {
    const s = await serve([fx.served, '--port', '0']);
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(s.output()).toContain('no login (only this machine can connect)');
    expect(JSON.parse((await rawGet(s.url, '/api/session')).text)).toEqual({ loginRequired: false, user: null });
    expect((await rawGet(s.url, '/api/images/helpdesk.img/cat/p1/docs/reports/2024/notes.txt')).status).toBe(200);
    // The API answers with exactly what the CLI prints.
    const img = join(fx.served, 'helpdesk.img');
    expect(JSON.parse((await rawGet(s.url, '/api/images/helpdesk.img')).text)).toEqual(JSON.parse(cli(['info', img, '--json']).stdout));
    for (const dir of ['/', '/p1', '/p1/links', '/p1/docs/reports/2024']) {
      const api = JSON.parse((await rawGet(s.url, `/api/images/helpdesk.img/ls${dir}`)).text);
      expect(api, dir).toEqual(JSON.parse(cli(['ls', img, dir, '--json']).stdout));
    }
    const recursive = JSON.parse((await rawGet(s.url, '/api/images/helpdesk.img/ls/p1/docs?recursive=1')).text);
    expect(recursive).toEqual(JSON.parse(cli(['ls', img, '/p1/docs', '-R', '--json']).stdout));
    const stat = JSON.parse((await rawGet(s.url, '/api/images/helpdesk.img/stat/p1/links/to-notes')).text);
    expect(stat).toMatchObject(JSON.parse(cli(['stat', img, '/p1/links/to-notes', '--json']).stdout));
    // The audit trail goes to standard output by default.
    await eventually(() => s.output().includes('"event":"download"'));
    expect(await stop(s.child)).toBe(0);
  });

  it('refuses a public address without users, in words', () => {
    const r = cli(['serve', fx.served, '--host', '0.0.0.0', '--port', '0', '--users', join(work, 'none.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/needs at least one user: run `loopless user add NAME`/);
    const bad = cli(['serve', join(work, 'no-such-folder')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no such folder/);
    expect(cli(['serve', '--port', '70000']).code).toBe(2);
  });

  it('with users on 0.0.0.0 asks for a login and writes the audit log to a file', async () => {
    const audit = join(work, 'audit.log');
    const s = await serve([fx.served, '--host', '0.0.0.0', '--port', '0', '--users', users, '--audit-log', audit]);
    try {
      expect(s.output()).toContain(`login required; users in ${users}`);
      expect((await rawGet(s.url, '/api/images')).status).toBe(401);
      const login = await rawGet(s.url, '/api/login', { 'Content-Type': 'application/json' }, 'POST', JSON.stringify({ user: 'ana', password: 'a long enough password' }));
      expect(login.status).toBe(200);
      const cookie = login.headers['set-cookie']![0].split(';')[0];
      expect((await rawGet(s.url, '/api/images/helpdesk.img/cat/p1/empty.txt', { Cookie: cookie })).status).toBe(200);
      await eventually(() => existsSync(audit) && readFileSync(audit, 'utf8').includes('"path":"/p1/empty.txt"'));
      expect(readFileSync(audit, 'utf8')).toContain('"user":"ana"');
    } finally {
      expect(await stop(s.child)).toBe(0);
    }
  });
});
