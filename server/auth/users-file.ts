import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * The users file: who may log in to `loopless serve`, with a scrypt hash and
 * optionally the image folders they are limited to. JSON, mode 0600:
 *
 *   {"version":1,"users":{"ana":{"hash":"scrypt$...","folders":["/srv/images/laptops"]}}}
 *
 * `folders` absent or null: every served image. Folders are absolute, resolved paths.
 */
export interface UserRecord {
  hash: string;
  folders: string[] | null;
}

export interface UsersData {
  version: 1;
  users: Record<string, UserRecord>;
}

/** `--users FILE`, else $LOOPLESS_USERS, else $XDG_CONFIG_HOME/loopless/users.json (~/.config/...). */
export function defaultUsersFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LOOPLESS_USERS) return env.LOOPLESS_USERS;
  const config = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(config, 'loopless', 'users.json');
}

const NAME_RULE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export function checkUserName(name: string): void {
  if (!NAME_RULE.test(name)) throw new Error(`invalid user name "${name}": use 1-64 letters, digits, ".", "_", "@" or "-", starting with a letter or digit`);
}

export async function readUsers(file: string): Promise<UsersData> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, users: {} };
    throw new Error(`${file}: cannot read the users file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error(`${file}: the users file is not valid JSON`);
  }
  const users = (data as UsersData | null)?.users;
  if (!users || typeof users !== 'object') throw new Error(`${file}: the users file has no "users" object`);
  const out: UsersData = { version: 1, users: {} };
  for (const [name, rec] of Object.entries(users)) {
    if (!NAME_RULE.test(name) || typeof rec?.hash !== 'string') throw new Error(`${file}: bad entry for user "${name}"`);
    const folders = Array.isArray(rec.folders) ? rec.folders.filter((f): f is string => typeof f === 'string') : null;
    out.users[name] = { hash: rec.hash, folders };
  }
  return out;
}

/** Written to a temporary name and renamed into place, so a reader never sees half a file. */
export async function writeUsers(file: string, data: UsersData): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, file);
}

/**
 * The users file as the server sees it: re-read when it changes on disk, so
 * `loopless user add/remove` takes effect without a restart (removing a user
 * ends their sessions at their next request).
 */
export class UsersSource {
  private data: UsersData = { version: 1, users: {} };
  private stamp = '';
  private checkedAt = 0;

  constructor(readonly file: string) {}

  async current(): Promise<UsersData> {
    if (Date.now() - this.checkedAt < 1000) return this.data;
    this.checkedAt = Date.now();
    let stamp = 'missing';
    try {
      const st = await stat(this.file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      // no file: no users
    }
    if (stamp !== this.stamp) {
      this.data = stamp === 'missing' ? { version: 1, users: {} } : await readUsers(this.file);
      this.stamp = stamp;
    }
    return this.data;
  }

  async user(name: string): Promise<UserRecord | null> {
    const users = (await this.current()).users;
    return Object.hasOwn(users, name) ? users[name] : null;
  }
}
