import { api, type LsEntry, type StatInfo } from '../api.js';
import { clear, h } from '../dom.js';
import { errorBox } from '../errors.js';
import { baseName, groupDigits, humanSize, longDate, modeString, octal } from '../format.js';
import { icon, iconName } from '../icons.js';
import { href } from '../routes.js';

const TEXT_PREVIEW_BYTES = 256 * 1024;
const AUTO_PREVIEW_MAX = 20 * 1024 * 1024;

function isText(mime: string | undefined, name: string): boolean {
  if (!mime) return false;
  return mime.startsWith('text/') || /^application\/(json|xml|javascript|x-sh|x-yaml|toml|sql)/.test(mime) || /\.(log|conf|cfg|ini|md)$/i.test(name);
}

/** Bytes that look like text: no NUL in the first 8 KiB. */
function looksBinary(bytes: Uint8Array): boolean {
  return bytes.subarray(0, 8192).includes(0);
}

/**
 * The details panel: every piece of metadata (from /stat), the symlink target
 * and whether it leads anywhere inside the image, downloads, a SHA-256 on
 * demand, and a preview for text, images and PDF.
 */
export class DetailsPanel {
  readonly element = h('aside', { class: 'details', 'aria-label': 'Details', 'aria-live': 'polite' });
  private abort: AbortController | null = null;
  private timer = 0;

  constructor(private readonly imageId: string) {
    this.showNothing();
  }

  showNothing(text = 'Choose a file or folder to see its details.'): void {
    this.cancel();
    clear(this.element);
    this.element.appendChild(h('p', { class: 'hint' }, text));
  }

  /** Show an entry; waits a moment so running the cursor down a list does not fire a request per row. */
  show(entry: LsEntry, delayMs = 120): void {
    this.cancel();
    clear(this.element);
    const name = baseName(entry.path);
    this.element.appendChild(h('h2', {}, icon(iconName(entry.type, name)), h('span', { class: 'title-text' }, name)));
    this.element.appendChild(h('p', { class: 'hint' }, 'Loading details…'));
    const abort = new AbortController();
    this.abort = abort;
    this.timer = window.setTimeout(() => {
      api.stat(this.imageId, entry.path, abort.signal).then(
        (s) => !abort.signal.aborted && this.render(s, abort.signal),
        (e: unknown) => {
          if (abort.signal.aborted) return;
          clear(this.element);
          this.element.appendChild(errorBox(e));
        },
      );
    }, delayMs);
  }

  /** Move keyboard focus into the panel (Enter on a file). */
  focus(): void {
    this.element.querySelector<HTMLElement>('a.button, button')?.focus();
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.abort?.abort();
    this.abort = null;
  }

  private render(s: StatInfo, signal: AbortSignal): void {
    clear(this.element);
    const id = this.imageId;
    this.element.appendChild(h('h2', {}, icon(iconName(s.type, s.name)), h('span', { class: 'title-text' }, s.name || s.path)));
    const actions = h('div', { class: 'actions' });
    if (s.type === 'file') {
      actions.appendChild(h('a', { class: 'button primary', href: api.catUrl(id, s.path, true), download: s.name, 'data-action': 'download' }, 'Download'));
    } else if (s.type === 'dir') {
      actions.append(
        h('a', { class: 'button', href: href({ view: 'browse', id, path: s.path }) }, 'Open folder'),
        h('a', { class: 'button', href: api.zipUrl(id, s.path), download: `${s.name || 'volume'}.zip`, 'data-action': 'zip' }, 'Download as .zip'),
      );
    }
    this.element.appendChild(actions);

    const rows: [string, Node | string][] = [
      ['Path', h('code', {}, s.path)],
      ['Type', s.type + (s.otherKind ? ` (${s.otherKind})` : '')],
      ['Size', s.type === 'dir' ? `${groupDigits(s.size)} bytes (directory)` : `${humanSize(s.size)} (${groupDigits(s.size)} bytes)`],
      ['Allocated', `${humanSize(s.allocatedSize)}${s.allocatedSize < s.size && s.type === 'file' ? ' (sparse)' : ''}`],
      ['Mode', h('code', {}, `${modeString(s.type, s.mode)}  ${octal(s.mode)}`)],
      ['Owner', `uid ${s.uid}, gid ${s.gid}`],
      ['Links', String(s.nlink)],
      ['Inode', String(s.ino)],
      ['Modified', longDate(s.mtime)],
      ['Accessed', longDate(s.atime)],
      ['Changed', longDate(s.ctime)],
      ['Created', longDate(s.birthtime)],
    ];
    if (s.mime) rows.push(['MIME type', s.mime]);
    if (s.flags.length) rows.push(['Flags', s.flags.join(', ')]);
    if (s.target !== undefined) rows.push(['Link target', this.linkTarget(s)]);
    if (s.streams?.length) {
      rows.push(['Streams', h('ul', {}, s.streams.map((st) => h('li', {}, h('a', { href: api.catUrl(id, `${s.path}:${st.name}`, true), download: `${s.name}_${st.name}` }, st.name), ` (${humanSize(st.size)})`)))]);
    }
    this.element.appendChild(h('dl', { class: 'meta' }, rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));

    if (s.type === 'file') {
      this.element.appendChild(this.hashSection(s));
      this.element.appendChild(this.previewSection(s, signal));
    }
  }

  private linkTarget(s: StatInfo): Node {
    const box = h('div', {}, h('code', { class: 'target' }, s.target ?? ''));
    if (s.targetType && s.targetPath) {
      box.appendChild(h('p', {}, 'Leads to ', h('a', { href: href({ view: 'browse', id: this.imageId, path: s.targetPath }) }, s.targetPath), ` (${s.targetType}) inside this image.`));
    } else {
      box.appendChild(h('p', { class: 'warning' }, `Leads nowhere inside this image${s.targetError ? ` (${s.targetError})` : ''}. Links are only ever followed inside the image, never to the server's own files.`));
    }
    return box;
  }

  private hashSection(s: StatInfo): HTMLElement {
    const out = h('output', { class: 'hash', 'aria-live': 'polite' });
    const button = h('button', { type: 'button', 'data-action': 'sha256' }, 'Compute SHA-256');
    button.addEventListener('click', () => {
      button.disabled = true;
      out.textContent = `reading ${humanSize(s.size)}…`;
      api.sha256(this.imageId, s.path, this.abort?.signal).then(
        (r) => {
          out.textContent = r.sha256;
          button.hidden = true;
        },
        (e: unknown) => {
          button.disabled = false;
          out.textContent = e instanceof Error ? e.message : String(e);
        },
      );
    });
    return h('section', { class: 'hash-section' }, h('h3', {}, 'SHA-256'), button, out);
  }

  private previewSection(s: StatInfo, signal: AbortSignal): HTMLElement {
    const box = h('section', { class: 'preview' }, h('h3', {}, 'Preview'));
    const url = api.catUrl(this.imageId, s.path);
    const mime = s.mime ?? '';
    if (s.size === 0) {
      box.appendChild(h('p', { class: 'hint' }, 'Empty file.'));
    } else if (mime.startsWith('image/')) {
      box.appendChild(h('img', { src: url, alt: `Preview of ${s.name}`, loading: 'lazy' }));
    } else if (mime === 'application/pdf') {
      const button = h('button', { type: 'button' }, 'Show PDF');
      button.addEventListener('click', () => button.replaceWith(h('iframe', { src: url, title: `PDF ${s.name}`, class: 'pdf' })));
      box.appendChild(button);
    } else if (isText(mime, s.name) && s.size <= AUTO_PREVIEW_MAX) {
      this.textPreview(box, s, signal);
    } else {
      const button = h('button', { type: 'button' }, 'Show the beginning as text');
      button.addEventListener('click', () => {
        button.remove();
        this.textPreview(box, s, signal);
      });
      box.append(h('p', { class: 'hint' }, `No preview for ${mime || 'this type'}.`), button);
    }
    return box;
  }

  private textPreview(box: HTMLElement, s: StatInfo, signal: AbortSignal): void {
    const pre = h('pre', { class: 'text-preview', tabindex: 0 }, 'loading…');
    box.appendChild(pre);
    api.head(this.imageId, s.path, TEXT_PREVIEW_BYTES, signal).then(
      (bytes) => {
        if (looksBinary(bytes)) {
          pre.textContent = 'This looks like a binary file; download it to open it.';
          return;
        }
        pre.textContent = new TextDecoder('utf-8').decode(bytes);
        if (s.size > TEXT_PREVIEW_BYTES) box.appendChild(h('p', { class: 'hint' }, `First ${humanSize(TEXT_PREVIEW_BYTES)} of ${humanSize(s.size)}.`));
      },
      (e: unknown) => {
        if (!signal.aborted) pre.textContent = e instanceof Error ? e.message : String(e);
      },
    );
  }
}
