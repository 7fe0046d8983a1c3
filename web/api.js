// The dashboard's only way to the server: the REST auth endpoints, the GraphQL admin API and
// the session they share.
//
// The session: the access token (a short-lived JWT) lives in memory only; the refresh token in
// sessionStorage, so that a reload keeps the session but closing the tab ends it. Refresh
// tokens rotate: each works once, and presenting a spent one revokes the whole session, so
// exactly one refresh may be in flight at a time and its answer is stored before anything
// else runs.

const REFRESH_KEY = 'tollgate.refresh_token';
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 60_000;

/** An error from the server (or the network), with what the forms need to place it. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, type = null, field = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    /** GraphQL `extensions.code`, or the REST `error.code`. */
    this.code = code;
    this.type = type;
    /** The input the error is about: REST `error.param`, GraphQL `extensions.field`. */
    this.field = field;
  }

  get unauthenticated() {
    return this.code === 'UNAUTHENTICATED' || this.status === 401;
  }

  get forbidden() {
    return this.code === 'FORBIDDEN' || this.status === 403;
  }
}

let accessToken = null;
let accessExpiresAt = 0;
/** How close to its expiry an access token is no longer used: 10 s, less for short lifetimes. */
let expiryMarginMs = 10_000;
let refreshTimer = 0;
let refreshing = null;
const endListeners = new Set();

function storedRefreshToken() {
  try {
    return sessionStorage.getItem(REFRESH_KEY);
  } catch {
    return null;
  }
}

function storeRefreshToken(token) {
  try {
    if (token) sessionStorage.setItem(REFRESH_KEY, token);
    else sessionStorage.removeItem(REFRESH_KEY);
  } catch {
    // Storage disabled: the session lasts as long as the page.
  }
}

/** Whether a session exists (possibly needing a refresh before the next call). */
export function hasSession() {
  return accessToken !== null || storedRefreshToken() !== null;
}

/** Calls `listener(reason)` when the session ends without the user logging out. */
export function onSessionEnd(listener) {
  endListeners.add(listener);
  return () => endListeners.delete(listener);
}

function adopt(pair) {
  accessToken = pair.access_token;
  const lifetimeMs = Math.max(1, Number(pair.expires_in) || 900) * 1000;
  accessExpiresAt = Date.now() + lifetimeMs;
  expiryMarginMs = Math.min(10_000, lifetimeMs / 4);
  storeRefreshToken(pair.refresh_token);
  clearTimeout(refreshTimer);
  // Short lifetimes refresh at 80 %, normal ones a minute early.
  const delay = Math.max(5_000, Math.min(lifetimeMs - REFRESH_MARGIN_MS, lifetimeMs * 0.8));
  refreshTimer = setTimeout(() => {
    refresh().catch(() => {
      // An ended session was announced by refresh(); a network error retries on next use.
    });
  }, delay);
}

function forget() {
  accessToken = null;
  accessExpiresAt = 0;
  clearTimeout(refreshTimer);
  storeRefreshToken(null);
}

function endSession(reason) {
  const had = hasSession();
  forget();
  if (had) for (const listener of endListeners) listener(reason);
}

async function readError(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: fall through to the status line.
  }
  const error = body && body.error;
  if (error && typeof error.message === 'string') {
    return new ApiError(error.message, {
      status: response.status,
      code: error.code || null,
      type: error.type || null,
      field: error.param || null,
    });
  }
  return new ApiError(`The server answered ${response.status} ${response.statusText}.`, {
    status: response.status,
  });
}

async function send(path, init) {
  try {
    return await fetch(path, { credentials: 'same-origin', cache: 'no-store', ...init });
  } catch {
    throw new ApiError('The server cannot be reached. Check your connection and try again.');
  }
}

/** POST a JSON body to a REST endpoint; the parsed answer (null for 204). */
export async function rest(path, body, { token = null } = {}) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await send(path, { method: 'POST', headers, body: JSON.stringify(body ?? {}) });
  if (!response.ok) throw await readError(response);
  if (response.status === 204) return null;
  return response.json();
}

/** Trades the stored refresh token for a new pair; one at a time. */
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const token = storedRefreshToken();
      if (!token) {
        endSession('expired');
        throw new ApiError('Your session has ended. Log in again.', { code: 'UNAUTHENTICATED' });
      }
      try {
        adopt(await rest('/auth/refresh', { refresh_token: token }));
      } catch (error) {
        if (error.status === 400 || error.status === 401) {
          endSession('expired');
          throw new ApiError('Your session has ended. Log in again.', {
            code: 'UNAUTHENTICATED',
            status: 401,
          });
        }
        throw error;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** An access token valid for a little while longer, refreshing when needed. */
async function currentAccessToken() {
  if (refreshing) await refreshing;
  if (accessToken && accessExpiresAt - Date.now() > expiryMarginMs) return accessToken;
  await refresh();
  return accessToken;
}

/** Picks the session back up after a reload (when a refresh token was kept). */
export async function restore() {
  if (accessToken) return true;
  if (!storedRefreshToken()) return false;
  try {
    await refresh();
    return true;
  } catch (error) {
    if (error.unauthenticated) return false;
    throw error;
  }
}

// ---- REST auth ----

export async function signup({ email, password, organization }) {
  const answer = await rest('/auth/signup', { email, password, organization });
  // With sign-up verification (202) the account exists once the mailed link is followed.
  if (answer.access_token) adopt(answer);
  return answer;
}

export async function verifySignup(token) {
  const answer = await rest('/auth/signup/verify', { token });
  adopt(answer);
  return answer;
}

export async function login({ email, password }) {
  adopt(await rest('/auth/login', { email, password }));
}

export async function logout() {
  const token = storedRefreshToken();
  forget();
  if (token) {
    try {
      await rest('/auth/logout', { refresh_token: token });
    } catch {
      // The local session is gone either way; the server's ends with its tokens.
    }
  }
}

export function previewInvitation(token) {
  return rest('/auth/invitations/preview', { token });
}

export async function acceptInvitation({ token, password }) {
  adopt(await rest('/auth/invitations/accept', { token, password }));
}

// ---- GraphQL ----

/**
 * Runs a GraphQL operation and returns its `data`. Throws an ApiError for the first error
 * (with `extensions.code` and `extensions.field`). An UNAUTHENTICATED answer refreshes the
 * session once and retries; a second one ends the session.
 */
export async function gql(query, variables = {}, retried = false) {
  const token = await currentAccessToken();
  const response = await send('/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ query, variables }),
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  let error = null;
  if (body && Array.isArray(body.errors) && body.errors.length > 0) {
    const first = body.errors[0];
    const extensions = first.extensions || {};
    error = new ApiError(first.message || 'The request failed.', {
      status: response.status,
      code: extensions.code || null,
      field: extensions.field || null,
    });
  } else if (!response.ok) {
    error =
      body && body.error
        ? new ApiError(body.error.message, {
            status: response.status,
            code: body.error.code,
            type: body.error.type,
            field: body.error.param,
          })
        : new ApiError(`The server answered ${response.status}.`, { status: response.status });
  }
  if (error) {
    if (error.unauthenticated) {
      if (!retried) {
        // The access token may have expired in flight: refresh once and try again.
        accessToken = null;
        await refresh();
        return gql(query, variables, true);
      }
      endSession('expired');
    }
    throw error;
  }
  if (!body || typeof body.data !== 'object') {
    throw new ApiError('The server sent an answer the dashboard cannot read.', {
      status: response.status,
    });
  }
  return body.data;
}

// Refresh promptly when a tab comes back after its timers were throttled.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && accessToken && accessExpiresAt - Date.now() < REFRESH_MARGIN_MS) {
    refresh().catch(() => {});
  }
});
