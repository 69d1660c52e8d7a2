import { api, search, type LsEntry } from '../api.js';
import { clear, h, mainElement } from '../dom.js';
import { errorBox } from '../errors.js';
import { baseName, groupDigits, humanSize, modeString, parentPath, shortDate } from '../format.js';
import { icon, iconName } from '../icons.js';
import { go, href, type Route } from '../routes.js';
import { VirtualTable, type Column, type SortState } from '../virtual-table.js';
import { DetailsPanel } from './details.js';

interface Row extends LsEntry {
  name: string;
  /** Lower-cased name, for filtering without allocating per keystroke. */
  key: string;
}

const ROW_HEIGHT = 30;

function toRow(e: LsEntry): Row {
  const name = baseName(e.path);
  return { ...e, name, key: name.toLowerCase() };
}

function crumbs(id: string, path: string): HTMLElement {
  const parts = path.split('/').filter(Boolean);
  const items = [h('li', {}, h('a', { href: '#/' }, 'Images')), h('li', {}, h('a', { href: href({ view: 'image', id }) }, id))];
  parts.forEach((p, i) => {
    const isLast = i === parts.length - 1;
    items.push(h('li', {}, h('a', { href: href({ view: 'browse', id, path: '/' + parts.slice(0, i + 1).join('/') }), 'aria-current': isLast ? 'page' : null }, p)));
  });
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, h('ol', {}, items));
}

const COMPARE: Record<string, (a: Row, b: Row) => number> = {
  name: (a, b) => a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: 'base' }),
  size: (a, b) => a.size - b.size,
  mtime: (a, b) => (a.mtime < b.mtime ? -1 : a.mtime > b.mtime ? 1 : 0),
  mode: (a, b) => a.mode - b.mode,
};

function nameCell(id: string, r: Row, cell: HTMLElement, showPath: boolean): void {
  cell.appendChild(icon(iconName(r.type, r.name), r.type === 'dir' ? 'folder' : r.type === 'symlink' ? 'symbolic link' : r.type === 'other' ? 'special file' : undefined));
  cell.appendChild(h('a', { href: href({ view: 'browse', id, path: r.path }), tabindex: -1, class: 'entry-name' }, showPath ? r.path : r.name));
  if (r.target !== undefined) cell.appendChild(h('span', { class: 'link-target' }, ` → ${r.target}`));
}

function columns(id: string, showPath: boolean): Column<Row>[] {
  return [
    { key: 'name', title: showPath ? 'Path' : 'Name', cls: 'c-name', sortable: true, render: (r, c) => nameCell(id, r, c, showPath) },
    { key: 'size', title: 'Size', cls: 'c-size num', sortable: true, render: (r, c) => void (c.textContent = r.type === 'dir' ? '—' : humanSize(r.size), (c.title = `${r.size} bytes`)) },
    { key: 'mtime', title: 'Modified', cls: 'c-mtime', sortable: true, render: (r, c) => void (c.textContent = shortDate(r.mtime)) },
    { key: 'mode', title: 'Mode', cls: 'c-mode mono', sortable: true, render: (r, c) => void (c.textContent = modeString(r.type, r.mode)) },
  ];
}

/**
 * A folder: breadcrumbs, filter-as-you-type, search across the volume,
 * the entries in a virtual table (sortable; folders first), and details of
 * the entry under the cursor.
 */
export class DirectoryView {
  private rows: Row[] = [];
  private filter = '';
  private sort: SortState = { key: 'name', descending: false };
  private readonly table: VirtualTable<Row>;
  private readonly details: DetailsPanel;
  private readonly count = h('span', { class: 'count', 'aria-live': 'polite' });
  private readonly filterInput = h('input', { type: 'search', id: 'filter', placeholder: 'Filter this folder  ( / )', 'aria-label': 'Filter this folder by name', autocomplete: 'off' });
  private readonly listArea = h('div', { class: 'list-area' });
  private searchAbort: AbortController | null = null;
  private searchTable: VirtualTable<Row> | null = null;

  private constructor(
    readonly id: string,
    readonly dir: string,
  ) {
    this.details = new DetailsPanel(id);
    this.table = new VirtualTable<Row>({
      label: `Contents of ${dir}`,
      columns: columns(id, false),
      rowHeight: ROW_HEIGHT,
      emptyText: 'Empty folder.',
      onActivate: (r) => this.activate(r),
      onCursor: (r) => this.cursorMoved(r),
      onSort: (key) => this.toggleSort(key),
    });
    this.table.setSort(this.sort);
  }

  /** Open `route` (a folder, or a file shown in its folder); null when it could not be shown. */
  static async open(route: Extract<Route, { view: 'browse' }>, signal: AbortSignal): Promise<DirectoryView | null> {
    const main = mainElement();
    const { id, path } = route;
    document.title = `${path} · ${id} · Loopless`;
    try {
      const volumeRoot = path.split('/').filter(Boolean).length <= 1;
      const stat = volumeRoot ? null : await api.stat(id, path, signal);
      const dir = stat && stat.type !== 'dir' ? parentPath(path) : path;
      const { entries, imageWarnings } = await api.lsWithWarnings(id, dir, signal);
      if (signal.aborted) return null;
      const view = new DirectoryView(id, dir);
      view.mount(main, entries, stat && stat.type !== 'dir' ? path : null, imageWarnings);
      return view;
    } catch (e) {
      if (signal.aborted) return null;
      clear(main);
      main.append(crumbs(id, path), errorBox(e, h('p', {}, h('a', { href: path.split('/').filter(Boolean).length > 1 ? href({ view: 'browse', id, path: parentPath(path) }) : href({ view: 'image', id }) }, 'Go up one level'))));
      main.querySelector<HTMLElement>('.error-box a')?.focus();
      return null;
    }
  }

  /** A route inside this folder (an entry selected by a link or Back): handled without reloading. */
  tryShow(route: Route): boolean {
    if (route.view !== 'browse' || route.id !== this.id) return false;
    if (route.path === this.dir) {
      this.details.showNothing();
      return true;
    }
    if (parentPath(route.path) !== this.dir) return false;
    // A folder's own address opens it; anything else is selected here.
    const entry = this.rows.find((r) => r.path === route.path);
    if (!entry || entry.type === 'dir') return false;
    return this.table.select((r) => r.path === route.path);
  }

  destroy(): void {
    this.searchAbort?.abort();
    this.details.cancel();
    document.removeEventListener('keydown', this.onKey);
  }

  private mount(main: HTMLElement, entries: LsEntry[], selectPath: string | null, imageWarnings: number): void {
    this.rows = entries.map(toRow);
    clear(main);
    const searchInput = h('input', { type: 'search', id: 'search', placeholder: `Search by name in /${this.volume}`, 'aria-label': `Search by name in volume ${this.volume}`, autocomplete: 'off' });
    const searchForm = h('form', { class: 'search', role: 'search' }, searchInput, h('button', { type: 'submit' }, 'Search'));
    searchForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (searchInput.value.trim()) this.runSearch(searchInput.value.trim());
    });
    this.filterInput.addEventListener('input', () => {
      this.filter = this.filterInput.value.trim().toLowerCase();
      this.refresh();
    });
    this.filterInput.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        this.filterInput.value = '';
        this.filter = '';
        this.refresh();
        this.table.focus();
      } else if (ev.key === 'ArrowDown' || ev.key === 'Enter') {
        ev.preventDefault();
        this.table.focus();
      }
    });
    const zip = h('a', { class: 'button', href: api.zipUrl(this.id, this.dir), download: `${baseName(this.dir)}.zip`, 'data-action': 'zip-folder' }, 'Download folder as .zip');
    const toolbar = h('div', { class: 'toolbar' }, this.filterInput, this.count, h('span', { class: 'spacer' }), searchForm, zip);
    this.listArea.appendChild(this.table.element);
    main.append(crumbs(this.id, this.dir));
    if (imageWarnings) {
      // Damaged records are left out of listings: say so where someone looks for a missing file.
      main.append(
        h('p', { class: 'warning', 'data-role': 'image-warnings' }, `Warning: this image has ${imageWarnings} warning${imageWarnings === 1 ? '' : 's'} (damaged records are left out of listings). `, h('a', { href: href({ view: 'image', id: this.id }) }, 'See them on the image page.')),
      );
    }
    main.append(
      toolbar,
      h('div', { class: 'browser' }, this.listArea, this.details.element),
      h('p', { class: 'hint keys' }, '↑/↓ PgUp/PgDn Home/End move · Enter opens · Backspace goes up · / filters · click a column title to sort'),
    );
    document.addEventListener('keydown', this.onKey);
    this.refresh(selectPath ? (r) => r.path === selectPath : undefined);
    this.table.focus();
  }

  private get volume(): string {
    return this.dir.split('/').filter(Boolean)[0] ?? '';
  }

  private readonly onKey = (ev: KeyboardEvent) => {
    const inField = (ev.target as HTMLElement).closest('input, textarea, select');
    if (ev.key === '/' && !inField) {
      ev.preventDefault();
      this.filterInput.focus();
    } else if ((ev.key === 'Backspace' && !inField) || (ev.key === 'ArrowUp' && ev.altKey)) {
      ev.preventDefault();
      if (this.searchTable) this.closeSearch();
      else this.goUp();
    } else if (ev.key === 'Escape' && this.searchTable) {
      ev.preventDefault();
      this.closeSearch();
    }
  };

  private goUp(): void {
    const parts = this.dir.split('/').filter(Boolean);
    if (parts.length <= 1) go({ view: 'image', id: this.id });
    else go({ view: 'browse', id: this.id, path: parentPath(this.dir) });
  }

  private toggleSort(key: string): void {
    this.sort = this.sort.key === key ? { key, descending: !this.sort.descending } : { key, descending: false };
    this.table.setSort(this.sort);
    const current = this.table.current;
    this.refresh(current ? (r) => r.path === current.path : undefined);
  }

  private refresh(keep?: (r: Row) => boolean): void {
    const cmp = COMPARE[this.sort.key] ?? COMPARE.name;
    const sign = this.sort.descending ? -1 : 1;
    const visible = this.filter ? this.rows.filter((r) => r.key.includes(this.filter)) : this.rows.slice();
    // Folders first, as file managers do; then the chosen column, then the name.
    visible.sort((a, b) => Number(b.type === 'dir') - Number(a.type === 'dir') || sign * cmp(a, b) || COMPARE.name(a, b));
    this.table.setRows(visible, keep);
    const entries = (n: number) => `${groupDigits(n)} ${n === 1 ? 'entry' : 'entries'}`;
    this.count.textContent = this.filter ? `${groupDigits(visible.length)} of ${entries(this.rows.length)}` : entries(this.rows.length);
  }

  private cursorMoved(r: Row | null): void {
    if (!r) {
      this.details.showNothing(this.filter ? 'Nothing matches the filter.' : 'This folder is empty.');
      return;
    }
    this.details.show(r);
    // Keep the address bar on the selected file (reload and bookmarks return here) without a navigation.
    // A selected folder leaves it on this folder: its own address means "open it", which a click on its link does.
    history.replaceState(null, '', href({ view: 'browse', id: this.id, path: r.type === 'dir' ? this.dir : r.path }));
  }

  private activate(r: Row): void {
    if (r.type === 'dir') go({ view: 'browse', id: this.id, path: r.path });
    else {
      this.details.show(r, 0);
      // Give the panel a moment to load, then put the keyboard on its first action.
      const focusWhenReady = () => (this.details.element.querySelector('.actions') ? this.details.focus() : setTimeout(focusWhenReady, 50));
      setTimeout(focusWhenReady, 50);
    }
  }

  private runSearch(q: string): void {
    this.searchAbort?.abort();
    const abort = new AbortController();
    this.searchAbort = abort;
    const results: Row[] = [];
    const status = h('span', { class: 'search-status', 'aria-live': 'polite' }, `Searching /${this.volume} for “${q}”…`);
    const cancel = h('button', { type: 'button', 'data-action': 'cancel-search' }, 'Cancel');
    const close = h('button', { type: 'button' }, 'Back to the folder');
    cancel.addEventListener('click', () => {
      abort.abort();
      status.textContent = `Cancelled: ${groupDigits(results.length)} found so far.`;
      cancel.hidden = true;
    });
    close.addEventListener('click', () => this.closeSearch());
    const table = new VirtualTable<Row>({
      label: `Search results for ${q}`,
      columns: columns(this.id, true),
      rowHeight: ROW_HEIGHT,
      emptyText: 'No matches yet.',
      onActivate: (r) => go({ view: 'browse', id: this.id, path: r.path }),
      onCursor: (r) => (r ? this.details.show(r) : this.details.showNothing()),
    });
    this.searchTable = table;
    clear(this.listArea);
    this.listArea.append(h('div', { class: 'search-bar' }, status, cancel, close), table.element);

    let pending = false;
    const flush = () => {
      pending = false;
      if (this.searchTable === table) table.setRows(results.slice(), table.current ? (r) => r.path === table.current!.path : undefined);
    };
    search(this.id, q, `/${this.volume}`, abort.signal, (line) => {
      if (line.kind === 'entry') {
        results.push(toRow(line));
        if (!pending) {
          pending = true;
          requestAnimationFrame(flush); // batch rows that arrive together
        }
      } else if (line.kind === 'progress') status.textContent = `Searching… ${groupDigits(results.length)} found, ${groupDigits(line.scanned)} entries looked at (${line.path})`;
      else if (line.kind === 'done') {
        flush();
        cancel.hidden = true;
        status.textContent = `${groupDigits(line.matches)} match${line.matches === 1 ? '' : 'es'} for “${q}” in /${this.volume} (${groupDigits(line.scanned)} entries looked at)${line.truncated ? ' — showing the first ones only' : ''}.`;
      }
    }).catch((e: unknown) => {
      if (abort.signal.aborted) return;
      cancel.hidden = true;
      status.replaceWith(errorBox(e));
    });
    table.focus();
  }

  private closeSearch(): void {
    this.searchAbort?.abort();
    this.searchTable = null;
    clear(this.listArea);
    this.listArea.appendChild(this.table.element);
    this.refresh(this.table.current ? (r) => r.path === this.table.current!.path : undefined);
    this.table.focus();
  }
}
