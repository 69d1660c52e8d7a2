/**
 * `loopless mount` returns once the mount is live, leaving a process behind
 * that serves it. The parent starts the same command again with
 * `--foreground --ready-fd 3`, detached (own session, stdout and stderr in the
 * log file), and waits on that extra pipe for one line: the mount is live, or
 * why it failed. No readiness polling, and the failure reaches the user's
 * terminal with its exit code.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { oneLine } from '../parsers/errors.js';

/** How long the parent waits for a mount to come up before giving up on it. */
const READY_TIMEOUT_MS = 60_000;

export type ReadyMessage = { ok: true; pid: number } | { ok: false; message: string; exitCode: number };

/** Default log of a background mount: ~/.local/state/loopless/mount-<mountpoint>.log. */
export function defaultLogPath(mountpoint: string): string {
  const stateHome = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  const slug = mountpoint.replace(/^\/+/, '').replace(/[^A-Za-z0-9._-]+/g, '-') || 'root';
  return join(stateHome, 'loopless', `mount-${slug}.log`);
}

/** Start `node <cli> ...args --foreground --ready-fd 3` detached, and wait for its one line. */
export async function startInBackground(args: string[], logPath: string): Promise<ReadyMessage> {
  mkdirSync(dirname(logPath), { recursive: true });
  const logFd = openSync(logPath, 'a');
  const child = spawn(process.execPath, [...process.execArgv, resolve(process.argv[1]), ...args, '--foreground', '--ready-fd', '3'], {
    detached: true,
    // Like any daemon: do not pin the caller's working directory (it could not be unmounted). Paths are absolute.
    cwd: '/',
    stdio: ['ignore', logFd, logFd, 'pipe'],
  });
  closeSync(logFd);
  const pipe = child.stdio[3] as Readable;
  const exited = new Promise<number>((done) => child.once('exit', (code, signal) => done(code ?? (signal ? 128 : 1))));

  const line = await new Promise<string>((done) => {
    let text = '';
    const timer = setTimeout(() => done(''), READY_TIMEOUT_MS);
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => (text += d));
    pipe.on('error', () => {});
    pipe.on('close', () => {
      clearTimeout(timer);
      done(text.split('\n')[0]);
    });
  });
  let message: ReadyMessage | null = null;
  try {
    message = line ? (JSON.parse(line) as ReadyMessage) : null;
  } catch {
    // not our message: treated as no message
  }
  if (message?.ok) {
    // The mount lives on in the child; we only leave.
    pipe.destroy();
    child.unref();
    return message;
  }
  if (message) {
    await exited;
    return message;
  }
  if (child.exitCode === null) child.kill('SIGTERM');
  const code = await exited;
  return { ok: false, message: `the mount process ended without mounting (exit ${code}); see ${logPath}`, exitCode: code || 1 };
}

/** Child side: say the mount is live, then let go of the pipe so the parent can exit. */
export function reportReady(fd: number): void {
  sendLine(fd, { ok: true, pid: process.pid });
}

export function reportFailure(fd: number, e: unknown, exitCode: number): void {
  sendLine(fd, { ok: false, message: oneLine(e), exitCode });
}

function sendLine(fd: number, message: ReadyMessage): void {
  try {
    writeSync(fd, JSON.stringify(message) + '\n');
    closeSync(fd);
  } catch {
    // The parent is gone (killed while waiting): nothing to tell.
  }
}
