/**
 * The console's entry (bundled by build-assets.ts into app.js): asks the
 * collector whether this browser has a session, shows the sign-in form or
 * the view the page's address names (routes.ts), says who is signed in and
 * which namespaces they see (/v1/whoami), polls the views that follow
 * changes every few seconds, and shows every failure as the collector's own
 * message.
 */
import { AccessReviewView } from './access-review-view.ts';
import { ApiFailure, api, type SessionInfo, session, setCsrfToken } from './api.ts';
import { ApprovalsView } from './approvals-view.ts';
import type { View, ViewContext } from './context.ts';
import { byId, replace } from './dom.ts';
import { EventView } from './event-view.ts';
import { EventsView } from './events-view.ts';
import { abilityText, scopeText } from './format.ts';
import { OverviewView } from './overview-view.ts';
import type { WhoAmI } from './query-types.ts';
import { RequestView } from './request-view.ts';
import { type Route, routeOf, sectionOf } from './routes.ts';
import { SessionView } from './session-view.ts';
import { SessionsView } from './sessions-view.ts';
import { signInView } from './sign-in-view.ts';

const POLL_MS = 3000;
/** The approvals page's old addresses (`/console/#history`): now tabs of /console/approvals. */
const OLD_TABS = new Set(['#pending', '#history', '#grants']);

const viewBox = byId('view');
const errorBox = byId('error');
const nav = byId('nav');
const who = byId('whoami');
const signOutButton = byId<HTMLButtonElement>('sign-out');

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
  shown = undefined;
  setCsrfToken(undefined);
  nav.hidden = true;
  who.hidden = true;
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

function viewOf(r: Route, params: URLSearchParams): View {
  switch (r.view) {
    case 'overview':
      return new OverviewView(params);
    case 'events':
      return new EventsView(params);
    case 'event':
      return new EventView(r.id, ctx);
    case 'sessions':
      return new SessionsView(params);
    case 'session':
      return new SessionView(r.id);
    case 'approvals':
      return new ApprovalsView(ctx);
    case 'approval':
      return new RequestView(r.id, ctx);
    case 'access-review':
      return new AccessReviewView(params);
  }
}

async function showWho(can: SessionInfo['can']): Promise<void> {
  const abilities = can ? ` — ${abilityText(can)}` : '';
  if (can && !can.read) {
    // An approver the query API does not know (whoami would refuse the token).
    who.textContent = `Signed in${abilities}`;
    who.hidden = false;
    return;
  }
  try {
    const w = await api.get<WhoAmI>('whoami');
    who.textContent = `${scopeText(w)}${abilities}`;
    who.hidden = false;
  } catch (err) {
    ctx.failed(err);
  }
}

function signedIn(s: SessionInfo): void {
  setCsrfToken(s.csrfToken);
  // A session that may only decide approvals starts at them (the overview reads the audit log).
  const route = routeOf(location.pathname) ?? { view: s.can?.read === false ? 'approvals' : 'overview' };
  const section = sectionOf(route);
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('current', a.dataset.view === section);
  nav.hidden = false;
  signOutButton.hidden = false;
  stopTimers();
  const v = viewOf(route, new URLSearchParams(location.search));
  shown = v;
  replace(viewBox, v.root);
  void showWho(s.can);
  void refreshShown();
  if (v.poll) poll = setInterval(() => void refreshShown(), POLL_MS);
  tick = setInterval(() => shown?.tick?.(), 1000);
}

window.addEventListener('hashchange', () => {
  const v = shown;
  if (v instanceof ApprovalsView) void v.hashChanged()?.catch((err: unknown) => ctx.failed(err));
});
signOutButton.addEventListener('click', async () => {
  try {
    await session.signOut();
    signedOut('Signed out.');
  } catch (err) {
    ctx.failed(err);
  }
});

if (location.pathname === '/console/' && OLD_TABS.has(location.hash))
  location.replace(`/console/approvals${location.hash}`);
else
  try {
    const s = await session.get();
    proxy = s.proxy;
    if (s.signedIn) signedIn(s);
    else signedOut();
  } catch (err) {
    showError(err instanceof Error ? err.message : String(err));
  }
