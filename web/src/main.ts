import { api, setUnauthorizedHandler, type Session } from './api.js';
import { clear, h, mainElement } from './dom.js';
import { errorBox } from './errors.js';
import { parseHash, type Route } from './routes.js';
import { DirectoryView } from './views/directory.js';
import { showImage } from './views/image.js';
import { showImages } from './views/images.js';
import { showLogin } from './views/login.js';

/**
 * The page: one view at a time, chosen by the URL hash. Every failure ends in
 * words on the page (never a blank page): API errors per view, anything else
 * through the window error handlers below.
 */
let session: Session = { loginRequired: false, user: null };
let current: { abort: AbortController; directory: DirectoryView | null } | null = null;
let loggingIn = false;

function showWho(): void {
  const who = document.getElementById('who')!;
  clear(who);
  if (!session.loginRequired || !session.user) return;
  const logout = h('button', { type: 'button', class: 'link' }, 'Log out');
  logout.addEventListener('click', () => {
    api.logout().finally(() => {
      session.user = null;
      showWho();
      void requireLogin();
    });
  });
  who.append(h('span', {}, `Logged in as ${session.user}`), ' ', logout);
}

async function requireLogin(): Promise<void> {
  if (loggingIn) return;
  loggingIn = true;
  current?.abort.abort();
  current?.directory?.destroy();
  current = null;
  try {
    session.user = await showLogin();
  } finally {
    loggingIn = false;
  }
  showWho();
  await route();
}

async function route(): Promise<void> {
  if (loggingIn) return;
  const r: Route = parseHash(location.hash);
  if (current?.directory?.tryShow(r)) return;
  current?.abort.abort();
  current?.directory?.destroy();
  const abort = new AbortController();
  current = { abort, directory: null };
  const main = mainElement();
  main.setAttribute('aria-busy', 'true');
  try {
    if (r.view === 'images') await showImages(abort.signal);
    else if (r.view === 'image') await showImage(r.id, abort.signal);
    else {
      const view = await DirectoryView.open(r, abort.signal);
      if (current?.abort === abort) current.directory = view;
    }
  } catch (e) {
    if (!abort.signal.aborted) {
      clear(main);
      main.appendChild(errorBox(e));
    }
  } finally {
    main.removeAttribute('aria-busy');
  }
}

function showFatal(e: unknown): void {
  const alert = document.getElementById('alert');
  if (!alert) return;
  clear(alert);
  alert.appendChild(errorBox(e, h('p', {}, 'Reload the page to try again.')));
}

window.addEventListener('error', (ev) => showFatal(ev.error ?? ev.message));
window.addEventListener('unhandledrejection', (ev) => showFatal(ev.reason));

async function start(): Promise<void> {
  setUnauthorizedHandler(() => {
    if (session.loginRequired) void requireLogin();
  });
  try {
    session = await api.session();
  } catch (e) {
    clear(mainElement());
    mainElement().appendChild(errorBox(e));
    return;
  }
  window.addEventListener('hashchange', () => void route());
  if (session.loginRequired && !session.user) await requireLogin();
  else {
    showWho();
    await route();
  }
}

void start();
