import { api, type ImageInfo } from '../api.js';
import { clear, h, mainElement } from '../dom.js';
import { errorBox } from '../errors.js';
import { humanSize } from '../format.js';
import { icon } from '../icons.js';
import { href } from '../routes.js';
import { arrowNavigation } from './images.js';
import { layoutBar } from './layout-bar.js';

const TABLE_NAMES: Record<string, string> = { mbr: 'MBR partition table', gpt: 'GPT partition table', none: 'no partition table' };

export function imageCrumbs(id: string): HTMLElement {
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, h('ol', {}, h('li', {}, h('a', { href: '#/' }, 'Images')), h('li', {}, h('a', { href: href({ view: 'image', id }), 'aria-current': 'page' }, id))));
}

export async function showImage(id: string, signal: AbortSignal): Promise<void> {
  const main = mainElement();
  document.title = `${id} · Loopless`;
  let info: ImageInfo;
  try {
    info = await api.info(id);
  } catch (e) {
    if (signal.aborted) return;
    clear(main);
    main.append(imageCrumbs(id), errorBox(e, h('p', {}, h('a', { href: '#/' }, 'Back to the images'))));
    return;
  }
  if (signal.aborted) return;
  clear(main);
  const chain = [...info.chain, TABLE_NAMES[info.table] ?? info.table].join(' → ');
  main.append(
    imageCrumbs(id),
    h('h1', {}, id),
    h('p', { class: 'summary' }, `${humanSize(info.size)} (${info.size.toLocaleString('en-US')} bytes), ${chain}, ${info.volumes.length} volume${info.volumes.length === 1 ? '' : 's'}`),
    layoutBar(id, info),
    h(
      'p',
      { class: 'legend hint' },
      h('span', { class: 'swatch free' }), ' unpartitioned space  ',
      h('span', { class: 'swatch foreign' }), ' filesystem Loopless cannot read  ',
      h('span', { class: 'swatch damaged' }), ' damaged',
    ),
  );
  for (const w of info.warnings) main.appendChild(h('p', { class: 'warning' }, `Warning: ${w}`));
  const rows = info.volumes.map((v) =>
    h(
      'tr',
      { class: v.supported ? '' : 'has-error' },
      h('td', { class: 'name' }, h('span', { class: 'cell-name' }, icon(v.supported ? 'volume' : 'broken'), v.supported ? h('a', { class: 'row-link', href: href({ view: 'browse', id, path: `/${v.name}` }) }, v.name) : h('span', {}, v.name))),
      h('td', { class: 'num', title: `${v.start} bytes` }, v.start.toLocaleString('en-US')),
      h('td', { class: 'num', title: `${v.size} bytes` }, humanSize(v.size)),
      h('td', {}, v.typeName ? `${v.typeName} (${v.type})` : v.type),
      h('td', {}, v.fs ?? '-'),
      h('td', {}, v.label ?? v.partitionLabel ?? '-'),
      h(
        'td',
        { class: v.supported ? 'status ok' : 'status bad' },
        v.supported ? 'readable' : v.error ? `Damaged or unreadable: ${v.error}` : v.fs ? `Loopless cannot read ${v.fs}` : 'no filesystem recognized',
      ),
    ),
  );
  const table = h(
    'table',
    { class: 'grid volumes', 'aria-label': 'Volumes' },
    h('thead', {}, h('tr', {}, ['Volume', 'Start (byte)', 'Size', 'Partition type', 'Filesystem', 'Label', 'Status'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows),
  );
  arrowNavigation(table);
  main.appendChild(table);
  const readable = info.volumes.filter((v) => v.supported).length;
  main.appendChild(h('p', { class: 'hint' }, readable ? 'Choose a volume to browse its files (click its bar or its name; ↑/↓ and Enter work too).' : 'None of the volumes can be read by Loopless.'));
  (main.querySelector<HTMLElement>('a.row-link') ?? main).focus();
}
