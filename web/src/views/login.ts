import { api, ApiError } from '../api.js';
import { h, clear, mainElement } from '../dom.js';

/** The login form. Resolves once the user is logged in. */
export function showLogin(): Promise<string> {
  const main = mainElement();
  clear(main);
  return new Promise((resolve) => {
    const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
    const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const message = h('p', { class: 'form-error', role: 'alert', 'aria-live': 'assertive' });
    const button = h('button', { type: 'submit', class: 'primary' }, 'Log in');
    const form = h(
      'form',
      { class: 'login', 'aria-labelledby': 'login-title' },
      h('h1', { id: 'login-title' }, 'Log in to browse the disk images'),
      h('label', { for: 'login-user' }, 'User name'),
      user,
      h('label', { for: 'login-password' }, 'Password'),
      password,
      message,
      button,
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      button.disabled = true;
      message.textContent = '';
      api.login(user.value.trim(), password.value).then(
        (r) => resolve(r.user),
        (e: unknown) => {
          button.disabled = false;
          password.value = '';
          message.textContent =
            e instanceof ApiError && e.status === 401 ? 'Wrong user name or password.' : e instanceof Error ? e.message : String(e);
          password.focus();
        },
      );
    });
    main.appendChild(form);
    document.title = 'Log in · Loopless';
    user.focus();
  });
}
