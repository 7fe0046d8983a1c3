// The Tollgate dashboard's entry, loaded by index.html: hash routing, the navigation, the
// session (who is logged in, logging out, a session that ends) and the public pages: log in,
// sign up, finish signing up, accept an invitation.
//
// No framework and no build step. Each page is a module named after its domain, as in the auth
// store (services/auth/src/store/<domain>.rs) and the admin API (services/admin/src/<domain>.rs):
// page-keys.js, page-budgets.js, … ; ui.js holds what the pages share.
//
// Routes: #/overview #/keys #/teams #/budgets #/guardrails #/analytics #/requests #/requests/<eventId>
// #/billing[?checkout=done|cancelled] #/settings, and the public #/login #/signup
// #/verify/<signupToken> #/accept/<invitationToken>.

import * as api from './api.js';
import {
  $, announce, badge, can, emptyEl, errorEl, field, FieldError, fill, h, makeForm, pageHeader,
  reportBug, state, titleCase,
} from './ui.js';
import { pageOverview } from './page-overview.js';
import { pageKeys, showNewKey } from './page-keys.js';
import { pageTeams } from './page-teams.js';
import { pageBudgets } from './page-budgets.js';
import { pageAnalytics } from './page-analytics.js';
import { pageRequestDetail, pageRequests } from './page-requests.js';
import { pageBilling } from './page-billing.js';
import { pageSettings } from './page-settings.js';
import { pageGuardrails } from './page-guardrails.js';

// ---------------------------------------------------------------------------------------------
// Public pages: log in, sign up, accept an invitation

function authLayout(title, intro, ...content) {
  return h('div', { class: 'auth-page' },
    h('div', { class: 'auth-card' },
      h('h1', { tabindex: '-1' }, title),
      intro ? h('p', { class: 'muted' }, intro) : null,
      content));
}

function pageLogin(view) {
  const form = makeForm({
    submitLabel: 'Log in',
    onSubmit: async (values) => {
      await api.login({ email: values.email, password: values.password });
      state.viewer = null;
      const next = state.afterLogin;
      state.afterLogin = null;
      go(next || '#/overview');
    },
  },
  field({ label: 'Email', name: 'email', type: 'email', required: true, attrs: { autocomplete: 'username' } }),
  field({ label: 'Password', name: 'password', type: 'password', required: true, attrs: { autocomplete: 'current-password' } }));
  view.append(authLayout('Log in', 'Manage keys, budgets and usage of your AI gateway.', form,
    h('p', { class: 'auth-switch' }, 'No account yet? ', h('a', { href: '#/signup' }, 'Sign up'))));
}

function pageSignup(view) {
  const form = makeForm({
    submitLabel: 'Sign up',
    onSubmit: async (values) => {
      if (values.password.length < 12) throw new FieldError('password', 'Use at least 12 characters.');
      const answer = await api.signup(values);
      if (!answer.api_key) {
        view.replaceChildren(authLayout('Check your inbox', null,
          h('p', {}, 'A message is on its way to ', h('strong', {}, answer.email), '. Follow its link within 24 hours to finish signing up.')));
        return;
      }
      await welcome(answer);
    },
  },
  field({ label: 'Email', name: 'email', type: 'email', required: true, attrs: { autocomplete: 'email' } }),
  field({
    label: 'Password', name: 'password', type: 'password', required: true,
    hint: 'At least 12 characters, not containing your email.',
    attrs: { autocomplete: 'new-password', minlength: '12', maxlength: '128' },
  }),
  field({ label: 'Organization', name: 'organization', required: true, hint: 'Your company or team; you can invite others later.', attrs: { autocomplete: 'organization', maxlength: '100' } }));
  view.append(authLayout('Create your account', 'You get an organization, a first team and a first API key.', form,
    h('p', { class: 'auth-switch' }, 'Already have an account? ', h('a', { href: '#/login' }, 'Log in'))));
}

/** The first key of a new account, shown once, over the overview. */
async function welcome(account) {
  state.viewer = null;
  go('#/overview');
  await showNewKey({
    title: 'Your first key',
    secret: account.api_key.key,
    prefix: account.api_key.display_prefix,
    name: account.api_key.name,
  });
}

function pageVerify(view, token) {
  const body = h('div', {});
  view.append(authLayout('Finish signing up', null, body));
  if (!token) {
    body.append(errorEl(new Error('This sign-up link is incomplete.')));
    return;
  }
  fill(body, async () => {
    const account = await api.verifySignup(token);
    welcome(account).catch(reportBug);
    return h('p', {}, 'Your account is ready.');
  });
}

function pageAccept(view, token) {
  const body = h('div', {});
  view.append(authLayout('Join an organization', null, body));
  if (!token) {
    body.append(errorEl(new Error('This invitation link is incomplete.')));
    return;
  }
  fill(body, async () => {
    const preview = await api.previewInvitation(token);
    const existing = Boolean(preview.existing_user);
    const form = makeForm({
      submitLabel: `Join ${preview.organization.name}`,
      onSubmit: async (values) => {
        if (!existing && values.password.length < 12) throw new FieldError('password', 'Use at least 12 characters.');
        await api.acceptInvitation({ token, password: values.password });
        state.viewer = null;
        go('#/overview');
        announce(`You joined ${preview.organization.name}.`, 'success');
      },
    },
    field({ label: 'Email', name: 'email', type: 'email', value: preview.email, attrs: { readonly: true, autocomplete: 'username' } }),
    existing
      ? field({ label: 'Your current password', name: 'password', type: 'password', required: true, hint: 'You already have an account: log in to join.', attrs: { autocomplete: 'current-password' } })
      : field({ label: 'Choose a password', name: 'password', type: 'password', required: true, hint: 'At least 12 characters, not containing your email.', attrs: { autocomplete: 'new-password', minlength: '12', maxlength: '128' } }));
    return [
      h('p', {}, 'You are invited to ', h('strong', {}, preview.organization.name), ' as ', h('strong', {}, titleCase(preview.role)), '.'),
      form,
    ];
  });
}

// ---------------------------------------------------------------------------------------------
// Shell and routing

const ROUTES = {
  overview: { title: 'Overview', render: pageOverview },
  keys: { title: 'Keys', render: pageKeys },
  teams: { title: 'Teams & members', render: pageTeams },
  budgets: { title: 'Budgets', render: pageBudgets },
  analytics: { title: 'Analytics', render: pageAnalytics },
  requests: { title: 'Request log', render: (view, param) => (param ? pageRequestDetail(view, param) : pageRequests(view)) },
  guardrails: { title: 'Guardrails', render: pageGuardrails },
  billing: { title: 'Billing', render: pageBilling },
  settings: { title: 'Settings', render: pageSettings },
  login: { title: 'Log in', render: pageLogin, public: true },
  signup: { title: 'Sign up', render: pageSignup, public: true },
  verify: { title: 'Finish signing up', render: pageVerify, public: true },
  accept: { title: 'Join an organization', render: pageAccept, public: true },
};

export function go(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

/** `#/name/param?query`: the page, its parameter and the query (such as `?checkout=done`). */
function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const at = raw.indexOf('?');
  const path = at >= 0 ? raw.slice(0, at) : raw;
  const query = new URLSearchParams(at >= 0 ? raw.slice(at + 1) : '');
  const [name, ...rest] = path.split('/');
  let param = rest.join('/');
  try {
    param = decodeURIComponent(param);
  } catch {
    // Leave a malformed escape as it is.
  }
  return { name: name || 'overview', param: param || null, query };
}

/** Who is logged in: fetched after logging in and after a change of role. */
export async function ensureViewer() {
  if (state.viewer) return state.viewer;
  const data = await api.gql('query Viewer { viewer { userId email role organization { id name } } }');
  state.viewer = data.viewer;
  renderAccount();
  return state.viewer;
}

function renderAccount() {
  const account = $('#account');
  const v = state.viewer;
  // Links to pages for some roles only (`data-min-role` on their list item).
  for (const item of document.querySelectorAll('#nav [data-min-role]')) item.hidden = !can(item.dataset.minRole);
  if (!v) {
    account.replaceChildren();
    return;
  }
  account.replaceChildren(
    h('span', { class: 'account-org' }, v.organization.name),
    h('span', { class: 'account-user' }, v.email, ' ', badge(titleCase(v.role), 'muted')),
    h('button', { type: 'button', class: 'btn small', onclick: logOut }, 'Log out'));
}

async function logOut() {
  await api.logout();
  state.viewer = null;
  renderAccount();
  announce('You have logged out.');
  go('#/login');
}

function setNavOpen(open) {
  document.body.classList.toggle('nav-open', open);
  $('#menu-toggle').setAttribute('aria-expanded', String(open));
}

let routeSeq = 0;
let firstRoute = true;

export async function route() {
  const seq = ++routeSeq;
  const { name, param, query } = parseHash();
  const def = ROUTES[name];
  setNavOpen(false);
  const main = $('#main');
  const view = h('div', { class: 'view' });

  if (def && def.public) {
    if ((name === 'login' || name === 'signup') && api.hasSession()) {
      try {
        if (await api.restore()) {
          go('#/overview');
          return;
        }
      } catch {
        // The server is unreachable: show the page anyway.
      }
    }
    document.body.classList.add('public');
    state.viewer = null;
    renderAccount();
  } else {
    if (!api.hasSession()) {
      state.afterLogin = window.location.hash && name !== 'login' ? window.location.hash : null;
      go('#/login');
      return;
    }
    try {
      await api.restore();
      await ensureViewer();
    } catch (error) {
      if (seq !== routeSeq) return;
      if (error.unauthenticated) {
        go('#/login');
        return;
      }
      document.body.classList.remove('public');
      main.replaceChildren(h('div', { class: 'view' }, pageHeader('Tollgate'), errorEl(error, route)));
      return;
    }
    if (seq !== routeSeq) return;
    document.body.classList.remove('public');
    for (const link of document.querySelectorAll('#nav a')) {
      if (link.dataset.route === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }
  if (seq !== routeSeq) return;

  main.replaceChildren(view);
  if (!def) {
    document.title = 'Not found · Tollgate';
    view.append(pageHeader('Page not found'), emptyEl('There is no page at this address.', h('a', { href: '#/overview' }, 'Go to the overview')));
  } else {
    document.title = `${def.title} · Tollgate`;
    try {
      def.render(view, param, query);
    } catch (error) {
      view.append(errorEl(error));
      reportBug(error);
    }
  }
  // Move focus to the new page's heading for keyboard and screen reader users (not on the
  // first load, where the browser's own start is expected).
  if (!firstRoute) {
    const heading = $('h1', view);
    if (heading && !document.querySelector('dialog[open]')) heading.focus({ preventScroll: false });
  }
  firstRoute = false;
  window.scrollTo(0, 0);
}

function start() {
  $('#menu-toggle').addEventListener('click', () => setNavOpen(!document.body.classList.contains('nav-open')));
  $('#skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    $('#main').focus();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && document.body.classList.contains('nav-open')) {
      setNavOpen(false);
      $('#menu-toggle').focus();
    }
  });
  api.onSessionEnd(() => {
    state.viewer = null;
    renderAccount();
    for (const dialog of document.querySelectorAll('dialog')) dialog.remove();
    announce('Your session has ended. Log in again.', 'error');
    const { name } = parseHash();
    if (!ROUTES[name] || !ROUTES[name].public) {
      state.afterLogin = window.location.hash;
      go('#/login');
    }
  });
  window.addEventListener('hashchange', route);
  route();
}

start();
