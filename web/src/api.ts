/**
 * The JSON API as the page uses it. The answers' types are the server's own,
 * imported as types only (esbuild erases them; no server code is bundled).
 */
import type { ImageSummary, SessionJson, StatAnswer } from '../../server/api-json.js';
import type { InfoJson, LsJson, VolumeJson } from '../../parsers/vfs/json.js';

export type { ImageSummary };
export type ImageInfo = InfoJson;
export type VolumeInfo = VolumeJson;
export type LsEntry = LsJson;
export type StatInfo = StatAnswer;
export type Session = SessionJson;

/** An API error with the server's words and the vfs code (CORRUPT, UNSUPPORTED ...). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null,
  ) {
    super(message);
  }
}

/** Called on 401 so the page can show the login form. */
let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

async function failure(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`;
  let code: string | null = null;
  try {
    const body = (await res.json()) as { error?: string; code?: string };
    if (body.error) message = body.error;
    code = body.code ?? null;
  } catch {
    // not JSON (a proxy's error page): keep the status line
  }
  if (res.status === 401) onUnauthorized();
  return new ApiError(res.status, message, code);
}

export async function getJson<T>(url: string, signal?: AbortSignal, onResponse?: (res: Response) => void): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { signal, headers: { Accept: 'application/json' } });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'the server cannot be reached (is `loopless serve` still running?)', null);
  }
  if (!res.ok) throw await failure(res);
  onResponse?.(res);
  return (await res.json()) as T;
}

export async function postJson<T>(url: string, body: unknown): Promise<T> {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) {
    const err = await failure(res);
    throw err;
  }
  return res.status === 204 ? (undefined as T) : ((await res.json()) as T);
}

function encodePath(path: string): string {
  return path
    .split('/')
    .filter(Boolean)
    .map((p) => encodeURIComponent(p))
    .join('/');
}

export function imageUrl(id: string, verb?: string, path = '/'): string {
  const base = `/api/images/${encodeURIComponent(id)}`;
  return verb ? `${base}/${verb}/${encodePath(path)}` : base;
}

export const api = {
  session: () => getJson<Session>('/api/session'),
  login: (user: string, password: string) => postJson<{ user: string }>('/api/login', { user, password }),
  logout: () => postJson<void>('/api/logout', {}),
  images: () => getJson<ImageSummary[]>('/api/images'),
  info: (id: string) => getJson<ImageInfo>(imageUrl(id)),
  ls: (id: string, path: string, signal?: AbortSignal) => getJson<LsEntry[]>(imageUrl(id, 'ls', path), signal),
  /** A folder's entries and how many warnings the image has (damaged records left out among them). */
  async lsWithWarnings(id: string, path: string, signal?: AbortSignal): Promise<{ entries: LsEntry[]; imageWarnings: number }> {
    let warnings = 0;
    const entries = await getJson<LsEntry[]>(imageUrl(id, 'ls', path), signal, (res) => {
      warnings = Number(res.headers.get('Loopless-Image-Warnings') ?? 0) || 0;
    });
    return { entries, imageWarnings: warnings };
  },
  stat: (id: string, path: string, signal?: AbortSignal) => getJson<StatInfo>(imageUrl(id, 'stat', path), signal),
  sha256: (id: string, path: string, signal?: AbortSignal) => getJson<{ sha256: string }>(imageUrl(id, 'sha256', path), signal),
  catUrl: (id: string, path: string, download = false) => imageUrl(id, 'cat', path) + (download ? '?download=1' : ''),
  zipUrl: (id: string, path: string) => imageUrl(id, 'zip', path),

  /** The first `bytes` of a file (a Range request), for text previews. */
  async head(id: string, path: string, bytes: number, signal?: AbortSignal): Promise<Uint8Array> {
    const res = await fetch(imageUrl(id, 'cat', path), { headers: { Range: `bytes=0-${bytes - 1}` }, signal });
    if (res.status === 416) return new Uint8Array(0); // empty file
    if (!res.ok) throw await failure(res);
    return new Uint8Array(await res.arrayBuffer());
  },
};

export type SearchLine =
  | ({ kind: 'entry' } & LsEntry)
  | { kind: 'progress'; scanned: number; path: string }
  | { kind: 'warning'; warning: string }
  | { kind: 'done'; matches: number; scanned: number; truncated: boolean };

/** Stream search results (NDJSON) as they come; abort the signal to cancel the search on the server too. */
export async function search(id: string, q: string, within: string, signal: AbortSignal, onLine: (line: SearchLine) => void): Promise<void> {
  const url = `${imageUrl(id, 'search')}?${new URLSearchParams({ q, in: within, limit: '2000' })}`;
  const res = await fetch(url, { signal });
  if (!res.ok || !res.body) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!text) continue;
      const o = JSON.parse(text) as Record<string, unknown>;
      if ('progress' in o) onLine({ kind: 'progress', ...(o.progress as { scanned: number; path: string }) });
      else if ('warning' in o) onLine({ kind: 'warning', warning: String(o.warning) });
      else if ('done' in o) onLine({ kind: 'done', ...(o as { matches: number; scanned: number; truncated: boolean }) });
      else onLine({ kind: 'entry', ...(o as unknown as LsEntry) });
    }
  }
}
