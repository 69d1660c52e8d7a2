import type { Command } from 'commander';
import { hashPassword } from '../../server/auth/passwords.js';
import { realFolder } from '../../server/catalog.js';
import { checkUserName, defaultUsersFile, readUsers, writeUsers, type UsersData } from '../../server/auth/users-file.js';
import { EXIT } from '../exit.js';

const MIN_PASSWORD = 8;

/** Read a line from the terminal without echoing it. */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let value = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (error?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new Error('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

async function readStdinLine(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return text.split(/\r?\n/)[0];
}

async function askPassword(name: string): Promise<string> {
  let password: string;
  if (process.stdin.isTTY) {
    password = await promptHidden(`Password for ${name}: `);
    const again = await promptHidden('Same password again: ');
    if (again !== password) throw new Error('the two passwords differ; nothing changed');
  } else {
    password = await readStdinLine(); // scripts: `echo "$PW" | loopless user add ana`
  }
  if (password.length < MIN_PASSWORD) throw new Error(`the password needs at least ${MIN_PASSWORD} characters`);
  return password;
}

async function resolveFolders(folders: string[]): Promise<string[] | null> {
  if (!folders.length) return null;
  const out: string[] = [];
  for (const f of folders) out.push(await realFolder(f));
  return out;
}

function fail(message: string, code: number = EXIT.error): never {
  process.stderr.write(`loopless: ${message}\n`);
  process.exit(code);
}

/** Run one subcommand on the users file (--users, else the default); any error ends it with a one-line message. */
async function onUsersFile(users: string | undefined, fn: (file: string) => Promise<void>): Promise<void> {
  const file = users ?? defaultUsersFile();
  try {
    await fn(file);
  } catch (e) {
    fail((e as Error).message);
  }
}

/** The users file's entries, after checking that `name` is one of them. */
async function usersWith(name: string, file: string): Promise<UsersData> {
  const data = await readUsers(file);
  if (!Object.hasOwn(data.users, name)) fail(`no user ${name} in ${file}`, EXIT.notFound);
  return data;
}

export function register(program: Command): void {
  const user = program
    .command('user')
    .description('manage who may log in to `loopless serve`')
    .addHelpText(
      'after',
      `
The users file holds a scrypt hash per user and, optionally, the image folders each user
is limited to. Default: $LOOPLESS_USERS, else ~/.config/loopless/users.json
($XDG_CONFIG_HOME/loopless/users.json); choose another with --users FILE here and in serve.
The password is asked twice on a terminal, or read from the first line of standard input.`,
    );
  const usersOption = ['--users <file>', 'users file (default: $LOOPLESS_USERS, else ~/.config/loopless/users.json)'] as const;

  user
    .command('add')
    .description('add a user (asks for the password)')
    .argument('<name>', 'user name')
    .option('--folder <dir...>', 'limit the user to images below these folders (default: all served images)')
    .option('--force', 'replace an existing user')
    .option(...usersOption)
    .action((name: string, opts: { folder?: string[]; force?: boolean; users?: string }) =>
      onUsersFile(opts.users, async (file) => {
        checkUserName(name);
        const data = await readUsers(file);
        if (Object.hasOwn(data.users, name) && !opts.force) fail(`user ${name} exists in ${file} (use --force to replace, or \`loopless user passwd\`)`, EXIT.exists);
        const folders = await resolveFolders(opts.folder ?? []);
        const hash = await hashPassword(await askPassword(name));
        data.users[name] = { hash, folders };
        await writeUsers(file, data);
        process.stderr.write(`user ${name} saved in ${file}${folders ? ` (limited to ${folders.join(', ')})` : ''}\n`);
      }),
    );

  user
    .command('passwd')
    .description("change a user's password")
    .argument('<name>', 'user name')
    .option(...usersOption)
    .action((name: string, opts: { users?: string }) =>
      onUsersFile(opts.users, async (file) => {
        const data = await usersWith(name, file);
        data.users[name].hash = await hashPassword(await askPassword(name));
        await writeUsers(file, data);
        process.stderr.write(`password of ${name} changed\n`);
      }),
    );

  user
    .command('remove')
    .description('remove a user (their sessions end at their next request)')
    .argument('<name>', 'user name')
    .option(...usersOption)
    .action((name: string, opts: { users?: string }) =>
      onUsersFile(opts.users, async (file) => {
        const data = await usersWith(name, file);
        delete data.users[name];
        await writeUsers(file, data);
        process.stderr.write(`user ${name} removed from ${file}\n`);
      }),
    );

  user
    .command('list')
    .description('list the users and their folders')
    .option('--json', 'print one JSON array')
    .option(...usersOption)
    .action((opts: { json?: boolean; users?: string }) =>
      onUsersFile(opts.users, async (file) => {
        const data = await readUsers(file);
        const rows = Object.entries(data.users).map(([name, u]) => ({ name, folders: u.folders }));
        if (opts.json) process.stdout.write(JSON.stringify(rows) + '\n');
        else if (!rows.length) process.stderr.write(`no users in ${file}\n`);
        else for (const r of rows) process.stdout.write(`${r.name}\t${r.folders ? r.folders.join(', ') : '(all images)'}\n`);
      }),
    );
}
