import { api, type ImageSummary } from '../api.js';
import { clear, h, mainElement } from '../dom.js';
import { errorBox } from '../errors.js';
import { humanSize, shortDate } from '../format.js';
import { icon } from '../icons.js';
import { href } from '../routes.js';

const TABLE_NAMES: Record<string, string> = { mbr: 'MBR', gpt: 'GPT', none: 'no partition table' };

/** Up/Down move between the rows' links, as in a list. */
export function arrowNavigation(container: HTMLElement): void {
  container.addEventListener('keydown', (ev) => {
    if (ev.key !== 'ArrowDown' && ev.key !== 'ArrowUp') return;
    const links = [...container.querySelectorAll<HTMLAnchorElement>('a.row-link')];
    const at = links.indexOf(document.activeElement as HTMLAnchorElement);
    const next = links[Math.max(0, Math.min(links.length - 1, at + (ev.key === 'ArrowDown' ? 1 : -1)))];
    if (next) {
      ev.preventDefault();
      next.focus();
    }
  });
}

function row(image: ImageSummary): HTMLElement {
  const status = image.error
    ? h('td', { class: 'status bad' }, h('strong', {}, image.code === 'CORRUPT' ? 'Damaged: ' : image.code === 'UNSUPPORTED' ? 'Not readable: ' : 'Error: '), image.error)
    : h('td', { class: 'status ok' }, 'ready');
  return h(
    'tr',
    { 'data-id': image.id, class: image.error ? 'has-error' : '' },
    h('td', { class: 'name' }, h('span', { class: 'cell-name' }, icon(image.error ? 'broken' : 'disk'), h('a', { class: 'row-link', href: href({ view: 'image', id: image.id }) }, image.id))),
    h('td', { class: 'num', title: `${image.size} bytes` }, humanSize(image.size)),
    h('td', {}, image.table ? (TABLE_NAMES[image.table] ?? image.table) : '-'),
    h('td', {}, shortDate(image.modified)),
    status,
  );
}

export async function showImages(signal: AbortSignal): Promise<void> {
  const main = mainElement();
  document.title = 'Images · Loopless';
  let images: ImageSummary[];
  try {
    images = await api.images();
  } catch (e) {
    if (signal.aborted) return;
    clear(main);
    main.appendChild(errorBox(e));
    return;
  }
  if (signal.aborted) return;
  clear(main);
  main.appendChild(h('h1', {}, 'Disk images'));
  if (!images.length) {
    main.appendChild(h('p', { class: 'empty' }, 'No images in the served folders (or none you may open). Images are files such as pc-2019.img in the folders given to `loopless serve`.'));
    return;
  }
  const table = h(
    'table',
    { class: 'grid images', 'aria-label': 'Disk images' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Image'), h('th', { scope: 'col', class: 'num' }, 'Size'), h('th', { scope: 'col' }, 'Partition table'), h('th', { scope: 'col' }, 'Modified'), h('th', { scope: 'col' }, 'Status'))),
    h('tbody', {}, images.map(row)),
  );
  arrowNavigation(table);
  main.appendChild(table);
  main.appendChild(h('p', { class: 'hint' }, `${images.length} image${images.length === 1 ? '' : 's'}. Tab or ↑/↓ to choose, Enter to open.`));
  table.querySelector<HTMLAnchorElement>('a.row-link')?.focus();
}
