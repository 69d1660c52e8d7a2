import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Run a tool, return stdout; throws with stderr on failure. */
export function run(cmd: string, args: string[], options: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {}): string {
  return execFileSync(cmd, args, { input: options.input, env: options.env ?? process.env, cwd: options.cwd, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(prefix = 'loopless-test-'): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Run the built CLI (npm test builds first). */
export function cli(args: string[], options: { input?: Buffer; encoding?: 'buffer' } = {}): { status: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'loopless.js'), ...args], {
    input: options.input,
    maxBuffer: 2 * 1024 * 1024 * 1024,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}
