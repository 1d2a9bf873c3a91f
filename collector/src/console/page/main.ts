/**
 * The approvals page's entry (bundled by build-assets.ts into app.js): asks
 * the collector whether this browser has a session, shows the sign-in form or
 * the views, polls the shown view every few seconds, and shows every failure
 * as the collector's own message.
 */
import { ApiFailure, type SessionInfo, session, setCsrfToken } from './api.ts';
import type { View, ViewContext } from './context.ts';
import { byId, replace } from './dom.ts';
import { GrantsView } from './grants-view.ts';
import { HistoryView } from './history-view.ts';
import { PendingView } from './pending-view.ts';
import { RequestView } from './request-view.ts';
import { signInView } from './sign-in-view.ts';

const POLL_MS = 3000;

const viewBox = byId('view');
const errorBox = byId('error');
const nav = byId('nav');
const signOutButton = byId<HTMLButtonElement>('sign-out');

let views: Record<string, View> | undefined;
let proxy = false;
let shown: View | undefined;
let poll: ReturnType<typeof setInterval> | undefined;
let tick: ReturnType<typeof setInterval> | undefined;

function showError(message: string | undefined): void {
  errorBox.textContent = message ?? '';
  errorBox.hidden = !message;
}

function stopTimers(): void {
  clearInterval(poll);
  clearInterval(tick);
}

function signedOut(message?: string): void {
  stopTimers();
  views = undefined;
  shown = undefined;
  setCsrfToken(undefined);
  nav.hidden = true;
  signOutButton.hidden = true;
  showError(undefined);
  replace(
    viewBox,
    signInView({
      proxy,
      message,
      submit: async (token) => {
        try {
          signedIn(await session.signIn(token));
        } catch (err) {
          signedOut(err instanceof Error ? err.message : String(err));
        }
      },
    }),
  );
  document.getElementById('token')?.focus();
}

const ctx: ViewContext = {
  showError,
  failed(err) {
    // 401: the session ended, or the API refused its token (which ends the session too).
    if (err instanceof ApiFailure && err.status === 401) {
      signedOut(err.message);
      return;
    }
    showError(err instanceof Error ? err.message : String(err));
  },
};

async function refreshShown(): Promise<void> {
  const v = shown;
  if (!v) return;
  try {
    await v.refresh();
    if (v === shown) showError(undefined);
  } catch (err) {
    if (v === shown) ctx.failed(err);
  }
}

function show(name: string): void {
  if (!views) return;
  const v = views[name] ?? views.pending;
  if (!v) return;
  shown = v;
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('current', a.dataset.view === name);
  replace(viewBox, v.root);
  void refreshShown();
}

function signedIn(s: SessionInfo): void {
  setCsrfToken(s.csrfToken);
  views = { pending: new PendingView(ctx), history: new HistoryView(), grants: new GrantsView(ctx) };
  const one = /^\/console\/approvals\/([^/]+)$/.exec(location.pathname);
  if (one) views.request = new RequestView(decodeURIComponent(one[1] as string), ctx);
  nav.hidden = false;
  signOutButton.hidden = false;
  stopTimers();
  poll = setInterval(() => void refreshShown(), POLL_MS);
  tick = setInterval(() => shown?.tick?.(), 1000);
  show(location.hash.slice(1) || (views.request ? 'request' : 'pending'));
}

window.addEventListener('hashchange', () => show(location.hash.slice(1)));
signOutButton.addEventListener('click', async () => {
  try {
    await session.signOut();
    signedOut('Signed out.');
  } catch (err) {
    ctx.failed(err);
  }
});

try {
  const s = await session.get();
  proxy = s.proxy;
  if (s.signedIn) signedIn(s);
  else signedOut();
} catch (err) {
  showError(err instanceof Error ? err.message : String(err));
}
