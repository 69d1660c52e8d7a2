import { InvalidArgumentError } from '../errors.js';

/**
 * Paths inside an image: "/" is the list of volumes, "/p2" a volume's root,
 * "/p2/etc/passwd" a file. Lexical normalization only: "." dropped, ".."
 * pops (never above "/"), repeated slashes folded. NUL bytes are refused.
 */
export function splitPath(path: string): string[] {
  if (path.includes('\0')) throw new InvalidArgumentError('path contains a NUL byte');
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return parts;
}

export function joinPath(parts: readonly string[]): string {
  return '/' + parts.join('/');
}

export function normalizePath(path: string): string {
  return joinPath(splitPath(path));
}

export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

export function baseName(path: string): string {
  const parts = splitPath(path);
  return parts.length ? parts[parts.length - 1] : '';
}
