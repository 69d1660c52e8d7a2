import type { ImageInfo, VolumeInfo } from '../api.js';
import { h } from '../dom.js';
import { humanSize } from '../format.js';
import { href } from '../routes.js';

export function volumeLabel(v: VolumeInfo): string {
  const parts = [v.name, v.fs ?? (v.error ? 'error' : 'no filesystem')];
  const label = v.label ?? v.partitionLabel;
  if (label) parts.push(`“${label}”`);
  parts.push(humanSize(v.size));
  return parts.join(' · ');
}

/**
 * The disk drawn to scale: each volume at its offset with its size, gaps
 * (unpartitioned space) left visible. A volume too thin for its label keeps
 * a sliver of a few pixels; its label is in its tooltip and in the table below.
 */
export function layoutBar(id: string, info: ImageInfo): HTMLElement {
  const total = info.size || 1;
  const bar = h('div', { class: 'layout-bar', role: 'list', 'aria-label': `Partition layout of ${id}, ${humanSize(info.size)}` });
  for (const v of info.volumes) {
    const left = (v.start / total) * 100;
    const width = (v.size / total) * 100;
    const label = volumeLabel(v);
    const readable = v.supported;
    const style = `left:${left}%;width:${width}%`;
    const title = `${label}\nstarts at byte ${v.start.toLocaleString('en-US')} (${humanSize(v.start)})${v.error ? `\n${v.error}` : !readable && v.fs ? `\n${v.fs} is not readable by Loopless` : ''}`;
    const state = readable ? '' : v.error ? ' damaged' : ' foreign';
    const cls = `segment fs-${(v.fs ?? 'none').replace(/[^a-z0-9]/gi, '')}${state}`;
    // The volume name stays readable on a thin segment; the rest gives way first.
    const text = h('span', { class: 'segment-label' }, h('span', { class: 'segment-name' }, v.name), h('span', { class: 'segment-rest' }, label.slice(v.name.length)));
    const seg = readable
      ? h('a', { class: cls, style, title, href: href({ view: 'browse', id, path: `/${v.name}` }), role: 'listitem', 'aria-label': `${label}, open` }, text)
      : h('div', { class: cls, style, title, role: 'listitem', tabindex: 0, 'aria-label': `${label}, cannot be read${v.error ? `: ${v.error}` : ''}` }, text);
    bar.appendChild(seg);
  }
  const axis = h('div', { class: 'layout-axis', 'aria-hidden': 'true' }, h('span', {}, '0'), h('span', {}, humanSize(info.size)));
  return h('figure', { class: 'layout' }, bar, axis);
}
