/**
 * Hash routes, so every view has a URL to bookmark or send (and the server
 * only ever serves one page):
 *   #/                      the images
 *   #/i/ID                  one image: layout and volumes
 *   #/i/ID/p1/docs          a folder (or, for a file, its folder with the file's details)
 */
export type Route = { view: 'images' } | { view: 'image'; id: string } | { view: 'browse'; id: string; path: string };

export function parseHash(hash: string): Route {
  const segments = hash.replace(/^#/, '').split('/').filter(Boolean);
  try {
    const parts = segments.map((s) => decodeURIComponent(s));
    if (parts[0] === 'i' && parts.length >= 2) {
      if (parts.length === 2) return { view: 'image', id: parts[1] };
      return { view: 'browse', id: parts[1], path: '/' + parts.slice(2).join('/') };
    }
  } catch {
    // a hand-edited hash that does not decode: show the images
  }
  return { view: 'images' };
}

export function href(route: Route): string {
  if (route.view === 'images') return '#/';
  const base = `#/i/${encodeURIComponent(route.id)}`;
  if (route.view === 'image') return base;
  const path = route.path
    .split('/')
    .filter(Boolean)
    .map((p) => encodeURIComponent(p))
    .join('/');
  return path ? `${base}/${path}` : base;
}

export function go(route: Route): void {
  location.hash = href(route);
}
