import { ApiError } from './api.js';
import { h } from './dom.js';

/** An error in words a helpdesk person can act on, with the server's exact message below. */
export function explain(e: unknown): { title: string; detail: string } {
  if (e instanceof ApiError) {
    const detail = e.message;
    if (e.code === 'CORRUPT') return { title: 'This part of the image is damaged and cannot be read.', detail };
    if (e.code === 'UNSUPPORTED') return { title: 'Loopless cannot read this kind of filesystem.', detail };
    if (e.status === 0) return { title: 'The server cannot be reached.', detail };
    if (e.status === 401) return { title: 'Please log in.', detail };
    if (e.status === 403) return { title: 'You are not allowed to open this.', detail };
    if (e.status === 404) return { title: 'Not found.', detail };
    if (e.status === 400) return { title: 'That request cannot be answered.', detail };
    return { title: 'Something went wrong on the server.', detail };
  }
  return { title: 'Something went wrong in the page.', detail: e instanceof Error ? e.message : String(e) };
}

export function errorBox(e: unknown, ...extra: (Node | string)[]): HTMLElement {
  const { title, detail } = explain(e);
  return h('div', { class: 'error-box', role: 'alert' }, h('strong', {}, title), h('p', { class: 'detail' }, detail), ...extra);
}
