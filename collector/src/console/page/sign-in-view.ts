/** The sign-in form: paste a bearer token; the collector keeps it, the page does not. */
import { h } from './dom.ts';

export function signInView(opts: {
  proxy: boolean;
  message: string | undefined;
  submit: (token: string) => Promise<void>;
}): HTMLElement {
  const token = h('textarea', {
    id: 'token',
    name: 'token',
    rows: '4',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
  });
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    { class: 'sign-in' },
    h('h2', {}, 'Sign in to the console'),
    opts.message ? h('p', { class: 'error', role: 'alert' }, opts.message) : null,
    h(
      'p',
      {},
      'Paste a Kubernetes bearer token (e.g. ',
      h('code', {}, 'kubectl create token <service-account>'),
      ') or an OIDC ID token. It stays on the collector for this session and is never put in the page.',
    ),
    opts.proxy
      ? h(
          'p',
          { class: 'muted' },
          'This console also accepts the sign-in of the authenticating proxy in front of it.',
        )
      : null,
    h('label', { for: 'token' }, 'Token'),
    token,
    button,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    button.disabled = true;
    void opts.submit(token.value).finally(() => {
      button.disabled = false;
    });
  });
  return form;
}
