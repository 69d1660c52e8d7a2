import { clear, h } from './dom.js';

export interface Column<T> {
  key: string;
  title: string;
  /** CSS class for the header and the cells (alignment, width). */
  cls: string;
  sortable: boolean;
  render(row: T, cell: HTMLElement): void;
}

export interface SortState {
  key: string;
  descending: boolean;
}

export interface VirtualTableOptions<T> {
  label: string;
  columns: Column<T>[];
  rowHeight: number;
  /** Keyboard Enter / double click. */
  onActivate(row: T): void;
  /** The cursor moved to this row (null: no rows). */
  onCursor(row: T | null): void;
  onSort?(key: string): void;
  emptyText: string;
}

/**
 * A table that only builds the rows in view (plus a margin), so a folder of
 * 100,000 entries scrolls as smoothly as one of ten. It is one focus stop:
 * arrows, Page Up/Down, Home/End move the cursor (announced through
 * aria-activedescendant), Enter activates.
 */
export class VirtualTable<T> {
  readonly element: HTMLElement;
  private readonly body: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly header: HTMLElement;
  private readonly empty: HTMLElement;
  private rows: T[] = [];
  private cursor = -1;
  private pool: HTMLElement[] = [];
  private frame = 0;
  private sort: SortState | null = null;
  /** Bumped when the rows change, so pooled row elements know their cells are stale. */
  private version = 0;

  constructor(private readonly options: VirtualTableOptions<T>) {
    const template = options.columns.map((c) => `var(--col-${c.key}, auto)`).join(' ');
    this.header = h('div', { class: 'vt-header', role: 'row', style: `grid-template-columns:${template}` });
    this.spacer = h('div', { class: 'vt-spacer' });
    this.empty = h('div', { class: 'vt-empty', hidden: true }, options.emptyText);
    this.body = h('div', { class: 'vt-body', role: 'rowgroup', tabindex: 0 }, this.spacer, this.empty);
    this.element = h('div', { class: 'vt', role: 'grid', 'aria-label': options.label }, h('div', { role: 'rowgroup' }, this.header), this.body);
    this.element.style.setProperty('--row-height', `${options.rowHeight}px`);
    this.element.style.setProperty('--vt-columns', template);
    this.renderHeader();
    this.body.addEventListener('scroll', () => this.schedule(), { passive: true });
    this.body.addEventListener('keydown', (ev) => this.onKey(ev));
    this.body.addEventListener('focus', () => {
      if (this.cursor < 0 && this.rows.length) this.moveTo(0);
    });
    new ResizeObserver(() => this.schedule()).observe(this.body);
  }

  setSort(sort: SortState | null): void {
    this.sort = sort;
    this.renderHeader();
  }

  /** Replace the rows; the cursor stays on the row with the same key when there is one. */
  setRows(rows: T[], keepKey?: (row: T) => boolean): void {
    this.rows = rows;
    this.version++;
    const keep = keepKey ? rows.findIndex(keepKey) : -1;
    this.cursor = keep >= 0 ? keep : rows.length ? Math.min(Math.max(this.cursor, 0), rows.length - 1) : -1;
    this.element.setAttribute('aria-rowcount', String(rows.length + 1));
    this.spacer.style.height = `${rows.length * this.options.rowHeight}px`;
    this.empty.hidden = rows.length > 0;
    if (keep >= 0) this.scrollIntoView(keep);
    this.render();
    this.options.onCursor(this.cursor >= 0 ? this.rows[this.cursor] : null);
  }

  /** Put the cursor on the row for which `match` holds. */
  select(match: (row: T) => boolean): boolean {
    const i = this.rows.findIndex(match);
    if (i < 0) return false;
    this.moveTo(i);
    return true;
  }

  get current(): T | null {
    return this.cursor >= 0 ? this.rows[this.cursor] : null;
  }

  get length(): number {
    return this.rows.length;
  }

  /** Rows currently in the DOM (the tests check that a huge folder stays small). */
  get renderedRows(): number {
    return this.pool.filter((r) => !r.hidden).length;
  }

  focus(): void {
    this.body.focus();
  }

  private renderHeader(): void {
    // Rebuilding the header must not drop the keyboard focus of the button just pressed.
    const focusedKey = (document.activeElement as HTMLElement | null)?.closest?.('.vt-header') === this.header ? (document.activeElement as HTMLElement).dataset.key : undefined;
    clear(this.header);
    for (const col of this.options.columns) {
      const sorted = this.sort?.key === col.key ? (this.sort.descending ? 'descending' : 'ascending') : 'none';
      const cell = h('div', { class: `vt-cell ${col.cls}`, role: 'columnheader', 'aria-sort': col.sortable ? sorted : null });
      if (col.sortable && this.options.onSort) {
        const arrow = sorted === 'ascending' ? ' ▲' : sorted === 'descending' ? ' ▼' : '';
        const button = h('button', { type: 'button', class: 'sort', 'data-key': col.key, onclick: () => this.options.onSort!(col.key), title: `Sort by ${col.title.toLowerCase()}` }, col.title, h('span', { class: 'arrow', 'aria-hidden': 'true' }, arrow));
        cell.appendChild(button);
        if (focusedKey === col.key) queueMicrotask(() => button.focus());
      } else cell.textContent = col.title;
      this.header.appendChild(cell);
    }
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  private render(): void {
    const H = this.options.rowHeight;
    const viewHeight = this.body.clientHeight || 600;
    const overscan = 10;
    const first = Math.max(0, Math.floor(this.body.scrollTop / H) - overscan);
    const last = Math.min(this.rows.length, Math.ceil((this.body.scrollTop + viewHeight) / H) + overscan);
    const count = Math.max(0, last - first);
    while (this.pool.length < count) this.pool.push(this.newRow());
    for (let k = 0; k < this.pool.length; k++) {
      const el = this.pool[k];
      const i = first + k;
      if (k >= count) {
        el.hidden = true;
        delete el.dataset.stamp;
        continue;
      }
      el.hidden = false;
      el.classList.toggle('cursor', i === this.cursor);
      el.setAttribute('aria-selected', String(i === this.cursor));
      // Cells are rebuilt only when the element shows another row: rebuilding
      // the row being clicked would remove the link under the pointer.
      const stamp = `${this.version}:${i}`;
      if (el.dataset.stamp === stamp) continue;
      el.dataset.stamp = stamp;
      el.style.transform = `translateY(${i * H}px)`;
      el.id = `vt-row-${i}`;
      el.setAttribute('aria-rowindex', String(i + 2));
      el.dataset.index = String(i);
      const row = this.rows[i];
      this.options.columns.forEach((col, c) => {
        const cell = el.children[c] as HTMLElement;
        clear(cell);
        col.render(row, cell);
      });
    }
    if (this.cursor >= 0) this.body.setAttribute('aria-activedescendant', `vt-row-${this.cursor}`);
    else this.body.removeAttribute('aria-activedescendant');
  }

  private newRow(): HTMLElement {
    const el = h('div', { class: 'vt-row', role: 'row' }, this.options.columns.map((c) => h('div', { class: `vt-cell ${c.cls}`, role: 'gridcell' })));
    el.addEventListener('click', (ev) => {
      const i = Number(el.dataset.index);
      // A plain click on the name link of a folder navigates; anywhere else selects.
      if (!(ev.target as HTMLElement).closest('a')) ev.preventDefault();
      this.moveTo(i);
      this.body.focus({ preventScroll: true });
    });
    el.addEventListener('dblclick', () => this.options.onActivate(this.rows[Number(el.dataset.index)]));
    this.body.appendChild(el);
    return el;
  }

  private moveTo(i: number): void {
    if (!this.rows.length) return;
    const next = Math.max(0, Math.min(this.rows.length - 1, i));
    const changed = next !== this.cursor;
    this.cursor = next;
    this.scrollIntoView(next);
    this.render();
    if (changed) this.options.onCursor(this.rows[next]);
  }

  private scrollIntoView(i: number): void {
    const H = this.options.rowHeight;
    const top = i * H;
    const view = this.body.clientHeight || 600;
    if (top < this.body.scrollTop) this.body.scrollTop = top;
    else if (top + H > this.body.scrollTop + view) this.body.scrollTop = top + H - view;
  }

  private onKey(ev: KeyboardEvent): void {
    const page = Math.max(1, Math.floor((this.body.clientHeight || 600) / this.options.rowHeight) - 1);
    const moves: Record<string, number> = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
    if (ev.key in moves && !ev.altKey) {
      ev.preventDefault();
      this.moveTo((this.cursor < 0 ? 0 : this.cursor) + moves[ev.key]);
    } else if (ev.key === 'Home') {
      ev.preventDefault();
      this.moveTo(0);
    } else if (ev.key === 'End') {
      ev.preventDefault();
      this.moveTo(this.rows.length - 1);
    } else if (ev.key === 'Enter' && this.cursor >= 0) {
      ev.preventDefault();
      this.options.onActivate(this.rows[this.cursor]);
    }
  }
}
