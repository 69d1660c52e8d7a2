/** Small inline SVG icons by entry type and file kind (no icon font, no network). */
const SVG = 'http://www.w3.org/2000/svg';

const PATHS: Record<string, string> = {
  folder: 'M1.5 3.5h4.2l1.5 1.6h7.3v8.4h-13z',
  file: 'M3.5 1.5h6l3 3v10h-9z M9.5 1.5v3h3',
  text: 'M3.5 1.5h6l3 3v10h-9z M9.5 1.5v3h3 M5.5 7.5h5 M5.5 9.5h5 M5.5 11.5h3',
  image: 'M2.5 3.5h11v9h-11z M4.5 10.5l2.5-3 2 2 1.5-1.5 2 2.5 M10.5 6.5a1 1 0 1 0 .01 0',
  pdf: 'M3.5 1.5h6l3 3v10h-9z M9.5 1.5v3h3 M5.5 9h5 M5.5 11h5',
  archive: 'M3.5 1.5h9v13h-9z M7.5 2.5h1 M7.5 4.5h1 M7.5 6.5h1 M6.5 8.5h3v3h-3z',
  symlink: 'M3.5 1.5h6l3 3v10h-9z M6 11.5l4-4 M7 7.5h3v3',
  other: 'M8 2.5a5.5 5.5 0 1 0 .01 0 M8 5.5v3.5 M8 10.8v.2',
  disk: 'M1.5 4.5h13v7h-13z M11.5 8a.8.8 0 1 0 .01 0',
  volume: 'M2.5 3.5h11v9h-11z M2.5 6.5h11',
  broken: 'M1.5 4.5h13v7h-13z M5 6l6 4 M11 6l-6 4',
};

const TEXT_EXT = /\.(txt|md|log|csv|tsv|json|xml|html?|css|js|ts|ini|conf|cfg|ya?ml|toml|sh|py|c|h|cpp|java|rs|go|sql|srt|rtf)$/i;
const IMAGE_EXT = /\.(png|jpe?g|gif|webp|bmp|svg|ico|tiff?|avif)$/i;
const ARCHIVE_EXT = /\.(zip|gz|tgz|xz|bz2|zst|7z|rar|tar|iso|img|qcow2|vhdx?)$/i;

export function iconName(type: string, name: string): string {
  if (type === 'dir') return 'folder';
  if (type === 'symlink') return 'symlink';
  if (type === 'other') return 'other';
  if (/\.pdf$/i.test(name)) return 'pdf';
  if (IMAGE_EXT.test(name)) return 'image';
  if (TEXT_EXT.test(name)) return 'text';
  if (ARCHIVE_EXT.test(name)) return 'archive';
  return 'file';
}

export function icon(name: string, label?: string): SVGSVGElement {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('class', `icon icon-${name}`);
  if (label) {
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
  } else svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', PATHS[name] ?? PATHS.file);
  svg.appendChild(path);
  return svg;
}
